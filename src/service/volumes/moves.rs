//! Moves of a project to another node, and drains (every project of a
//! node moved, one at a time).

use crate::store::VolumeOpKind;
use std::time::Instant;

use uuid::Uuid;

use super::*;
use crate::domain::nodes::DrainProgress;
use crate::domain::{now_millis, Project, User};
use crate::engine::{Engine, LABEL_PROJECT_ID};
use crate::service::{Result, ServiceError};

impl Volumes {
    /// Moves a project to the node `to` (admins only): its running
    /// workspaces stop, its volume streams from its node's engine into a
    /// new volume on `to` (helpers on both ends, piped), both volumes are
    /// read back and their digests compared, and only then does the project
    /// switch — with its workspaces, which start again there if they ran.
    /// A failure or a kill at any point leaves the project where it was
    /// (the partial volume is removed, at the next start if need be). The
    /// old volume is kept for the retention period.
    pub async fn move_project(&self, user: &User, project_id: Uuid, to: &str) -> Result<Moved> {
        if !user.is_admin() {
            return Err(ServiceError::Forbidden(
                "only an admin may move a project to another node".into(),
            ));
        }
        let project = self.berth().core().project(user, project_id).await?;
        self.berth().core().nodes().get(to).await?;
        if project.node == to {
            return Err(ServiceError::Conflict(format!(
                "project {} is already on node {to}",
                project.id
            )));
        }
        // The target must take it as the planner sees it (ready, labels,
        // image, room for what its type reserves).
        self.check_target(&project, to).await?;
        let started = Instant::now();
        let _guard = self.berth().core().lock_workspace(project.id).await?;
        let from = self.engine_on(&project.node).await?;
        let target = self.engine_on(to).await?;
        let running = self.running_on(&project).await?;
        let new_volume = crate::domain::fresh_volume_name(project.id);
        let op = self.volume_op(VolumeOpKind::Move, project.id, &new_volume, to, false);
        let stopped: Vec<Uuid> = running.iter().map(|(w, _)| *w).collect();
        for w in &stopped {
            self.berth().stop_workspace(user, *w).await?;
        }
        self.store().insert_volume_op(&op).await?;
        let mut labels = self.berth().core().base_labels();
        labels.insert(LABEL_PROJECT_ID.to_string(), project.id.to_string());
        let copied = async {
            target.create_volume(&new_volume, labels).await?;
            self.copy_volume((&project.node, &project.volume_name), (to, &new_volume))
                .await?;
            let (a, b) = tokio::join!(
                self.digest_via_engine(&from, &project.volume_name),
                self.digest_via_engine(&target, &new_volume)
            );
            let (a, b) = (a?, b?);
            if a != b {
                return Err(ServiceError::Storage(format!(
                    "the copy on {to} differs from the volume on {} ({} entries there, {} here); nothing was switched",
                    project.node, a.1, b.1
                )));
            }
            Ok(a)
        }
        .await;
        let (digest, entries) = match copied {
            Ok(d) => d,
            Err(e) => {
                let _ = target.remove_volume(&new_volume).await;
                self.store().delete_volume_op(op.id).await?;
                for w in &stopped {
                    if let Err(e) = self.berth().start_workspace(user, *w).await {
                        tracing::warn!(workspace = %w, error = %e, "restarting after a failed move");
                    }
                }
                return Err(e);
            }
        };
        // The switch: the project, then its workspaces (their containers
        // on the old node go; new ones are made on `to` at their start).
        self.still_ours(&op).await?;
        self.store()
            .set_project_node_volume(project.id, to, &new_volume, now_millis())
            .await?;
        self.store().delete_volume_op(op.id).await?;
        self.workspaces_follow(&project, to, Some(&from)).await?;
        self.inner
            .sizes
            .lock()
            .expect("sizes poisoned")
            .0
            .remove(&project.volume_name);
        let mut restarted = Vec::new();
        for w in &stopped {
            self.berth().start_workspace(user, *w).await?;
            restarted.push(*w);
        }
        let moved = self.store().project(project.id).await?.ok_or_else(|| {
            ServiceError::Conflict(format!(
                "project {} was deleted during the move",
                project.id
            ))
        })?;
        tracing::info!(project = %project.id, from = %project.node, %to, entries, "moved");
        Ok(Moved {
            project: moved,
            from: project.node,
            previous_volume: project.volume_name,
            entries,
            digest,
            restarted,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Drains the node `node` (admins): it takes nothing new (draining),
    /// then each of its projects moves, one at a time, to where the
    /// planner puts it; at the end the node is left cordoned. Runs in the
    /// background; answers the progress as it begins ([`Backups::drain`]
    /// reads it later). A project that cannot move stays, with its reason.
    pub async fn start_drain(&self, user: &User, node: &str) -> Result<DrainProgress> {
        if !user.is_admin() {
            return Err(ServiceError::Forbidden(
                "only an admin may drain a node".into(),
            ));
        }
        let nodes = self.berth().core().nodes();
        nodes.get(node).await?;
        let projects: Vec<Project> = self
            .store()
            .projects(None)
            .await?
            .into_iter()
            .filter(|p| p.node == node)
            .collect();
        let progress = DrainProgress {
            node: node.to_string(),
            started_at: now_millis(),
            total: projects.len(),
            ..Default::default()
        };
        // Recorded for every replica to read; one drain of a node at a
        // time, whichever replica was asked.
        if !self
            .store()
            .begin_drain(&progress, self.berth().core().replicas().id())
            .await?
        {
            return Err(ServiceError::Conflict(format!(
                "node {node} is being drained already"
            )));
        }
        let change = crate::service::NodeChange {
            draining: Some(true),
            ..Default::default()
        };
        if let Err(e) = nodes.change(node, change).await {
            let mut ended = progress.clone();
            ended.finished_at = Some(now_millis());
            let _ = self.store().save_drain(&ended, now_millis()).await;
            return Err(e);
        }
        let (this, user) = (self.clone(), user.clone());
        let mut d = progress.clone();
        tokio::spawn(async move { this.run_drain(&user, &mut d, projects).await });
        Ok(progress)
    }

    async fn run_drain(&self, user: &User, d: &mut DrainProgress, projects: Vec<Project>) {
        let node = d.node.clone();
        let save = |d: &DrainProgress| {
            let (store, d) = (self.store().clone(), d.clone());
            async move {
                if let Err(e) = store.save_drain(&d, now_millis()).await {
                    tracing::warn!(node = %d.node, error = %e, "recording a drain's progress failed");
                }
            }
        };
        for p in projects {
            d.current = Some(p.id);
            save(d).await;
            let moved = async {
                let plan = self
                    .berth()
                    .placement()
                    .plan(p.workspace_type.as_deref(), None, Default::default())
                    .await?;
                self.move_project(user, p.id, &plan.node).await
            }
            .await;
            match moved {
                Ok(m) => {
                    let to = m.project.node.clone();
                    tracing::info!(%node, project = %p.id, %to, "drain moved a project");
                    d.moved.push((p.id, to, m.seconds));
                }
                Err(e) => {
                    tracing::warn!(%node, project = %p.id, error = %e, "drain could not move a project");
                    d.failed.push((p.id, e.to_string()));
                }
            }
        }
        let done = crate::service::NodeChange {
            cordoned: Some(true),
            draining: Some(false),
            ..Default::default()
        };
        if let Err(e) = self.berth().core().nodes().change(&node, done).await {
            tracing::warn!(%node, error = %e, "cordoning a drained node failed");
        }
        d.current = None;
        d.finished_at = Some(now_millis());
        save(d).await;
    }

    /// The last drain of `node` (by any replica).
    pub async fn drain(&self, user: &User, node: &str) -> Result<DrainProgress> {
        if !user.is_admin() {
            return Err(ServiceError::Forbidden(
                "only an admin may see a drain".into(),
            ));
        }
        self.store()
            .drain(node)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no drain of node {node}")))
    }

    /// Refuses a target node the planner would not put `project` on.
    pub(in crate::service) async fn check_target(&self, project: &Project, to: &str) -> Result<()> {
        match self
            .berth()
            .placement()
            .refusal_on(project.workspace_type.as_deref(), to)
            .await?
        {
            Some(why) => Err(ServiceError::Conflict(format!(
                "node {to} cannot take project {}: {why}",
                project.id
            ))),
            None => Ok(()),
        }
    }

    /// A project's workspaces go with it to `to`: stopped, without a
    /// container (made anew there at the next start). Their containers on
    /// the old node are removed through `old` when it answers; when it
    /// does not (a recovery), that node's cleanup removes them on return.
    pub(in crate::service) async fn workspaces_follow(
        &self,
        project: &Project,
        to: &str,
        old: Option<&Engine>,
    ) -> Result<()> {
        for ws in self.store().workspaces_on_project(project.id).await? {
            let _wg = self.berth().core().lock_workspace(ws.id).await?;
            let Some(ws) = self.store().workspace(ws.id).await? else {
                continue;
            };
            if let Some(engine) = old {
                if let Err(e) = engine.remove_container(&ws.container_name()).await {
                    tracing::warn!(workspace = %ws.id, error = %e, "removing a moved workspace's old container failed; cleanup removes it later");
                }
            }
            use crate::domain::transition::{transition, Transition};
            let ws = transition(&ws, Transition::ContainerRemoved, now_millis())?;
            let ws = transition(
                &ws,
                Transition::Rehomed {
                    node: to.to_string(),
                },
                now_millis(),
            )?;
            self.store().save_workspace(&ws).await?;
        }
        Ok(())
    }
}

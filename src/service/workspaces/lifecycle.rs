//! The lifecycle of a workspace's container: start (creating the
//! container from its type's spec, or recreating it when that changed),
//! stop and restart. Each runs under the workspace's lock and is idempotent.

use uuid::Uuid;

use super::Berth;
use crate::domain::transition::{Note, Transition};
use crate::domain::{EventKind, Project, User, Workspace, WorkspaceStatus};
use crate::engine::{ContainerState, EngineError};
use crate::service::{Result, ServiceError};

impl Berth {
    /// Starts a workspace: creates its container if there is none. Running
    /// already is success.
    pub async fn start_workspace(&self, user: &User, id: Uuid) -> Result<Workspace> {
        let _guard = self.core().lock_workspace(id).await?;
        let ws = self.core().workspace(user, id).await?;
        self.start_locked(ws).await
    }

    pub(super) async fn start_locked(&self, ws: Workspace) -> Result<Workspace> {
        if ws.status == WorkspaceStatus::Archived {
            return Err(ServiceError::Conflict(
                "workspace is archived; unarchive it (PUT archived=false) to start it".into(),
            ));
        }
        let (mut ws, mut container) = self.refresh(ws, false).await?;
        if container.as_ref().is_some_and(|c| c.running) {
            return Ok(ws);
        }
        let project_id = ws.project_id.ok_or_else(|| {
            ServiceError::Conflict(
                "workspace has no project; give it one with switch-project first".into(),
            )
        })?;
        let project = self
            .core()
            .store()
            .project(project_id)
            .await?
            .ok_or_else(|| {
                ServiceError::Conflict(format!(
                "project {project_id} of this workspace no longer exists; switch to another project"
            ))
            })?;
        if ws.node != project.node {
            // The project moved: the container follows its volume (the old
            // one, stopped, goes; its node must answer for that).
            if let Some(c) = container.take() {
                self.core()
                    .engine_of(&ws)
                    .await?
                    .remove_container(&c.id)
                    .await?;
            }
            tracing::info!(workspace = %ws.id, from = %ws.node, to = %project.node, "workspace follows its project to another node");
            ws = crate::domain::transition::transition(
                &ws,
                Transition::Rehomed {
                    node: project.node.clone(),
                },
                crate::domain::now_millis(),
            )?;
            self.core().store().save_workspace(&ws).await?;
        }
        // Room on its node, then its owner's quota: each checked, and the
        // workspace counted as holding them (starting), under the node's
        // and the owner's locks.
        let room = if ws.status.holds_room() {
            None
        } else {
            let d = self.placement().demand_of(&ws)?;
            Some(self.placement().claim_room(&ws, d, d).await?)
        };
        let hold = self
            .quotas()
            .reserve(ws.owner_id, self.quotas().start_need(&ws))
            .await?;
        let ws = self
            .core()
            .transition(&ws, Transition::Starting { reason: None })
            .await?;
        drop(hold);
        drop(room);
        match self.create_and_start(&ws, &project, container).await {
            Ok(state) => {
                self.core()
                    .transition_noting(
                        &ws,
                        Transition::Running {
                            container_id: Some(state.id),
                            host_port: state.host_port,
                            activity: true,
                        },
                        Note::new(EventKind::Started, "started"),
                    )
                    .await
            }
            Err(e) => {
                self.core()
                    .transition(
                        &ws,
                        Transition::Failed {
                            reason: format!("start failed: {e}"),
                        },
                    )
                    .await?;
                Err(e)
            }
        }
    }

    async fn create_and_start(
        &self,
        ws: &Workspace,
        project: &Project,
        existing: Option<ContainerState>,
    ) -> Result<ContainerState> {
        let engine = self.core().engine_of(ws).await?;
        let id = match existing {
            Some(c) => c.id,
            None => {
                let spec = self.types().container_spec(ws, project).await?;
                match engine.create_container(&spec).await {
                    Ok(id) => id,
                    Err(EngineError::NotFound(_)) if self.core().config().images.pull_on_start => {
                        tracing::info!(image = %spec.image, node = %ws.node, "pulling a missing type image at start");
                        self.types().pull_and_wait(&engine, &ws.node, &spec.image).await?;
                        engine.create_container(&spec).await?
                    }
                    Err(EngineError::NotFound(_)) => {
                        return Err(ServiceError::Conflict(format!(
                            "image {} of type {:?} is not present on the Docker host{}; an admin can pull it (berth type pull {}), or set images.pull_on_start",
                            spec.image,
                            ws.type_name,
                            crate::domain::nodes::on_node(&ws.node),
                            ws.type_name
                        )))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        engine.start_container(&id).await?;
        self.observe()
            .inspect_on(&ws.node, &ws.container_name())
            .await?
            .ok_or_else(|| ServiceError::Conflict("container vanished right after start".into()))
    }

    /// Stops a workspace, keeping its container (and so its logs).
    /// Stopped already is success.
    pub async fn stop_workspace(&self, user: &User, id: Uuid) -> Result<Workspace> {
        let _guard = self.core().lock_workspace(id).await?;
        let ws = self.core().workspace(user, id).await?;
        self.stop_locked(ws, "stopped").await
    }

    /// `why` is the event recorded when a running container is stopped.
    pub(super) async fn stop_locked(&self, ws: Workspace, why: &str) -> Result<Workspace> {
        let (ws, container) = self.refresh(ws, false).await?;
        let Some(c) = container.filter(|c| c.running) else {
            if ws.status == WorkspaceStatus::Error {
                return self
                    .core()
                    .transition(&ws, Transition::Stopped { reason: None })
                    .await;
            }
            return Ok(ws);
        };
        let ws = self.core().transition(&ws, Transition::Stopping).await?;
        let result = self
            .core()
            .engine_of(&ws)
            .await?
            .stop_container(&c.id, self.core().config().stop_timeout_s)
            .await;
        if let Err(e) = result {
            // Leave the record as the engine has it, then report.
            let _ = self.refresh(ws, false).await;
            return Err(e.into());
        }
        // The view learns of the stop now rather than at the `die` event,
        // so the next status read agrees without a second look.
        self.observe()
            .inspect_on(&ws.node, &ws.container_name())
            .await?;
        self.core()
            .transition_noting(
                &ws,
                Transition::Stopped { reason: None },
                Note::new(EventKind::Stopped, why),
            )
            .await
    }

    /// Restarts a running workspace; starts a stopped one.
    pub async fn restart_workspace(&self, user: &User, id: Uuid) -> Result<Workspace> {
        let _guard = self.core().lock_workspace(id).await?;
        let ws = self.core().workspace(user, id).await?;
        let (ws, container) = self.refresh(ws, false).await?;
        let Some(c) = container.filter(|c| c.running) else {
            return self.start_locked(ws).await;
        };
        let engine = self.core().engine_of(&ws).await?;
        engine
            .restart_container(&c.id, self.core().config().stop_timeout_s)
            .await?;
        let state = self
            .observe()
            .inspect_on(&ws.node, &ws.container_name())
            .await?
            .filter(|s| s.running);
        let next = match state {
            Some(s) => Transition::Running {
                container_id: Some(s.id),
                host_port: s.host_port,
                activity: true,
            },
            None => Transition::Stopped { reason: None },
        };
        // A restart by a person resets the recovery budget, as a start does.
        self.core()
            .transition_noting(&ws, next, Note::new(EventKind::Started, "restarted"))
            .await
    }
}

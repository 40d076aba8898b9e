//! Project volumes as a whole: restore a backup into a new volume and
//! switch to it only when complete, clone into a new volume the same way
//! (an interrupted one is removed at the next start: `volume_ops`), and
//! measure a volume; move a project to another node the same way (its
//! volume streamed from one engine into the other, both read back and
//! compared before the project switches). The archives and the catalogue
//! are in `backups`.

use std::path::Path;
use std::time::Instant;

use uuid::Uuid;

use super::backups::{blocking, SIZE_TTL};
use super::volume_io::Access;
use super::{Backups, Result, ServiceError};
use crate::backup;
use crate::domain::backups::Backup;
use crate::domain::quota::Need;
use crate::domain::{now_millis, Project, User};
use crate::engine::{Engine, LABEL_PROJECT_ID};
use crate::store::VolumeOp;

/// Where a clone goes.
#[derive(Debug, Clone)]
pub enum CloneTarget {
    Existing(Uuid),
    /// A new project of this name, made only once the copy is complete.
    New {
        name: String,
    },
}

/// What a clone did.
#[derive(Debug, Clone)]
pub struct Cloned {
    pub project: Project,
    pub skipped: backup::Skipped,
}

/// What a move did.
#[derive(Debug, Clone)]
pub struct Moved {
    pub project: Project,
    pub from: String,
    pub previous_volume: String,
    /// Entries in the volume, and the digest both sides had.
    pub entries: u64,
    pub digest: String,
    /// Workspaces stopped for the move and started again on the target.
    pub restarted: Vec<Uuid>,
    pub seconds: f64,
}

pub use crate::domain::nodes::DrainProgress;

/// What a recovery onto another node did.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub project: Project,
    /// The node it was on (lost, or given up on).
    pub from: String,
    pub backup: Backup,
    /// How old the backup was: what was written since is not in it.
    pub backup_age_s: u64,
    /// The backup's archive came back from remote storage.
    pub fetched: bool,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub backup: Backup,
    pub volume_name: String,
    pub previous_volume: String,
    /// Workspaces stopped for the restore and started again.
    pub restarted: Vec<Uuid>,
}

impl Backups {
    /// Replaces a project's data with a backup's. Refuses while a workspace
    /// on the project runs unless `stop_workspaces`. The archive is
    /// extracted into a new volume in one pass that checks every entry and
    /// the file's checksum; only a complete, verified copy replaces the
    /// project's volume.
    pub async fn restore(
        &self,
        user: &User,
        project_id: Uuid,
        backup_id: Uuid,
        stop_workspaces: bool,
    ) -> Result<Restored> {
        let project = self.berth().core().project(user, project_id).await?;
        let (b, path) = self.backup_file(user, backup_id).await?;
        let _guard = self.berth().core().lock_workspace(project.id).await?;
        if b.sha256.is_none() {
            return Err(ServiceError::Refused(
                "this backup has no recorded checksum; it cannot be restored".into(),
            ));
        }
        let running = self.running_on(&project).await?;
        if !running.is_empty() && !stop_workspaces {
            return Err(ServiceError::Conflict(format!(
                "{} workspace(s) on this project are running; stop them or pass \"stopWorkspace\": true",
                running.len()
            )));
        }
        // What the restored volume holds over the one it replaces.
        let adds = b
            .content_bytes
            .or(b.size_bytes)
            .unwrap_or(0)
            .saturating_sub(self.store().project_size(project.id).await?.unwrap_or(0));
        drop(
            self.berth()
                .quotas()
                .reserve(project.owner_id, Need::storage(adds))
                .await?,
        );
        let short = Uuid::new_v4().simple().to_string();
        let new_volume = format!("berth-project-{}-{}", project.id, &short[..8]);
        let mut labels = self.berth().core().base_labels();
        labels.insert(LABEL_PROJECT_ID.to_string(), project.id.to_string());
        let op = VolumeOp {
            id: Uuid::new_v4(),
            kind: "restore".into(),
            project_id: project.id,
            volume: new_volume.clone(),
            node: project.node.clone(),
            new_project: false,
            started_at: now_millis(),
            replica: Some(self.berth().core().replicas().id()),
        };
        // Restored where the project's volume is.
        let engine = self.engine_on(&project.node).await?;
        self.store().insert_volume_op(&op).await?;
        if let Err(e) = engine.create_volume(&new_volume, labels).await {
            self.store().delete_volume_op(op.id).await?;
            return Err(e.into());
        }
        let extracted = self
            .extract_backup(&b, &path, &project.node, &new_volume)
            .await;
        if let Err(e) = extracted {
            let _ = engine.remove_volume(&new_volume).await;
            self.store().delete_volume_op(op.id).await?;
            return Err(e);
        }
        let user_ids: Vec<Uuid> = running.iter().map(|(w, _)| *w).collect();
        for w in &user_ids {
            self.berth().stop_workspace(user, *w).await?;
        }
        self.still_ours(&op).await?;
        self.switch_project_volume(&project, &new_volume).await?;
        self.store().delete_volume_op(op.id).await?;
        if let Some(n) = b.content_bytes {
            self.store()
                .set_project_size(project.id, n, now_millis())
                .await?;
        }
        for w in &user_ids {
            self.berth().start_workspace(user, *w).await?;
        }
        tracing::info!(project = %project.id, backup = %b.id, volume = %new_volume, "restored");
        Ok(Restored {
            backup: b,
            volume_name: new_volume,
            previous_volume: project.volume_name,
            restarted: user_ids,
        })
    }

    /// Extracts a complete backup's archive (here at `path`) into the new,
    /// empty `volume` on `node`, checking every entry and the checksum.
    async fn extract_backup(
        &self,
        b: &Backup,
        path: &Path,
        node: &str,
        volume: &str,
    ) -> Result<()> {
        let path = path.to_path_buf();
        match self.access(node, volume).await {
            Ok(Access::Host(dst)) => match self.budget(b, Some(&dst)) {
                Ok(budget) => {
                    let (p, c, sum) = (path.clone(), b.compression, b.sha256.clone());
                    let rules = backup::ReadRules {
                        budget: budget.bytes,
                        strip_setid: b.origin.strips_setid(),
                    };
                    let cfg = self.config().backups.clone();
                    tokio::task::spawn_blocking(move || {
                        backup::extract_archive(&p, c, sum.as_deref(), &dst, rules)
                    })
                    .await
                    .map_err(|e| ServiceError::Internal(format!("archive task failed: {e}")))
                    .and_then(|r| r.map(|_| ()).map_err(|e| budget.error(&cfg, e)))
                }
                Err(e) => Err(e),
            },
            Ok(Access::Engine(to)) => {
                // The engine extracts as bytes arrive: check everything first.
                match self.check_archive(b, &path).await {
                    Ok(_) => {
                        let rules = backup::ReadRules {
                            budget: self.budget(b, None)?.bytes,
                            strip_setid: b.origin.strips_setid(),
                        };
                        self.extract_via_engine(&to, &path, b.compression, volume, rules)
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Points a project at another volume: containers that mount the old
    /// one are removed (they are recreated on the new one at start; the
    /// caller has stopped them), and the old volume is left for the cleanup
    /// job's retention period.
    async fn switch_project_volume(&self, project: &Project, new_volume: &str) -> Result<()> {
        for ws in self.store().workspaces_on_project(project.id).await? {
            let _wg = self.berth().core().lock_workspace(ws.id).await?;
            self.berth()
                .core()
                .engine_of(&ws)
                .await?
                .remove_container(&ws.container_name())
                .await?;
        }
        self.store()
            .set_project_volume(project.id, new_volume, now_millis())
            .await?;
        self.inner
            .sizes
            .lock()
            .expect("sizes poisoned")
            .0
            .remove(&project.volume_name);
        Ok(())
    }

    /// Copies one project's data into another project: an existing one
    /// (empty, or replaced with `overwrite`; no workspace may run on it), or
    /// a new one. The copy always goes into a new volume, and the target is
    /// switched to it only when the copy is complete — a failure or a kill
    /// at any point leaves the target as it was (and makes no new project).
    /// An interrupted clone's volume is removed at the next start
    /// ([`Backups::recover_volume_ops`]). Owners, modes, links and times are
    /// kept; files that vanish while they are copied are skipped and
    /// counted.
    pub async fn clone_volume(
        &self,
        user: &User,
        source_id: Uuid,
        target: CloneTarget,
        overwrite: bool,
    ) -> Result<Cloned> {
        let source = self.berth().core().project(user, source_id).await?;
        // The new volume, and what the target is.
        let (existing, new_id, new_volume) = match &target {
            CloneTarget::Existing(id) => {
                let t = self.berth().core().project(user, *id).await?;
                if t.id == source.id {
                    return Err(ServiceError::Invalid(
                        "source and target are the same project".into(),
                    ));
                }
                let short = Uuid::new_v4().simple().to_string();
                let v = format!("berth-project-{}-{}", t.id, &short[..8]);
                (Some(t), *id, v)
            }
            CloneTarget::New { name } => {
                crate::domain::validate_name("name", name).map_err(ServiceError::Invalid)?;
                let id = Uuid::new_v4();
                (None, id, crate::domain::project_volume_name(id))
            }
        };
        let _guard = self.berth().core().lock_workspace(new_id).await?;
        let mut target_was_empty = false;
        if let Some(t) = &existing {
            if !self.running_on(t).await?.is_empty() {
                return Err(ServiceError::Conflict(
                    "a workspace on the target project is running; stop it first".into(),
                ));
            }
            target_was_empty = self.volume_is_empty(&t.node, &t.volume_name).await?;
            if !target_was_empty && !overwrite {
                return Err(ServiceError::Conflict(
                    "the target project's volume is not empty; pass \"overwrite\": true to replace its content"
                        .into(),
                ));
            }
        }
        // The copy counts against the target's owner: what it adds over
        // what the target held (its size as last measured).
        let owner = existing.as_ref().map_or(user.id, |t| t.owner_id);
        // As last measured: reading the volume now would cost as much as
        // the copy (a volume never measured counts as empty until the
        // volume-sizes job or a size request measures it).
        let source_size = self.store().project_size(source.id).await?.unwrap_or(0);
        let adds = source_size.saturating_sub(match &existing {
            Some(t) => self.store().project_size(t.id).await?.unwrap_or(0),
            None => 0,
        });
        drop(
            self.berth()
                .quotas()
                .reserve(owner, Need::storage(adds))
                .await?,
        );
        // Into the target's node (a new project: the source's).
        let node = existing
            .as_ref()
            .map_or_else(|| source.node.clone(), |t| t.node.clone());
        let engine = self.engine_on(&node).await?;
        let op = VolumeOp {
            id: Uuid::new_v4(),
            kind: "clone".into(),
            project_id: new_id,
            volume: new_volume.clone(),
            node: node.clone(),
            new_project: existing.is_none(),
            started_at: now_millis(),
            replica: Some(self.berth().core().replicas().id()),
        };
        self.store().insert_volume_op(&op).await?;
        let mut labels = self.berth().core().base_labels();
        labels.insert(LABEL_PROJECT_ID.to_string(), new_id.to_string());
        let copied = match engine.create_volume(&new_volume, labels).await {
            Ok(()) => {
                self.copy_volume((&source.node, &source.volume_name), (&node, &new_volume))
                    .await
            }
            Err(e) => Err(e.into()),
        };
        let skipped = match copied {
            Ok(s) => s,
            Err(e) => {
                let _ = engine.remove_volume(&new_volume).await;
                self.store().delete_volume_op(op.id).await?;
                return Err(e);
            }
        };
        self.still_ours(&op).await?;
        let project = match (existing, target) {
            (Some(t), _) => {
                self.switch_project_volume(&t, &new_volume).await?;
                if target_was_empty {
                    // Nothing was in it: no reason to keep it for retention.
                    let _ = engine.remove_volume(&t.volume_name).await;
                }
                self.store().project(t.id).await?.unwrap_or(t)
            }
            (None, CloneTarget::New { name }) => {
                let now = now_millis();
                let p = Project {
                    id: new_id,
                    owner_id: user.id,
                    name: name.trim().to_string(),
                    description: String::new(),
                    workspace_type: source.workspace_type.clone(),
                    workspace_id: None,
                    volume_name: new_volume.clone(),
                    // The clone is made on the source's engine.
                    node,
                    created_at: now,
                    updated_at: now,
                };
                self.store().insert_project(&p).await?;
                p
            }
            (None, CloneTarget::Existing(_)) => unreachable!("an existing target was resolved"),
        };
        self.store().delete_volume_op(op.id).await?;
        self.store()
            .set_project_size(project.id, source_size, now_millis())
            .await?;
        if skipped.count > 0 {
            tracing::info!(project = %project.id, skipped = skipped.count, "paths vanished while the volume was cloned");
        }
        Ok(Cloned { project, skipped })
    }

    /// Whether `volume` on `node` holds nothing.
    async fn volume_is_empty(&self, node: &str, volume: &str) -> Result<bool> {
        match self.access(node, volume).await? {
            Access::Host(d) => blocking(move || backup::dir_is_empty(&d)).await,
            Access::Engine(e) => self.is_empty_via_engine(&e, volume).await,
        }
    }

    /// Places a project that holds nothing yet where its first workspace
    /// (of `type_name`, with `overrides`) has room: a project is placed
    /// when it is made, before anything says what will run on it, so when
    /// its node cannot hold that workspace and another can (the
    /// planner's choice), its empty volume is made anew there and the
    /// project follows in one statement. Nothing happens to a project that
    /// has a workspace or holds data, or when no node has room (the start
    /// says so then).
    pub async fn place_for_first_workspace(
        &self,
        user: &User,
        project_id: Uuid,
        type_name: &str,
        overrides: &crate::domain::ResourceOverrides,
    ) -> Result<()> {
        let berth = self.berth();
        let project = berth.core().project(user, project_id).await?;
        let demand = berth.placement().demand_for(type_name, overrides)?;
        if !self
            .store()
            .workspaces_on_project(project.id)
            .await?
            .is_empty()
        {
            return Ok(());
        }
        let Some(to) = berth
            .placement()
            .better_node_for(&project.node, type_name, demand)
            .await?
        else {
            return Ok(());
        };
        let _guard = berth.core().lock_workspace(project.id).await?;
        // Again under the lock: a workspace may have come meanwhile.
        let Some(project) = self.store().project(project.id).await? else {
            return Ok(());
        };
        if !self
            .store()
            .workspaces_on_project(project.id)
            .await?
            .is_empty()
            || !self
                .volume_is_empty(&project.node, &project.volume_name)
                .await?
        {
            return Ok(());
        }
        let short = Uuid::new_v4().simple().to_string();
        let volume = format!("berth-project-{}-{}", project.id, &short[..8]);
        let mut labels = berth.core().base_labels();
        labels.insert(LABEL_PROJECT_ID.to_string(), project.id.to_string());
        self.engine_on(&to)
            .await?
            .create_volume(&volume, labels)
            .await?;
        self.store()
            .set_project_node_volume(project.id, &to, &volume, now_millis())
            .await?;
        // Empty and mounted by nothing: gone now (else an orphan for the
        // cleanup job).
        match self.engine_on(&project.node).await {
            Ok(e) => {
                if let Err(e) = e.remove_volume(&project.volume_name).await {
                    tracing::warn!(volume = %project.volume_name, error = %e, "removing an empty project's old volume failed");
                }
            }
            Err(e) => {
                tracing::warn!(volume = %project.volume_name, error = %e, "removing an empty project's old volume failed")
            }
        }
        tracing::info!(project = %project.id, from = %project.node, %to, "an empty project placed where its first workspace has room");
        Ok(())
    }

    /// Copies `src`'s data into the new, empty volume `dst`: on the host a
    /// parallel copy of our own that walks the source by descriptor
    /// (`backup::copy_tree`: in-kernel `copy_file_range` per file, FIFOs
    /// and device files as nodes, nothing followed); otherwise through the
    /// engines (the same, or two nodes'). Each side is a node and a volume
    /// there.
    pub(super) async fn copy_volume(
        &self,
        (src_node, src): (&str, &str),
        (dst_node, dst): (&str, &str),
    ) -> Result<backup::Skipped> {
        let (from, to) = match (
            self.access(src_node, src).await?,
            self.access(dst_node, dst).await?,
        ) {
            (Access::Host(s), Access::Host(d)) => (s, d),
            (a, b) => {
                let from = match a {
                    Access::Engine(e) => e,
                    Access::Host(_) => self.engine_on(src_node).await?,
                };
                let to = match b {
                    Access::Engine(e) => e,
                    Access::Host(_) => self.engine_on(dst_node).await?,
                };
                self.copy_via_engine((&from, src), (&to, dst)).await?;
                return Ok(backup::Skipped::default());
            }
        };
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .max(2);
        let copied = blocking(move || backup::copy_tree(&from, &to, workers)).await?;
        Ok(copied.skipped)
    }

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
        let short = Uuid::new_v4().simple().to_string();
        let new_volume = format!("berth-project-{}-{}", project.id, &short[..8]);
        let op = VolumeOp {
            id: Uuid::new_v4(),
            kind: "move".into(),
            project_id: project.id,
            volume: new_volume.clone(),
            node: to.to_string(),
            new_project: false,
            started_at: now_millis(),
            replica: Some(self.berth().core().replicas().id()),
        };
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

    /// Recovers a project onto the node `to` from its newest complete
    /// backup (admins): for a project whose node is lost. An explicit
    /// operator action, never done by itself: the data written since that
    /// backup is lost, and the answer says how old it was. The archive is
    /// fetched back from remote storage when it is not here. Its
    /// workspaces switch to `to` (stopped; their containers on the lost
    /// node are left for that node's cleanup when it returns, as is its
    /// old volume, kept for the retention period).
    pub async fn recover_project(
        &self,
        user: &User,
        project_id: Uuid,
        to: &str,
    ) -> Result<Recovered> {
        if !user.is_admin() {
            return Err(ServiceError::Forbidden(
                "only an admin may recover a project onto another node".into(),
            ));
        }
        let project = self.berth().core().project(user, project_id).await?;
        self.berth().core().nodes().get(to).await?;
        if project.node == to {
            return Err(ServiceError::Conflict(format!(
                "project {} is on node {to} already; restore a backup instead (POST /api/workspaces/projects/{}/restore)",
                project.id, project.id
            )));
        }
        self.check_target(&project, to).await?;
        let _guard = self.berth().core().lock_workspace(project.id).await?;
        let b = self
            .store()
            .backups_of(project.id)
            .await?
            .into_iter()
            .find(|b| {
                b.state == crate::domain::backups::BackupState::Complete && b.sha256.is_some()
            })
            .ok_or_else(|| {
                ServiceError::Conflict(format!(
                    "project {} has no complete backup to recover from",
                    project.id
                ))
            })?;
        let path = self.backup_path(&b)?;
        let fetched = !path.exists();
        self.ensure_local(&b, &path).await?;
        let target = self.engine_on(to).await?;
        let short = Uuid::new_v4().simple().to_string();
        let new_volume = format!("berth-project-{}-{}", project.id, &short[..8]);
        let op = VolumeOp {
            id: Uuid::new_v4(),
            kind: "recover".into(),
            project_id: project.id,
            volume: new_volume.clone(),
            node: to.to_string(),
            new_project: false,
            started_at: now_millis(),
            replica: Some(self.berth().core().replicas().id()),
        };
        self.store().insert_volume_op(&op).await?;
        let mut labels = self.berth().core().base_labels();
        labels.insert(LABEL_PROJECT_ID.to_string(), project.id.to_string());
        let extracted = match target.create_volume(&new_volume, labels).await {
            Ok(()) => self.extract_backup(&b, &path, to, &new_volume).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = extracted {
            let _ = target.remove_volume(&new_volume).await;
            self.store().delete_volume_op(op.id).await?;
            return Err(e);
        }
        self.still_ours(&op).await?;
        self.store()
            .set_project_node_volume(project.id, to, &new_volume, now_millis())
            .await?;
        self.store().delete_volume_op(op.id).await?;
        self.workspaces_follow(&project, to, None).await?;
        let recovered = self.store().project(project.id).await?.ok_or_else(|| {
            ServiceError::Conflict(format!("project {} was deleted meanwhile", project.id))
        })?;
        let age_ms = now_millis().saturating_sub(b.completed_at.unwrap_or(b.created_at));
        tracing::warn!(project = %project.id, from = %project.node, %to, backup = %b.id, age_s = age_ms / 1000, "recovered a project from its backup onto another node");
        Ok(Recovered {
            project: recovered,
            from: project.node,
            backup_age_s: u64::try_from(age_ms / 1000).unwrap_or(0),
            backup: b,
            fetched,
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
    async fn check_target(&self, project: &Project, to: &str) -> Result<()> {
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
    async fn workspaces_follow(
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
            let mut ws = crate::domain::transition::transition(
                &ws,
                crate::domain::transition::Transition::ContainerRemoved,
                now_millis(),
            );
            ws.node = to.to_string();
            self.store().save_workspace(&ws).await?;
        }
        Ok(())
    }

    /// Refuses to switch a project to the volume `op` filled when the
    /// operation is no longer recorded: the other replicas took this one
    /// for gone, and removed that volume as a partial copy.
    async fn still_ours(&self, op: &VolumeOp) -> Result<()> {
        if self.store().volume_op_exists(op.id).await? {
            return Ok(());
        }
        Err(ServiceError::Conflict(format!(
            "the {} was interrupted: the other replicas took this one for gone and removed its partial volume",
            op.kind
        )))
    }

    /// The apparent size of a project's data (as `du -sb`), cached briefly.
    pub async fn volume_size(&self, user: &User, project_id: Uuid) -> Result<u64> {
        let project = self.berth().core().project(user, project_id).await?;
        if let Some((at, size)) = self
            .inner
            .sizes
            .lock()
            .expect("sizes poisoned")
            .0
            .get(&project.volume_name)
        {
            if at.elapsed() < SIZE_TTL {
                return Ok(*size);
            }
        }
        self.measure_project(&project).await
    }

    /// Measures a project's volume now and records the size (what storage
    /// quotas count until the next measurement).
    pub(crate) async fn measure_project(&self, project: &Project) -> Result<u64> {
        let size = match self.access(&project.node, &project.volume_name).await? {
            Access::Host(dir) => blocking(move || backup::dir_size(&dir)).await?,
            Access::Engine(e) => self.size_via_engine(&e, &project.volume_name).await?,
        };
        self.inner
            .sizes
            .lock()
            .expect("sizes poisoned")
            .0
            .insert(project.volume_name.clone(), (Instant::now(), size));
        self.store()
            .set_project_size(project.id, size, now_millis())
            .await?;
        Ok(size)
    }
}

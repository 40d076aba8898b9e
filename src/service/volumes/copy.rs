//! Copies of a volume: a clone into another project (or a new one), the
//! copy itself (through the host or the engines), and the first
//! workspace's placement of a project that holds nothing yet.

use crate::store::VolumeOpKind;
use uuid::Uuid;

use super::io::Access;
use super::*;
use crate::backup::{self};
use crate::domain::quota::Need;
use crate::domain::{now_millis, Project, User};
use crate::engine::LABEL_PROJECT_ID;
use crate::service::{Result, ServiceError};

impl Volumes {
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
                let v = crate::domain::fresh_volume_name(t.id);
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
        let op = self.volume_op(
            VolumeOpKind::Clone,
            new_id,
            &new_volume,
            &node,
            existing.is_none(),
        );
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
                    git: None,
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
    pub(in crate::service) async fn volume_is_empty(
        &self,
        node: &str,
        volume: &str,
    ) -> Result<bool> {
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
        let volume = crate::domain::fresh_volume_name(project.id);
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
    pub(in crate::service) async fn copy_volume(
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
}

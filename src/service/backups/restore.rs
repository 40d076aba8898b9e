//! Restores: a backup's archive extracted into a new volume, checked
//! entry by entry and against its checksum, and the project switched to
//! it only when complete; and recoveries, the same onto another node when
//! the project's own is lost.

use crate::store::VolumeOpKind;
use std::path::Path;

use uuid::Uuid;

use super::*;
use crate::backup::{self};
use crate::domain::backups::Backup;
use crate::domain::quota::Need;
use crate::domain::{now_millis, Project, User};
use crate::engine::LABEL_PROJECT_ID;
use crate::service::volumes::io::Access;
use crate::service::{Result, ServiceError};

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
        let running = self.volumes().running_on(&project).await?;
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
        let new_volume = crate::domain::fresh_volume_name(project.id);
        let mut labels = self.berth().core().base_labels();
        labels.insert(LABEL_PROJECT_ID.to_string(), project.id.to_string());
        let op = self.volumes().volume_op(
            VolumeOpKind::Restore,
            project.id,
            &new_volume,
            &project.node,
            false,
        );
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
        self.volumes().still_ours(&op).await?;
        self.volumes()
            .switch_project_volume(&project, &new_volume)
            .await?;
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
        match self.volumes().access(node, volume).await {
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
                        self.volumes()
                            .extract_via_engine(&to, &path, b.compression, volume, rules)
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
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
        self.volumes().check_target(&project, to).await?;
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
        let new_volume = crate::domain::fresh_volume_name(project.id);
        let op =
            self.volumes()
                .volume_op(VolumeOpKind::Recover, project.id, &new_volume, to, false);
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
        self.volumes().still_ours(&op).await?;
        self.store()
            .set_project_node_volume(project.id, to, &new_volume, now_millis())
            .await?;
        self.store().delete_volume_op(op.id).await?;
        self.volumes().workspaces_follow(&project, to, None).await?;
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
}

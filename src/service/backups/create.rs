//! Making a backup: from a project's volume (a consistent copy of a
//! stopped or running workspace's data), or from an archive a user
//! uploads, checked before it enters the catalogue.

use std::time::Instant;

use uuid::Uuid;

use super::*;
use crate::backup::{self};
use crate::domain::backups::{Backup, BackupOrigin, BackupState, Compression};
use crate::domain::{now_millis, Project, User};
use crate::service::volumes::blocking;
use crate::service::volumes::io::Access;
use crate::service::{Result, ServiceError};

impl Backups {
    /// Backs up a project's volume into the catalogue.
    pub async fn create_backup(
        &self,
        user: &User,
        project_id: Uuid,
        compression: Compression,
        pause: bool,
    ) -> Result<Backup> {
        let project = self.berth().core().project(user, project_id).await?;
        self.backup_project(&project, compression, pause).await
    }

    /// Backs up a project's volume (the caller has checked ownership).
    pub async fn backup_project(
        &self,
        project: &Project,
        compression: Compression,
        pause: bool,
    ) -> Result<Backup> {
        let project_id = project.id;
        let _guard = self.berth().core().lock_workspace(project.id).await?;
        // Its owner's storage, by an estimate: the project's last backup,
        // else its volume as last measured (the archive's size is known
        // only once it is written).
        let estimate = match self
            .store()
            .backups_of(project_id)
            .await?
            .iter()
            .find(|b| b.state == BackupState::Complete)
            .and_then(|b| b.size_bytes)
        {
            Some(n) => n,
            None => self.store().project_size(project_id).await?.unwrap_or(0),
        };
        drop(
            self.berth()
                .quotas()
                .reserve(
                    project.owner_id,
                    crate::domain::quota::Need::storage(estimate),
                )
                .await?,
        );
        let access = self
            .volumes()
            .access(&project.node, &project.volume_name)
            .await?;
        let running = self.volumes().running_on(project).await?;
        // Its workspaces run where its volume is.
        let engine = self.engine_on(&project.node).await?;
        let mut b = Backup {
            id: Uuid::new_v4(),
            project_id,
            owner_id: project.owner_id,
            created_at: now_millis(),
            completed_at: None,
            state: BackupState::InProgress,
            compression,
            size_bytes: None,
            sha256: None,
            crash_consistent: !running.is_empty() && !pause,
            error: None,
            remote: None,
            replica: Some(self.berth().core().replicas().id()),
            ..Default::default()
        };
        self.store().insert_backup(&b).await?;
        let final_path = self.backup_path(&b)?;
        let tmp = final_path.with_file_name(self.tmp_name(&b.file_name()));
        let mut paused = Vec::new();
        if pause {
            for (_, cid) in &running {
                match engine.pause_container(cid).await {
                    Ok(()) => paused.push(cid.clone()),
                    Err(e) => tracing::warn!(container = %cid, error = %e, "pause failed"),
                }
            }
        }
        let started = Instant::now();
        let result = match access {
            Access::Host(src) => {
                let tmp2 = tmp.clone();
                blocking(move || backup::write_archive(&src, &tmp2, compression)).await
            }
            Access::Engine(from) => {
                self.volumes()
                    .archive_via_engine(&from, &project.volume_name, tmp.clone(), compression)
                    .await
            }
        };
        // Always unpause, whatever happened.
        for cid in paused {
            if let Err(e) = engine.unpause_container(&cid).await {
                tracing::error!(container = %cid, error = %e, "unpause after backup failed");
            }
        }
        let result = result.and_then(|w| {
            std::fs::rename(&tmp, &final_path)
                .map_err(|e| ServiceError::Internal(format!("renaming the archive: {e}")))?;
            if let Some(dir) = final_path.parent() {
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok(w)
        });
        b.completed_at = Some(now_millis());
        match result {
            Ok(w) => {
                b.state = BackupState::Complete;
                b.size_bytes = Some(w.size_bytes);
                b.sha256 = Some(w.sha256);
                b.content_bytes = Some(w.content_bytes);
                if w.skipped.count > 0 {
                    // Files vanished under the walk: the volume was in use.
                    b.crash_consistent = true;
                    b.skipped_count = w.skipped.count;
                    b.skipped_sample = w.skipped.sample;
                    tracing::info!(backup = %b.id, skipped = b.skipped_count, "paths vanished while the volume was read");
                }
                if !self.store().finish_backup(&b).await? {
                    // Another replica took this one for gone and failed
                    // the backup meanwhile: its record says so, and an
                    // archive without a complete record must not stay.
                    let _ = std::fs::remove_file(&final_path);
                    return Err(ServiceError::Conflict(
                        "the backup was interrupted: the other replicas took this one for gone while it wrote the archive".into(),
                    ));
                }
                let p = project_id.to_string();
                metrics::counter!("berth_backups_total", "outcome" => "complete").increment(1);
                metrics::histogram!("berth_backup_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::gauge!("berth_backup_last_size_bytes", "project" => p.clone())
                    .set(w.size_bytes as f64);
                metrics::gauge!("berth_backup_last_success_timestamp_seconds", "project" => p)
                    .set(now_millis() as f64 / 1000.0);
                if let Err(e) = self.queue_offsite(&mut b).await {
                    // The backup itself is fine; the backups job sends it later.
                    tracing::warn!(backup = %b.id, error = %e, "could not queue the remote copy");
                }
                Ok(b)
            }
            Err(e) => {
                metrics::counter!("berth_backups_total", "outcome" => "failed").increment(1);
                let _ = std::fs::remove_file(&tmp);
                b.state = BackupState::Failed;
                b.error = Some(e.to_string());
                self.store().finish_backup(&b).await?;
                Err(e)
            }
        }
    }

    /// Takes an archive uploaded by a user into the catalogue: streamed to a
    /// private temporary file (at most `backups.max_upload_mb`), hashed,
    /// checked against `expected_sha256` when given, read through for
    /// safety, and only then renamed into place and marked complete.
    pub async fn upload_backup<S, E>(
        &self,
        user: &User,
        project_id: Uuid,
        compression: Option<Compression>,
        expected_sha256: Option<String>,
        mut body: S,
    ) -> Result<Backup>
    where
        S: futures_util::Stream<Item = std::result::Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use futures_util::StreamExt;
        use sha2::{Digest, Sha256};
        use tokio::io::AsyncWriteExt;

        let project = self.berth().core().project(user, project_id).await?;
        let limit = self
            .config()
            .backups
            .max_upload_mb
            .saturating_mul(1024 * 1024);
        let id = Uuid::new_v4();
        let dir = self.backup_dir()?;
        let tmp = dir.join(self.tmp_name(&format!("{id}.upload")));
        let mut opts = tokio::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let mut file = opts
            .open(&tmp)
            .await
            .map_err(|e| ServiceError::Internal(format!("creating {}: {e}", tmp.display())))?;
        let mut hash = Sha256::new();
        let mut size = 0u64;
        let mut head = Vec::new();
        let result: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk =
                    chunk.map_err(|e| ServiceError::Invalid(format!("reading the upload: {e}")))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(ServiceError::TooLarge(format!(
                        "the archive exceeds the upload limit of {} MB",
                        self.config().backups.max_upload_mb
                    )));
                }
                if head.len() < 4 {
                    head.extend_from_slice(&chunk[..chunk.len().min(4 - head.len())]);
                }
                hash.update(&chunk);
                file.write_all(&chunk)
                    .await
                    .map_err(|e| ServiceError::Internal(format!("writing the upload: {e}")))?;
            }
            file.sync_all()
                .await
                .map_err(|e| ServiceError::Internal(format!("fsync of the upload: {e}")))?;
            Ok(())
        }
        .await;
        drop(file);
        let fail = |e: ServiceError| {
            let _ = std::fs::remove_file(&tmp);
            e
        };
        result.map_err(fail)?;
        let sha = hex::encode(hash.finalize());
        if let Some(want) = expected_sha256 {
            if !want.eq_ignore_ascii_case(&sha) {
                return Err(fail(ServiceError::Refused(format!(
                    "checksum mismatch: the header says {want}, the upload is {sha}"
                ))));
            }
        }
        let sniffed = if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else {
            None
        };
        let compression = match (compression, sniffed) {
            (Some(c), Some(s)) if c != s => {
                return Err(fail(ServiceError::Refused(format!(
                    "the upload is {} but compression={} was given",
                    s.as_str(),
                    c.as_str()
                ))))
            }
            (_, Some(s)) => s,
            (_, None) => {
                return Err(fail(ServiceError::Refused(
                    "the upload is neither a zstd nor a gzip archive".into(),
                )))
            }
        };
        // The files may hold what the limit and the free space of the
        // project's volume file system allow.
        let probe = Backup {
            content_bytes: None,
            ..Default::default()
        };
        let dst = match self
            .volumes()
            .access(&project.node, &project.volume_name)
            .await
        {
            Ok(Access::Host(dir)) => Some(dir),
            _ => None,
        };
        let budget = self.budget(&probe, dst.as_deref()).map_err(fail)?;
        let origin = BackupOrigin::Uploaded {
            by_admin: user.is_admin(),
        };
        let rules = backup::ReadRules {
            budget: budget.bytes,
            strip_setid: origin.strips_setid(),
        };
        let t = tmp.clone();
        let cfg = self.config().backups.clone();
        let scanned =
            tokio::task::spawn_blocking(move || backup::verify_archive(&t, compression, rules))
                .await
                .map_err(|e| ServiceError::Internal(format!("archive task failed: {e}")))
                .and_then(|r| r.map_err(|e| budget.error(&cfg, e)))
                .map_err(fail)?;
        let now = now_millis();
        let mut b = Backup {
            id,
            project_id,
            owner_id: project.owner_id,
            created_at: now,
            completed_at: Some(now),
            state: BackupState::Complete,
            compression,
            size_bytes: Some(size),
            sha256: Some(sha),
            crash_consistent: false,
            error: None,
            remote: None,
            content_bytes: Some(scanned.content_bytes),
            origin,
            ..Default::default()
        };
        // Its owner's storage: the archive's exact size, known now.
        drop(
            self.berth()
                .quotas()
                .reserve(project.owner_id, crate::domain::quota::Need::storage(size))
                .await
                .map_err(fail)?,
        );
        std::fs::rename(&tmp, self.backup_path(&b)?)
            .map_err(|e| fail(ServiceError::Internal(format!("renaming the upload: {e}"))))?;
        self.store().insert_backup(&b).await?;
        if let Err(e) = self.queue_offsite(&mut b).await {
            tracing::warn!(backup = %b.id, error = %e, "could not queue the remote copy");
        }
        Ok(b)
    }
}

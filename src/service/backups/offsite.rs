//! Remote copies of backups (`backups.remote`): each complete backup is
//! sent to the object store as soon as it is written, with its catalogue
//! entry beside it; the backups job retries what failed (and sends what
//! was made before remote copies were turned on); deleting or pruning a
//! backup deletes its remote copy; a backup whose local archive is gone is
//! fetched back — checksum checked — before a download, verify or restore.

use std::path::Path;

use uuid::Uuid;

use super::Backups;
use crate::domain::backups::{Backup, RemoteCopy, RemoteState};
use crate::domain::jobs::{ActionOutcome, JobDetail};
use crate::domain::now_millis;
use crate::domain::retention::{plan_local_eviction, LocalSeen};
use crate::remote::{Remote, RemoteError};
use crate::service::{Result, ServiceError};

impl From<RemoteError> for ServiceError {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Corrupt(m) => {
                ServiceError::Refused(format!("the remote copy is damaged: {m}; it was not used"))
            }
            RemoteError::Io(m) => ServiceError::Internal(m),
            other => ServiceError::Remote(other.to_string()),
        }
    }
}

/// Takes a backup id out of the in-flight set when the send ends, however.
struct Sending<'a>(&'a Backups, Uuid);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0
            .inner
            .sending
            .lock()
            .expect("sending set poisoned")
            .remove(&self.1);
    }
}

impl Backups {
    pub(super) fn remote(&self) -> Option<&Remote> {
        self.inner.remote.as_ref()
    }

    /// Whether archives also go to remote storage (`backups.remote`),
    /// where every replica can fetch them.
    pub fn stores_remotely(&self) -> bool {
        self.inner.remote.is_some()
    }

    fn archive_key(&self, remote: &Remote, b: &Backup) -> String {
        remote.key(&b.project_id.to_string(), &b.file_name())
    }

    fn entry_key(&self, remote: &Remote, b: &Backup) -> String {
        remote.key(&b.project_id.to_string(), &format!("{}.json", b.id))
    }

    /// After a backup completes: marks it pending and sends it in the
    /// background (the request that made it does not wait for the upload).
    pub(super) async fn queue_offsite(&self, b: &mut Backup) -> Result<()> {
        if self.remote().is_none() {
            return Ok(());
        }
        let pending = RemoteCopy {
            state: RemoteState::Pending,
            at: None,
            error: None,
        };
        self.store().set_backup_remote(b.id, &pending).await?;
        b.remote = Some(pending);
        let (berth, b) = (self.clone(), b.clone());
        tokio::spawn(async move {
            if let Err(e) = berth.send_offsite(&b).await {
                tracing::warn!(backup = %b.id, error = %e, "remote copy failed; the backups job retries");
            }
        });
        Ok(())
    }

    /// Sends one backup and its catalogue entry; records the outcome.
    /// Returns `Ok(false)` when another task is already sending it.
    pub(super) async fn send_offsite(&self, b: &Backup) -> Result<bool> {
        let Some(remote) = self.remote() else {
            return Ok(false);
        };
        if !self
            .inner
            .sending
            .lock()
            .expect("sending set poisoned")
            .insert(b.id)
        {
            return Ok(false);
        }
        let _sending = Sending(self, b.id);
        let started = std::time::Instant::now();
        let result = self.upload(remote, b).await;
        let copy = match &result {
            Ok(()) => RemoteCopy {
                state: RemoteState::Stored,
                at: Some(now_millis()),
                error: None,
            },
            Err(e) => RemoteCopy {
                state: RemoteState::Failed,
                at: None,
                error: Some(e.to_string()),
            },
        };
        let outcome = if result.is_ok() { "stored" } else { "failed" };
        metrics::counter!("berth_backup_remote_total", "outcome" => outcome).increment(1);
        if result.is_ok() {
            metrics::histogram!("berth_backup_remote_duration_seconds")
                .record(started.elapsed().as_secs_f64());
        }
        // The backup may have been deleted meanwhile: then there is no row
        // to update, and the copy just made goes too.
        if self.store().backup(b.id).await?.is_none() {
            self.forget_offsite(b).await;
            return Ok(true);
        }
        self.store().set_backup_remote(b.id, &copy).await?;
        result.map(|()| true)
    }

    async fn upload(&self, remote: &Remote, b: &Backup) -> Result<()> {
        let sha = b
            .sha256
            .clone()
            .ok_or_else(|| ServiceError::Refused("the backup has no recorded checksum".into()))?;
        let path = self.backup_path(b)?;
        if !path.exists() {
            return Err(ServiceError::Conflict(
                "the backup's archive is missing here; nothing to send".into(),
            ));
        }
        remote
            .put_file(&self.archive_key(remote, b), &path, &sha)
            .await?;
        let project = self.store().project(b.project_id).await?;
        let entry = crate::remote::CatalogueEntry {
            v: crate::remote::CatalogueEntry::VERSION,
            id: b.id,
            project_id: b.project_id,
            project_name: project.map(|p| p.name),
            created_at: crate::domain::rfc3339(b.created_at),
            completed_at: b.completed_at.map(crate::domain::rfc3339),
            compression: b.compression.as_str().to_string(),
            size_bytes: b.size_bytes,
            sha256: sha,
            crash_consistent: b.crash_consistent,
            archive: b.file_name(),
        };
        remote.put_entry(&self.entry_key(remote, b), &entry).await?;
        Ok(())
    }

    /// Deletes a backup's remote copy, if it may have one. A failure is
    /// logged, not raised: the catalogue entry goes either way, and the
    /// message names the object to remove by hand.
    pub(super) async fn forget_offsite(&self, b: &Backup) {
        let Some(remote) = self.remote() else { return };
        if b.remote.is_none() && !self.inner.sending.lock().expect("poisoned").contains(&b.id) {
            return;
        }
        for key in [self.archive_key(remote, b), self.entry_key(remote, b)] {
            if let Err(e) = remote.delete(&key).await {
                metrics::counter!("berth_backup_remote_total", "outcome" => "delete_failed")
                    .increment(1);
                tracing::warn!(object = %remote.describe(&key), error = %e, "could not delete a backup's remote copy");
            }
        }
    }

    /// Makes sure a complete backup's archive is here: when the local file
    /// is gone and a remote copy is stored, fetches it back (refused unless
    /// it hashes to the catalogue's checksum).
    pub(super) async fn ensure_local(&self, b: &Backup, path: &Path) -> Result<()> {
        if path.exists() {
            return Ok(());
        }
        let stored = b
            .remote
            .as_ref()
            .is_some_and(|r| r.state == RemoteState::Stored);
        let (Some(remote), true) = (self.remote(), stored) else {
            return Err(ServiceError::Conflict(
                "the backup's archive is missing".into(),
            ));
        };
        let sha = b
            .sha256
            .clone()
            .ok_or_else(|| ServiceError::Refused("the backup has no recorded checksum".into()))?;
        let tmp = path.with_file_name(self.tmp_name(&format!(
            "{}.fetch-{}",
            b.file_name(),
            &Uuid::new_v4().simple().to_string()[..8]
        )));
        let key = self.archive_key(remote, b);
        tracing::info!(backup = %b.id, object = %remote.describe(&key), "fetching the archive back from remote storage");
        remote.get_file(&key, &tmp, &sha).await?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            ServiceError::Internal(format!("placing the fetched archive: {e}"))
        })?;
        metrics::counter!("berth_backup_remote_total", "outcome" => "fetched").increment(1);
        Ok(())
    }

    /// The backups job's remote pass: sends every complete backup whose
    /// copy is not stored (failed, pending from a stopped server, or made
    /// before remote copies were on).
    pub(crate) async fn send_pending_offsite(&self, dry_run: bool) -> Result<Vec<JobDetail>> {
        if self.remote().is_none() {
            return Ok(Vec::new());
        }
        let mut details = Vec::new();
        for b in self.store().backups_to_send().await? {
            // An archive that is not here cannot be sent; saying so every
            // minute would bury the report.
            if !self.backup_path(&b)?.exists() {
                continue;
            }
            let reason = match &b.remote {
                None => "no remote copy yet".to_string(),
                Some(r) if r.state == RemoteState::Failed => format!(
                    "the last attempt failed: {}",
                    r.error.as_deref().unwrap_or("?")
                ),
                Some(_) => "waiting to be sent".to_string(),
            };
            let mut detail = JobDetail {
                job: "backups".into(),
                action: "send_remote".into(),
                resource: b.id.to_string(),
                reason,
                outcome: ActionOutcome::Planned,
            };
            if !dry_run {
                detail.outcome = match self.send_offsite(&b).await {
                    Ok(true) => ActionOutcome::Done,
                    Ok(false) => ActionOutcome::Skipped("already being sent".into()),
                    Err(e) => ActionOutcome::failed(e),
                };
            }
            details.push(detail);
        }
        Ok(details)
    }

    /// The backups job's last pass, with `backups.remote.keep_local`:
    /// removes the local archives past the newest N per project whose
    /// remote copy is stored (`domain::retention::plan_local_eviction`).
    pub(crate) async fn evict_local(&self, dry_run: bool) -> Result<Vec<JobDetail>> {
        let Some(keep) = self.config().backups.remote.keep_local else {
            return Ok(Vec::new());
        };
        if self.remote().is_none() {
            return Ok(Vec::new());
        }
        let mut details = Vec::new();
        for project in self.store().projects(None).await? {
            let backups = self.store().backups_of(project.id).await?;
            let mut seen = Vec::with_capacity(backups.len());
            for b in &backups {
                seen.push(LocalSeen {
                    id: b.id,
                    created_at: b.created_at,
                    state: b.state,
                    stored_remotely: b
                        .remote
                        .as_ref()
                        .is_some_and(|r| r.state == RemoteState::Stored),
                    on_disk: self.backup_path(b)?.exists(),
                });
            }
            for id in plan_local_eviction(&seen, keep) {
                let Some(b) = backups.iter().find(|b| b.id == id) else {
                    continue;
                };
                let mut detail = JobDetail {
                    job: "backups".into(),
                    action: "evict_local".into(),
                    resource: id.to_string(),
                    reason: format!(
                        "its remote copy is stored; only the newest {keep} stay on this host"
                    ),
                    outcome: ActionOutcome::Planned,
                };
                if !dry_run {
                    detail.outcome = match std::fs::remove_file(self.backup_path(b)?) {
                        Ok(()) => ActionOutcome::Done,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ActionOutcome::Done,
                        Err(e) => ActionOutcome::failed(e),
                    };
                }
                details.push(detail);
            }
        }
        Ok(details)
    }
}

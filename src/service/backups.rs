//! Project volumes: backup, the backup catalogue, restore, clone and size.
//!
//! Bytes move through the volume's directory on the engine's host (Berth
//! runs as root beside the engine): measured several times faster than the
//! engine's archive API, which has to stream every byte through the daemon.
//! Without that access the operations answer 503 with the reason. Archives
//! are named by backup id under `<data_dir>/backups/`; a request never names
//! a host path. A restore extracts into a new volume and switches the
//! project to it only when complete, so a failure at any point, a killed
//! process included, leaves the project's data as it was.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Berth, Result, ServiceError};
use crate::backup::{self, ArchiveError};
use crate::domain::backups::{Backup, BackupState, Compression};
use crate::domain::{now_millis, Project, User};
use crate::engine::LABEL_PROJECT_ID;

/// How long a volume size stays cached.
const SIZE_TTL: Duration = Duration::from_secs(10);

impl From<ArchiveError> for ServiceError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::Unsafe(_) | ArchiveError::Corrupt(_) => {
                ServiceError::Refused(e.to_string())
            }
            ArchiveError::Io { .. } => ServiceError::Internal(e.to_string()),
        }
    }
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

/// Cached volume sizes, by volume name.
#[derive(Default)]
pub(super) struct SizeCache(HashMap<String, (Instant, u64)>);

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, ArchiveError> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Internal(format!("archive task failed: {e}")))?
        .map_err(Into::into)
}

impl Berth {
    /// The directory archives live in (created 0700 on first use).
    pub fn backup_dir(&self) -> Result<PathBuf> {
        let dir = self.config().data_dir.join("backups");
        std::fs::create_dir_all(&dir)
            .map_err(|e| ServiceError::Internal(format!("creating {}: {e}", dir.display())))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        Ok(dir)
    }

    /// The stored file of a backup.
    pub fn backup_path(&self, b: &Backup) -> Result<PathBuf> {
        Ok(self.backup_dir()?.join(b.file_name()))
    }

    /// At startup: backups a stopped server left `in_progress` are failed,
    /// and their partial files removed.
    pub async fn fail_interrupted_backups(&self) -> Result<usize> {
        let list = self.store().fail_interrupted_backups(now_millis()).await?;
        let dir = self.backup_dir()?;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(list.len())
    }

    /// The directory of a volume's data on this host.
    async fn volume_dir(&self, volume: &str) -> Result<PathBuf> {
        let mp = self
            .engine()
            .volume_mountpoint(volume)
            .await?
            .ok_or_else(|| {
                ServiceError::Conflict(format!("volume {volume} does not exist on the Docker host"))
            })?;
        let dir = PathBuf::from(mp);
        if std::fs::read_dir(&dir).is_err() {
            return Err(ServiceError::Unavailable(format!(
                "cannot read the volume's data at {} from here: volume operations need Berth \
                 to run as root on the Docker host",
                dir.display()
            )));
        }
        Ok(dir)
    }

    /// Running containers of the workspaces on a project.
    async fn running_on(&self, project: &Project) -> Result<Vec<(Uuid, String)>> {
        let mut out = Vec::new();
        for ws in self.store().workspaces_on_project(project.id).await? {
            if let Some(c) = self
                .engine()
                .inspect_container(&ws.container_name())
                .await?
            {
                if c.running {
                    out.push((ws.id, c.id));
                }
            }
        }
        Ok(out)
    }

    /// Backs up a project's volume into the catalogue.
    pub async fn create_backup(
        &self,
        user: &User,
        project_id: Uuid,
        compression: Compression,
        pause: bool,
    ) -> Result<Backup> {
        let project = self.project(user, project_id).await?;
        let _guard = self.lock_workspace(project.id).await;
        let src = self.volume_dir(&project.volume_name).await?;
        let running = self.running_on(&project).await?;
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
        };
        self.store().insert_backup(&b).await?;
        let final_path = self.backup_path(&b)?;
        let tmp = final_path.with_extension(format!("{}.tmp", compression.extension()));
        let mut paused = Vec::new();
        if pause {
            for (_, cid) in &running {
                match self.engine().pause_container(cid).await {
                    Ok(()) => paused.push(cid.clone()),
                    Err(e) => tracing::warn!(container = %cid, error = %e, "pause failed"),
                }
            }
        }
        let (src2, tmp2) = (src.clone(), tmp.clone());
        let result = blocking(move || backup::write_archive(&src2, &tmp2, compression)).await;
        // Always unpause, whatever happened.
        for cid in paused {
            if let Err(e) = self.engine().unpause_container(&cid).await {
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
                self.store().finish_backup(&b).await?;
                Ok(b)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                b.state = BackupState::Failed;
                b.error = Some(e.to_string());
                self.store().finish_backup(&b).await?;
                Err(e)
            }
        }
    }

    /// A backup the user may see, or NotFound.
    pub async fn backup(&self, user: &User, id: Uuid) -> Result<Backup> {
        match self.store().backup(id).await? {
            Some(b) if user.can_access(b.owner_id) => Ok(b),
            _ => Err(ServiceError::NotFound(format!("backup {id} not found"))),
        }
    }

    pub async fn backups_of(&self, user: &User, project_id: Uuid) -> Result<Vec<Backup>> {
        self.project(user, project_id).await?;
        Ok(self.store().backups_of(project_id).await?)
    }

    pub async fn delete_backup(&self, user: &User, id: Uuid) -> Result<()> {
        let b = self.backup(user, id).await?;
        if b.state == BackupState::InProgress {
            return Err(ServiceError::Conflict(
                "the backup is still being written".into(),
            ));
        }
        match std::fs::remove_file(self.backup_path(&b)?) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ServiceError::Internal(format!("removing the archive: {e}"))),
        }
        Ok(self.store().delete_backup(id).await?)
    }

    /// A complete backup and its file, for download.
    pub async fn backup_file(&self, user: &User, id: Uuid) -> Result<(Backup, PathBuf)> {
        let b = self.backup(user, id).await?;
        if b.state != BackupState::Complete {
            return Err(ServiceError::Conflict(format!("the backup is {}", b.state)));
        }
        let path = self.backup_path(&b)?;
        if !path.exists() {
            return Err(ServiceError::Conflict(
                "the backup's archive is missing".into(),
            ));
        }
        Ok((b, path))
    }

    /// Re-reads a backup: the checksum matches and every entry reads and
    /// would extract safely. Returns the number of entries.
    pub async fn verify_backup(&self, user: &User, id: Uuid) -> Result<(Backup, u64)> {
        let (b, path) = self.backup_file(user, id).await?;
        let entries = self.check_archive(&b, &path).await?;
        Ok((b, entries))
    }

    async fn check_archive(&self, b: &Backup, path: &Path) -> Result<u64> {
        let want = b.sha256.clone().unwrap_or_default();
        let (p, c) = (path.to_path_buf(), b.compression);
        blocking(move || {
            let got = backup::sha256_file(&p)?;
            if got != want {
                return Err(ArchiveError::Corrupt(format!(
                    "checksum mismatch (recorded {want}, file has {got})"
                )));
            }
            backup::verify_archive(&p, c)
        })
        .await
    }

    /// Replaces a project's data with a backup's. Verifies first; refuses
    /// while a workspace on the project runs unless `stop_workspaces`.
    pub async fn restore(
        &self,
        user: &User,
        project_id: Uuid,
        backup_id: Uuid,
        stop_workspaces: bool,
    ) -> Result<Restored> {
        let project = self.project(user, project_id).await?;
        let (b, path) = self.backup_file(user, backup_id).await?;
        let _guard = self.lock_workspace(project.id).await;
        self.check_archive(&b, &path).await?;
        let running = self.running_on(&project).await?;
        if !running.is_empty() && !stop_workspaces {
            return Err(ServiceError::Conflict(format!(
                "{} workspace(s) on this project are running; stop them or pass \"stopWorkspace\": true",
                running.len()
            )));
        }
        let short = Uuid::new_v4().simple().to_string();
        let new_volume = format!("berth-project-{}-{}", project.id, &short[..8]);
        let mut labels = self.base_labels();
        labels.insert(LABEL_PROJECT_ID.to_string(), project.id.to_string());
        self.engine().create_volume(&new_volume, labels).await?;
        let dst = match self.volume_dir(&new_volume).await {
            Ok(d) => d,
            Err(e) => {
                let _ = self.engine().remove_volume(&new_volume).await;
                return Err(e);
            }
        };
        let (p, c, d) = (path.clone(), b.compression, dst.clone());
        if let Err(e) = blocking(move || backup::extract_archive(&p, c, &d)).await {
            let _ = self.engine().remove_volume(&new_volume).await;
            return Err(e);
        }
        // The switch: stop what runs, drop containers that mount the old
        // volume (they are recreated on the new one at start), point the
        // project at the new volume, start again what ran.
        let user_ids: Vec<Uuid> = running.iter().map(|(w, _)| *w).collect();
        for w in &user_ids {
            self.stop_workspace(user, *w).await?;
        }
        for ws in self.store().workspaces_on_project(project.id).await? {
            let _wg = self.lock_workspace(ws.id).await;
            self.engine().remove_container(&ws.container_name()).await?;
        }
        self.store()
            .set_project_volume(project.id, &new_volume, now_millis())
            .await?;
        for w in &user_ids {
            self.start_workspace(user, *w).await?;
        }
        tracing::info!(project = %project.id, backup = %b.id, volume = %new_volume, "restored");
        Ok(Restored {
            backup: b,
            volume_name: new_volume,
            previous_volume: project.volume_name,
            restarted: user_ids,
        })
    }

    /// Copies one project's data into another's volume, keeping owners,
    /// modes, links and times. The target must be empty unless `overwrite`,
    /// and no workspace may run on it.
    pub async fn clone_volume(
        &self,
        user: &User,
        source_id: Uuid,
        target: Project,
        overwrite: bool,
    ) -> Result<Project> {
        let source = self.project(user, source_id).await?;
        if source.id == target.id {
            return Err(ServiceError::Invalid(
                "source and target are the same project".into(),
            ));
        }
        let _guard = self.lock_workspace(target.id).await;
        if !self.running_on(&target).await?.is_empty() {
            return Err(ServiceError::Conflict(
                "a workspace on the target project is running; stop it first".into(),
            ));
        }
        let src = self.volume_dir(&source.volume_name).await?;
        let dst = self.volume_dir(&target.volume_name).await?;
        let empty = std::fs::read_dir(&dst)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty && !overwrite {
            return Err(ServiceError::Conflict(
                "the target project's volume is not empty; pass \"overwrite\": true to replace its content"
                    .into(),
            ));
        }
        if !empty {
            let d = dst.clone();
            blocking(move || {
                for e in std::fs::read_dir(&d).map_err(|e| ArchiveError::Io {
                    context: "listing the target".into(),
                    source: e,
                })? {
                    let p = e
                        .map_err(|e| ArchiveError::Io {
                            context: "listing the target".into(),
                            source: e,
                        })?
                        .path();
                    let r = if p.is_dir() && !p.is_symlink() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                    r.map_err(|e| ArchiveError::Io {
                        context: format!("clearing {}", p.display()),
                        source: e,
                    })?;
                }
                Ok(())
            })
            .await?;
        }
        // cp -a keeps everything (hard links and xattrs too) at the speed of
        // the host's own copy.
        let out = tokio::process::Command::new("cp")
            .arg("-a")
            .arg("--")
            .arg(format!("{}/.", src.display()))
            .arg(&dst)
            .output()
            .await
            .map_err(|e| ServiceError::Internal(format!("running cp: {e}")))?;
        if !out.status.success() {
            return Err(ServiceError::Internal(format!(
                "copying the volume failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        self.inner
            .sizes
            .lock()
            .expect("sizes poisoned")
            .0
            .remove(&target.volume_name);
        Ok(target)
    }

    /// The apparent size of a project's data (as `du -sb`), cached briefly.
    pub async fn volume_size(&self, user: &User, project_id: Uuid) -> Result<u64> {
        let project = self.project(user, project_id).await?;
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
        let dir = self.volume_dir(&project.volume_name).await?;
        let size = blocking(move || backup::dir_size(&dir)).await?;
        self.inner
            .sizes
            .lock()
            .expect("sizes poisoned")
            .0
            .insert(project.volume_name, (Instant::now(), size));
        Ok(size)
    }
}

//! Backups of project volumes: making them, the backup catalogue, uploads,
//! verification, policies and pruning. Restores (and recoveries onto
//! another node) are here too: they need an archive. Clones, sizes and
//! moves are the `Volumes` service, which this one builds on.
//!
//! Bytes move through the volume's directory on the engine's host (Berth
//! runs as root beside the engine): measured several times faster than the
//! engine's archive API, which has to stream every byte through the daemon.
//! Without that access the operations answer 503 with the reason. Archives
//! are named by backup id under `<data_dir>/backups/`; a request never names
//! a host path. A restore extracts into a new volume and switches the
//! project to it only when complete, so a failure at any point, a killed
//! process included, leaves the project's data as it was.

mod catalogue;
mod create;
mod offsite;
mod policy;
mod restore;

pub use policy::BackupPolicy;
pub use restore::{Recovered, Restored};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use crate::backup::ArchiveError;
use crate::config::Config;
use crate::domain::backups::Backup;
use crate::domain::now_millis;
use crate::engine::Engine;
use crate::remote::Remote;
use crate::service::volumes::Volumes;
use crate::service::{Berth, Result, ServiceError};
use crate::store::{Store, Whose};

impl From<ArchiveError> for ServiceError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::Unsafe(_) | ArchiveError::Corrupt(_) => {
                ServiceError::Refused(e.to_string())
            }
            // Callers that set a budget say which limit it was
            // (`Budget::error`); this is the fallback.
            ArchiveError::TooLarge { .. } => ServiceError::TooLarge(e.to_string()),
            ArchiveError::Io { .. } => ServiceError::Storage(e.to_string()),
        }
    }
}

const MIB: u64 = 1024 * 1024;

/// What bounds an archive's contents for one upload or restore, and which
/// bound that is (its error names it).
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    pub(super) bytes: u64,
    by: BudgetBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BudgetBy {
    /// What the catalogue recorded: more means the archive is not the one
    /// that was checked.
    Catalogue,
    /// `backups.max_unpacked_mb`.
    Limit,
    /// The file system's free space less `backups.free_space_reserve_mb`.
    FreeSpace,
}

impl Budget {
    pub(super) fn error(
        self,
        config: &crate::config::BackupsConfig,
        e: ArchiveError,
    ) -> ServiceError {
        if !matches!(e, ArchiveError::TooLarge { .. }) {
            return e.into();
        }
        match self.by {
            BudgetBy::Catalogue => ServiceError::Refused(format!(
                "the archive holds more than the {} bytes its catalogue entry records; it is not the archive that was checked",
                self.bytes
            )),
            BudgetBy::Limit => ServiceError::TooLarge(format!(
                "the archive's files hold more than {} MB, the limit (backups.max_unpacked_mb = {})",
                self.bytes / MIB,
                config.max_unpacked_mb
            )),
            BudgetBy::FreeSpace => ServiceError::InsufficientStorage(format!(
                "the archive's files need more than the {} MB free on the volumes' file system (keeping backups.free_space_reserve_mb = {} free)",
                self.bytes / MIB,
                config.free_space_reserve_mb
            )),
        }
    }
}

/// Bytes free for unprivileged use on the file system holding `path`.
pub(super) fn free_bytes(path: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// What [`Backups::reap`] took care of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Backups that were being written, now failed.
    pub backups: usize,
    /// Partial volumes removed.
    pub volumes: usize,
    /// Helper containers removed.
    pub helpers: usize,
    /// Temporary files removed.
    pub files: usize,
}

/// A catalogue entry with its archive's place on this host.
#[derive(Debug, Clone)]
pub struct LocatedBackup {
    pub backup: Backup,
    /// Where the archive is (or would be); `None` without a backup directory.
    pub path: Option<PathBuf>,
    /// Whether the archive is on this host (else only its remote copy is).
    pub stored_locally: bool,
}

/// Backups and restores of project volumes, and their remote copies: a
/// service of its own, with its own state (the remote store, the sends in
/// flight). It copies through [`Volumes`] and drives workspaces through
/// [`Berth`] (their locks; stopping and starting them around a restore),
/// never the other way round.
#[derive(Clone)]
pub struct Backups {
    inner: Arc<Inner>,
}

struct Inner {
    volumes: Volumes,
    /// Where backups are copied off the host, if anywhere.
    remote: Option<Remote>,
    /// Backups whose remote copy is being sent right now.
    sending: Mutex<HashSet<Uuid>>,
}

impl Backups {
    pub fn new(volumes: Volumes) -> Backups {
        // The loader checked the settings; what fails here is the client
        // itself (TLS roots, say): say so and go on without remote copies.
        let remote = Remote::from_config(&volumes.config().backups.remote).unwrap_or_else(|e| {
            tracing::error!(error = %e, "remote backup storage is off");
            None
        });
        Backups {
            inner: Arc::new(Inner {
                volumes,
                remote,
                sending: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The volumes service this one takes its copies through.
    pub fn volumes(&self) -> &Volumes {
        &self.inner.volumes
    }

    fn berth(&self) -> &Berth {
        self.inner.volumes.berth()
    }

    fn store(&self) -> &Store {
        self.inner.volumes.store()
    }

    /// The engine of the node `node` (a project's volume lives on one).
    async fn engine_on(&self, node: &str) -> Result<Engine> {
        self.inner.volumes.engine_on(node).await
    }

    pub fn config(&self) -> &Config {
        self.inner.volumes.config()
    }
}

impl Backups {
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

    /// Where each backup's archive belongs on this host and whether it is
    /// there, looked up on a blocking thread (a listing checks every file).
    pub async fn locate_backups(&self, list: Vec<Backup>) -> Vec<LocatedBackup> {
        let located: Vec<(Backup, Option<PathBuf>)> = list
            .into_iter()
            .map(|b| {
                let path = self.backup_path(&b).ok();
                (b, path)
            })
            .collect();
        tokio::task::spawn_blocking(move || {
            located
                .into_iter()
                .map(|(backup, path)| LocatedBackup {
                    stored_locally: path.as_ref().is_some_and(|p| p.exists()),
                    path,
                    backup,
                })
                .collect()
        })
        .await
        .expect("locating backups does not panic")
    }

    /// As [`Backups::locate_backups`], for one.
    pub async fn locate_backup(&self, b: Backup) -> LocatedBackup {
        self.locate_backups(vec![b])
            .await
            .pop()
            .expect("one in, one out")
    }

    /// The name of a file this replica writes before it is complete
    /// (`domain::replicas::tmp_file_name`): a gone replica's are known by
    /// it.
    pub(super) fn tmp_name(&self, name: &str) -> String {
        crate::domain::replicas::tmp_file_name(name, self.berth().core().replicas().id())
    }

    /// The id of this replica's backup directory: a marker file in it
    /// (`.berth-archive-dir`) made at its first use. Replicas that share
    /// the directory see the same id.
    pub fn archive_dir_id(&self) -> Result<String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let file = self.backup_dir()?.join(".berth-archive-dir");
        let read = |f: &Path| {
            std::fs::read_to_string(f)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        };
        if let Some(id) = read(&file) {
            return Ok(id);
        }
        let id = Uuid::new_v4().to_string();
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .and_then(|mut f| {
                f.write_all(format!("{id}\n").as_bytes())?;
                f.sync_all()
            });
        match made {
            Ok(()) => Ok(id),
            // Another replica on the same directory made it first.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&file)
                .ok_or_else(|| ServiceError::Internal(format!("{} is empty", file.display()))),
            Err(e) => Err(ServiceError::Internal(format!(
                "writing {}: {e}",
                file.display()
            ))),
        }
    }

    /// Takes care of what `whose` left under way: the backups it was
    /// writing are failed (`why`), the volumes it was filling removed
    /// (unless their project was switched to them just before), its helper
    /// containers removed on every node, and in this replica's backup
    /// directory every temporary file of a replica not in `live` removed.
    /// Each step can be repeated: a reaper that stops half way is followed
    /// by another.
    pub async fn reap(&self, whose: Whose, why: &str, live: &[Uuid]) -> Result<Reaped> {
        let mut done = Reaped {
            backups: self
                .store()
                .fail_backups_of(whose, now_millis(), why)
                .await?
                .len(),
            ..Reaped::default()
        };
        for op in self.store().volume_ops_of(whose).await? {
            let switched = self
                .store()
                .project(op.project_id)
                .await?
                .is_some_and(|p| p.volume_name == op.volume);
            if !switched {
                let removed_now = match self.engine_on(&op.node).await {
                    Ok(engine) => engine.remove_volume(&op.volume).await,
                    Err(e) => {
                        tracing::warn!(volume = %op.volume, node = %op.node, error = %e, "cannot remove an interrupted operation's volume yet");
                        continue;
                    }
                };
                match removed_now {
                    Ok(()) => done.volumes += 1,
                    Err(crate::engine::EngineError::NotFound(_)) => {}
                    Err(e) => {
                        tracing::warn!(volume = %op.volume, error = %e, "cannot remove an interrupted operation's volume yet");
                        continue;
                    }
                }
                tracing::info!(volume = %op.volume, kind = %op.kind, "removed the volume of an interrupted {}", op.kind);
            }
            self.store().delete_volume_op(op.id).await?;
        }
        done.helpers = self.volumes().remove_helpers_of_the_gone(live).await;
        let dir = self.backup_dir()?;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if !name.ends_with(".tmp") {
                    continue;
                }
                // Untagged: written by a Berth from before replicas.
                let gone = crate::domain::replicas::tmp_file_owner(&name)
                    .is_none_or(|owner| !live.contains(&owner));
                if gone && std::fs::remove_file(e.path()).is_ok() {
                    done.files += 1;
                }
            }
        }
        Ok(done)
    }

    /// Removes this replica's archives of backups that are no longer in
    /// the catalogue: with several replicas, a backup deleted through
    /// another (by hand or by retention) may have had its archive here,
    /// where that replica could not reach it. Archives younger than ten
    /// minutes are left (an upload's record is written just after its
    /// file). Returns how many were removed.
    pub async fn sweep_local_archives(&self) -> Result<usize> {
        let dir = self.backup_dir()?;
        let listed: Vec<(Uuid, PathBuf)> = tokio::task::spawn_blocking(move || {
            let young = std::time::SystemTime::now() - Duration::from_secs(600);
            std::fs::read_dir(&dir)
                .map(|d| {
                    d.flatten()
                        .filter(|e| {
                            e.metadata()
                                .and_then(|m| m.modified())
                                .is_ok_and(|t| t < young)
                        })
                        .filter_map(|e| {
                            let name = e.file_name().to_string_lossy().to_string();
                            let id = name
                                .strip_suffix(".tar.zst")
                                .or_else(|| name.strip_suffix(".tar.gz"))?;
                            Some((Uuid::parse_str(id).ok()?, e.path()))
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("listing archives failed: {e}")))?;
        let mut removed = 0;
        for (id, path) in listed {
            if self.store().backup(id).await?.is_none() && std::fs::remove_file(&path).is_ok() {
                tracing::info!(backup = %id, "removed the archive of a backup no longer in the catalogue");
                removed += 1;
            }
        }
        Ok(removed)
    }
}

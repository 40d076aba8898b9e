//! Backups of project volumes: making them, the backup catalogue, uploads,
//! verification, policies and pruning. Restore, clone and size, which
//! replace or measure a volume as a whole, are in `volumes`.
//!
//! Bytes move through the volume's directory on the engine's host (Berth
//! runs as root beside the engine): measured several times faster than the
//! engine's archive API, which has to stream every byte through the daemon.
//! Without that access the operations answer 503 with the reason. Archives
//! are named by backup id under `<data_dir>/backups/`; a request never names
//! a host path. A restore extracts into a new volume and switches the
//! project to it only when complete, so a failure at any point, a killed
//! process included, leaves the project's data as it was.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::volume_io::Access;
use super::{Berth, Result, ServiceError};
use crate::backup::{self, ArchiveError};
use crate::config::Config;
use crate::domain::backups::{Backup, BackupOrigin, BackupState, Compression};
use crate::domain::retention::{plan_retention, BackupSeen, RetentionPolicy};
use crate::domain::{now_millis, Project, User};
use crate::engine::Engine;
use crate::remote::Remote;
use crate::store::{BackupPolicyRow, Store, Whose};

/// How long a volume size stays cached.
pub(super) const SIZE_TTL: Duration = Duration::from_secs(10);

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

/// Cached volume sizes, by volume name.
#[derive(Default)]
pub(super) struct SizeCache(pub(super) HashMap<String, (Instant, u64)>);

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, ArchiveError> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Internal(format!("archive task failed: {e}")))?
        .map_err(Into::into)
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

/// Backups, restores, clones and sizes of project volumes, and their
/// remote copies: a service of its own, with its own state (the size cache,
/// the remote store, the sends in flight). It drives workspaces through
/// [`Berth`] (their locks; stopping and starting them around a restore),
/// never the other way round.
#[derive(Clone)]
pub struct Backups {
    pub(super) inner: Arc<BackupsInner>,
}

pub(super) struct BackupsInner {
    berth: Berth,
    /// Recently computed volume sizes.
    pub(super) sizes: Mutex<SizeCache>,
    /// Where backups are copied off the host, if anywhere.
    pub(super) remote: Option<Remote>,
    /// Backups whose remote copy is being sent right now.
    pub(super) sending: Mutex<HashSet<Uuid>>,
}

impl Backups {
    pub fn new(berth: Berth) -> Backups {
        // The loader checked the settings; what fails here is the client
        // itself (TLS roots, say): say so and go on without remote copies.
        let remote =
            Remote::from_config(&berth.core().config().backups.remote).unwrap_or_else(|e| {
                tracing::error!(error = %e, "remote backup storage is off");
                None
            });
        Backups {
            inner: Arc::new(BackupsInner {
                berth,
                sizes: Mutex::new(SizeCache::default()),
                remote,
                sending: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The workspaces these volumes belong to.
    pub(super) fn berth(&self) -> &Berth {
        &self.inner.berth
    }

    pub(super) fn store(&self) -> &Store {
        self.inner.berth.core().store()
    }

    /// The engine of the node `node` (a project's volume lives on one).
    pub(super) async fn engine_on(&self, node: &str) -> Result<Engine> {
        self.inner.berth.core().engine_on(node).await
    }

    pub fn config(&self) -> &Config {
        self.inner.berth.core().config()
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
        done.helpers = self.remove_helpers_of_the_gone(live).await;
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

    /// The directory of a volume's data on this host.
    pub(super) async fn volume_dir(&self, engine: &Engine, volume: &str) -> Result<PathBuf> {
        let mp = engine.volume_mountpoint(volume).await?.ok_or_else(|| {
            ServiceError::Conflict(format!("volume {volume} does not exist on the Docker host"))
        })?;
        let dir = PathBuf::from(mp);
        if std::fs::read_dir(&dir).is_err() {
            return Err(ServiceError::VolumeAccess(format!(
                "cannot read the volume's data at {} from here (backups.volume_access = \"host\" \
                 needs Berth to run as root on the Docker host); set it to \"auto\" or \"engine\" \
                 to go through the engine's archive API",
                dir.display()
            )));
        }
        Ok(dir)
    }

    /// Running containers of the workspaces on a project (each on its
    /// node; a node that does not answer is `Unavailable`: what runs there
    /// cannot be known).
    pub(super) async fn running_on(&self, project: &Project) -> Result<Vec<(Uuid, String)>> {
        let mut out = Vec::new();
        for ws in self.store().workspaces_on_project(project.id).await? {
            if let Some(c) = self
                .berth()
                .core()
                .engine_of(&ws)
                .await?
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
        let access = self.access(&project.node, &project.volume_name).await?;
        let running = self.running_on(project).await?;
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
                self.archive_via_engine(&from, &project.volume_name, tmp.clone(), compression)
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

    /// A backup the user may see, or NotFound.
    pub async fn backup(&self, user: &User, id: Uuid) -> Result<Backup> {
        match self.store().backup(id).await? {
            Some(b) if user.can_access(b.owner_id) => Ok(b),
            _ => Err(ServiceError::NotFound(format!("backup {id} not found"))),
        }
    }

    pub async fn backups_of(&self, user: &User, project_id: Uuid) -> Result<Vec<Backup>> {
        self.berth().core().project(user, project_id).await?;
        Ok(self.store().backups_of(project_id).await?)
    }

    /// A page of [`Backups::backups_of`].
    pub async fn backups_page(
        &self,
        user: &User,
        project_id: Uuid,
        page: &crate::domain::page::PageRequest,
    ) -> Result<crate::domain::page::Page<Backup>> {
        self.berth().core().project(user, project_id).await?;
        Ok(self.store().backups_page(project_id, page).await?)
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
        self.store().delete_backup(id).await?;
        self.forget_offsite(&b).await;
        Ok(())
    }

    /// A complete backup and its file, for download.
    pub async fn backup_file(&self, user: &User, id: Uuid) -> Result<(Backup, PathBuf)> {
        let b = self.backup(user, id).await?;
        if b.state != BackupState::Complete {
            return Err(ServiceError::Conflict(format!("the backup is {}", b.state)));
        }
        let path = self.backup_path(&b)?;
        self.ensure_local(&b, &path).await?;
        Ok((b, path))
    }

    /// Re-reads a backup: the checksum matches and every entry reads and
    /// would extract safely. Returns the number of entries.
    pub async fn verify_backup(&self, user: &User, id: Uuid) -> Result<(Backup, u64)> {
        let (b, path) = self.backup_file(user, id).await?;
        let entries = self.check_archive(&b, &path).await?;
        Ok((b, entries))
    }

    pub(super) async fn check_archive(&self, b: &Backup, path: &Path) -> Result<u64> {
        let want = b.sha256.clone().unwrap_or_default();
        let (p, c) = (path.to_path_buf(), b.compression);
        let budget = self.budget(b, None)?;
        let rules = backup::ReadRules {
            budget: budget.bytes,
            strip_setid: b.origin.strips_setid(),
        };
        blocking(move || {
            let got = backup::sha256_file(&p)?;
            if got != want {
                return Err(ArchiveError::Corrupt(format!(
                    "checksum mismatch (recorded {want}, file has {got})"
                )));
            }
            backup::verify_archive(&p, c, rules)
        })
        .await
        .map_err(|e| match e {
            ServiceError::TooLarge(_) => budget.error(
                &self.config().backups,
                ArchiveError::TooLarge {
                    budget: budget.bytes,
                },
            ),
            other => other,
        })
        .map(|s| s.entries)
    }

    /// What a backup's files may hold when it is read: exactly what the
    /// catalogue recorded (refused beforehand past the limit or the free
    /// space of `dst`'s file system), else the limit or the free space,
    /// whichever is smaller.
    pub(super) fn budget(&self, b: &Backup, dst: Option<&Path>) -> Result<Budget> {
        let cfg = &self.config().backups;
        let limit = Budget {
            bytes: cfg.max_unpacked_mb.saturating_mul(MIB),
            by: BudgetBy::Limit,
        };
        let free = dst.and_then(free_bytes).map(|f| Budget {
            bytes: f.saturating_sub(cfg.free_space_reserve_mb.saturating_mul(MIB)),
            by: BudgetBy::FreeSpace,
        });
        let bound = match free {
            Some(f) if f.bytes < limit.bytes => f,
            _ => limit,
        };
        match b.content_bytes {
            Some(c) if c > bound.bytes => Err(bound.error(
                cfg,
                ArchiveError::TooLarge {
                    budget: bound.bytes,
                },
            )),
            Some(c) => Ok(Budget {
                bytes: c,
                by: BudgetBy::Catalogue,
            }),
            None => Ok(bound),
        }
    }
}

/// A project's backup schedule and retention, with where each came from.
#[derive(Debug, Clone)]
pub struct BackupPolicy {
    pub schedule: String,
    pub retention: RetentionPolicy,
    /// What the project set itself (the rest is the config's default).
    pub own: BackupPolicyRow,
}

impl Backups {
    pub(crate) fn effective_policy(&self, own: BackupPolicyRow) -> BackupPolicy {
        let d = &self.config().backups;
        BackupPolicy {
            schedule: own.schedule.clone().unwrap_or_else(|| d.schedule.clone()),
            retention: RetentionPolicy {
                keep_last: own.keep_last.unwrap_or(d.keep_last),
                keep_daily: own.keep_daily.unwrap_or(d.keep_daily),
                keep_weekly: own.keep_weekly.unwrap_or(d.keep_weekly),
            },
            own,
        }
    }

    pub async fn backup_policy(&self, user: &User, project_id: Uuid) -> Result<BackupPolicy> {
        self.berth().core().project(user, project_id).await?;
        let own = self.store().backup_policy(project_id).await?;
        Ok(self.effective_policy(own))
    }

    pub(crate) async fn policy_of(&self, project_id: Uuid) -> Result<BackupPolicy> {
        let own = self.store().backup_policy(project_id).await?;
        Ok(self.effective_policy(own))
    }

    /// Sets a project's own schedule and retention (unset: the default).
    pub async fn set_backup_policy(
        &self,
        user: &User,
        project_id: Uuid,
        own: BackupPolicyRow,
    ) -> Result<BackupPolicy> {
        self.berth().core().project(user, project_id).await?;
        if let Some(s) = &own.schedule {
            crate::config::parse_schedule(s)
                .map_err(|e| ServiceError::Invalid(format!("schedule: {e}")))?;
        }
        for (name, v) in [
            ("keepLast", own.keep_last),
            ("keepDaily", own.keep_daily),
            ("keepWeekly", own.keep_weekly),
        ] {
            if v.is_some_and(|v| v > 10_000) {
                return Err(ServiceError::Invalid(format!(
                    "{name} must be at most 10000"
                )));
            }
        }
        self.store().set_backup_policy(project_id, &own).await?;
        Ok(self.effective_policy(own))
    }

    /// Deletes what the project's retention policy no longer keeps; returns
    /// the ids deleted.
    pub(crate) async fn prune_backups(&self, project_id: Uuid) -> Result<Vec<Uuid>> {
        let policy = self.policy_of(project_id).await?;
        let all = self.store().backups_of(project_id).await?;
        let seen: Vec<BackupSeen> = all
            .iter()
            .map(|b| BackupSeen {
                id: b.id,
                created_at: b.created_at,
                state: b.state,
            })
            .collect();
        let gone = plan_retention(&seen, &policy.retention);
        for id in &gone {
            if let Some(b) = all.iter().find(|b| b.id == *id) {
                let _ = std::fs::remove_file(self.backup_path(b)?);
                self.store().delete_backup(*id).await?;
                self.forget_offsite(b).await;
            }
        }
        Ok(gone)
    }
}

impl Backups {
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
        let dst = match self.access(&project.node, &project.volume_name).await {
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

//! The backup catalogue as its users see it: list, look up, download,
//! verify and delete, each for its owner; and the checks an archive gets
//! before it is read (its checksum, and a budget of what it may unpack).

use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::*;
use crate::backup::{self, ArchiveError};
use crate::domain::backups::{Backup, BackupState};
use crate::domain::User;
use crate::service::volumes::blocking;
use crate::service::{Result, ServiceError};

impl Backups {
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

//! A project's backup schedule and retention (its own, or the config's
//! default), and pruning by it.

use uuid::Uuid;

use super::*;
use crate::domain::backups::PolicySettings;
use crate::domain::retention::{plan_retention, BackupSeen, RetentionPolicy};
use crate::domain::User;
use crate::service::{Result, ServiceError};

/// A project's backup schedule and retention, with where each came from.
#[derive(Debug, Clone)]
pub struct BackupPolicy {
    pub schedule: String,
    pub retention: RetentionPolicy,
    /// What the project set itself (the rest is the config's default).
    pub own: PolicySettings,
}

impl Backups {
    pub(crate) fn effective_policy(&self, own: PolicySettings) -> BackupPolicy {
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
        own: PolicySettings,
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

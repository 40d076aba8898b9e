//! The scheduled backup job: every check (default each minute) it backs up
//! the projects whose schedule has come round since their last backup, then
//! prunes their catalogue by the retention policy, then sends the remote
//! copies that are not stored yet (`backups.remote`).

use chrono::{DateTime, Local};

use super::Scheduler;
use crate::config::parse_schedule;
use crate::domain::backups::Compression;
use crate::domain::jobs::{ActionOutcome, JobDetail};
use crate::service::Result;

/// Whether a schedule has come round since `last` (the newest backup, or
/// the project's creation): its most recent time at or before `now` is
/// after `last`. (The job finds that time once per schedule and asks
/// [`came_round`]; this is the rule in one piece, for its tests.)
#[cfg(test)]
pub fn is_due(cron: &croner::Cron, last: DateTime<Local>, now: DateTime<Local>) -> bool {
    came_round(cron.find_previous_occurrence(&now, true).ok(), last)
}

/// As [`is_due`], given the schedule's most recent time at or before now
/// (`None`: it has none, or no schedule).
pub fn came_round(prev: Option<DateTime<Local>>, last: DateTime<Local>) -> bool {
    prev.is_some_and(|p| p > last)
}

fn local(ms: i64) -> DateTime<Local> {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&Local)
}

impl Scheduler {
    pub(super) async fn run_scheduled_backups(&self, dry_run: bool) -> Result<Vec<JobDetail>> {
        let now = Local::now();
        let mut details = Vec::new();
        // Three queries for every project's due date, not two per project.
        let own = self.berth.core().store().backup_policies().await?;
        let newest_of = self.berth.core().store().newest_backup_times().await?;
        // Most projects share the default schedule: its latest time at or
        // before now is found once, not once per project.
        let mut came: std::collections::HashMap<String, Option<DateTime<Local>>> =
            Default::default();
        for project in self.berth.core().store().projects(None).await? {
            let policy = self
                .backups
                .effective_policy(own.get(&project.id).cloned().unwrap_or_default());
            let prev = *came.entry(policy.schedule.clone()).or_insert_with(|| {
                parse_schedule(&policy.schedule)
                    .ok()
                    .flatten()
                    .and_then(|cron| cron.find_previous_occurrence(&now, true).ok())
            });

            let newest = newest_of
                .get(&project.id)
                .copied()
                .unwrap_or(project.created_at);
            if !came_round(prev, local(newest)) {
                continue;
            }
            let mut detail = JobDetail {
                job: "backups".into(),
                action: "backup".into(),
                resource: project.id.to_string(),
                reason: format!("schedule {:?} came round", policy.schedule),
                outcome: ActionOutcome::Planned,
            };
            if dry_run {
                details.push(detail);
                continue;
            }
            match self
                .backups
                .backup_project(&project, Compression::Zstd, false)
                .await
            {
                Ok(b) => {
                    detail.outcome = ActionOutcome::Done;
                    detail.reason = format!("{}; backup {}", detail.reason, b.id);
                }
                Err(e) => detail.outcome = ActionOutcome::failed(e),
            }
            details.push(detail);
            match self.backups.prune_backups(project.id).await {
                Ok(gone) => details.extend(gone.into_iter().map(|id| JobDetail {
                    job: "backups".into(),
                    action: "prune".into(),
                    resource: id.to_string(),
                    reason: "not kept by the retention policy".into(),
                    outcome: ActionOutcome::Done,
                })),
                Err(e) => details.push(JobDetail {
                    job: "backups".into(),
                    action: "prune".into(),
                    resource: project.id.to_string(),
                    reason: "retention".into(),
                    outcome: ActionOutcome::failed(e),
                }),
            }
        }
        // Then the remote copies that are not stored yet (a failed upload,
        // a server stopped mid-way, backups from before remote copies).
        match self.backups.send_pending_offsite(dry_run).await {
            Ok(sent) => details.extend(sent),
            Err(e) => details.push(JobDetail {
                job: "backups".into(),
                action: "send_remote".into(),
                resource: "catalogue".into(),
                reason: "remote copies".into(),
                outcome: ActionOutcome::failed(e),
            }),
        }
        // Last, with `keep_local`: local archives that live remotely now.
        match self.backups.evict_local(dry_run).await {
            Ok(gone) => details.extend(gone),
            Err(e) => details.push(JobDetail {
                job: "backups".into(),
                action: "evict_local".into(),
                resource: "catalogue".into(),
                reason: "backups.remote.keep_local".into(),
                outcome: ActionOutcome::failed(e),
            }),
        }
        Ok(details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn due_once_per_occurrence() {
        let cron: croner::Cron = "0 2 * * *".parse().unwrap();
        let at = |d, h, m| Local.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap();
        // Last backup yesterday 02:00; now 01:59 → not yet; 02:00 → due.
        assert!(!is_due(&cron, at(1, 2, 0), at(2, 1, 59)));
        assert!(is_due(&cron, at(1, 2, 0), at(2, 2, 0)));
        assert!(
            is_due(&cron, at(1, 2, 0), at(2, 9, 0)),
            "a missed time is caught up"
        );
        // Backed up at 02:00:30 today: not due again until tomorrow.
        let just_done = Local.with_ymd_and_hms(2026, 11, 2, 2, 0, 30).unwrap();
        assert!(!is_due(&cron, just_done, at(2, 23, 0)));
        assert!(is_due(&cron, just_done, at(3, 2, 0)));
    }
}

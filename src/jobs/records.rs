//! Two jobs that keep records rather than containers: `volume-sizes`
//! measures every project volume (what storage quotas count, approximate
//! between runs), and `audit-retention` removes audit records older than
//! `audit.retention_days`.

use super::Scheduler;
use crate::domain::jobs::{ActionOutcome, JobDetail};
use crate::service::Result;

impl Scheduler {
    pub(super) async fn measure_volumes(&self, dry_run: bool) -> Result<Vec<JobDetail>> {
        let mut details = Vec::new();
        for project in self.berth.core().store().projects(None).await? {
            let mut detail = JobDetail {
                job: "volume-sizes".into(),
                action: "measure".into(),
                resource: project.id.to_string(),
                reason: format!("volume {}", project.volume_name),
                outcome: ActionOutcome::Planned,
            };
            if !dry_run {
                detail.outcome = match self.backups.volumes().measure_project(&project).await {
                    Ok(bytes) => {
                        detail.reason = format!("volume {}: {bytes} bytes", project.volume_name);
                        ActionOutcome::Done
                    }
                    Err(e) => ActionOutcome::failed(e),
                };
            }
            details.push(detail);
        }
        Ok(details)
    }

    pub(super) async fn prune_audit(&self, dry_run: bool) -> Result<Vec<JobDetail>> {
        let (n, cutoff) = self.audit.prune(dry_run).await?;
        if n == 0 {
            return Ok(Vec::new());
        }
        Ok(vec![JobDetail {
            job: "audit-retention".into(),
            action: "remove_records".into(),
            resource: "audit log".into(),
            reason: format!(
                "{n} record(s) older than {} days (before {})",
                self.audit.retention_days(),
                crate::domain::rfc3339(cutoff)
            ),
            outcome: if dry_run {
                ActionOutcome::Planned
            } else {
                ActionOutcome::Done
            },
        }])
    }
}

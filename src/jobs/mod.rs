//! Scheduled jobs: the four cleanup reconcilers of SPEC §3 "Cleanup" on
//! 5-field cron schedules, run by one in-process scheduler. Each run is
//! recorded with what it did; a failing run is logged and recorded and the
//! scheduler carries on; a job never overlaps itself (a run that finds the
//! previous one still going is recorded as skipped); shutdown waits for
//! runs in progress.

mod backups;
mod cleanup;

pub use cleanup::CleanupReport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::config::{parse_schedule, Config};
use crate::domain::jobs::{JobOutcome, JobRun};
use crate::domain::now_millis;
use crate::service::{Backups, Berth, Result};

crate::domain::spelled_enum! {
    /// The jobs Berth runs.
    #[derive(PartialOrd, Ord)]
    pub enum JobName("job") {
        Inactive = "inactive",
        OrphanedContainers = "orphaned-containers",
        OrphanedVolumes = "orphaned-volumes",
        ErrorRecovery = "error-recovery",
        /// Backs up projects whose schedule is due, then prunes by retention.
        Backups = "backups",
    }
}

impl JobName {
    /// The four cleanup jobs of the design note.
    pub const CLEANUP: [JobName; 4] = [
        JobName::Inactive,
        JobName::OrphanedContainers,
        JobName::OrphanedVolumes,
        JobName::ErrorRecovery,
    ];

    /// The count's name in the cleanup report (the design note's keys).
    pub fn count_key(self) -> &'static str {
        match self {
            JobName::Inactive => "inactiveContainers",
            JobName::OrphanedContainers => "orphanedContainers",
            JobName::OrphanedVolumes => "orphanedVolumes",
            JobName::ErrorRecovery => "errorWorkspaces",
            JobName::Backups => "backups",
        }
    }

    /// The configured schedule text.
    pub fn schedule(self, config: &Config) -> &str {
        let s = &config.cleanup.schedules;
        match self {
            JobName::Inactive => &s.inactive,
            JobName::OrphanedContainers => &s.orphaned_containers,
            JobName::OrphanedVolumes => &s.orphaned_volumes,
            JobName::ErrorRecovery => &s.error_recovery,
            JobName::Backups => &config.backups.check_schedule,
        }
    }

    /// When the job runs next after `now`; `None` when it is off.
    pub fn next_run(self, config: &Config, now: DateTime<Local>) -> Option<DateTime<Local>> {
        parse_schedule(self.schedule(config))
            .ok()
            .flatten()
            .and_then(|c| c.find_next_occurrence(&now, false).ok())
    }
}

/// One lock per job, so a job never overlaps itself.
#[derive(Default)]
pub struct JobLocks {
    locks: BTreeMap<JobName, Arc<tokio::sync::Mutex<()>>>,
}

impl JobLocks {
    pub fn new() -> JobLocks {
        JobLocks {
            locks: JobName::ALL
                .into_iter()
                .map(|j| (j, Arc::new(tokio::sync::Mutex::new(()))))
                .collect(),
        }
    }

    /// Takes the job's lock if it is free: whoever holds it is "the run".
    pub fn try_hold(&self, job: JobName) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.locks[&job].clone().try_lock_owned().ok()
    }

    pub fn is_running(&self, job: JobName) -> bool {
        self.locks[&job].try_lock().is_err()
    }
}

/// The scheduler: runs the jobs on their schedules and on request, one run
/// of a job at a time. It drives the services it is handed; it is the only
/// owner of the job locks.
#[derive(Clone)]
pub struct Scheduler {
    berth: Berth,
    backups: Backups,
    locks: Arc<JobLocks>,
}

impl Scheduler {
    pub fn new(berth: Berth, backups: Backups) -> Scheduler {
        Scheduler {
            berth,
            backups,
            locks: Arc::new(JobLocks::new()),
        }
    }

    /// The job locks: held while a job runs.
    pub fn locks(&self) -> &JobLocks {
        &self.locks
    }

    /// The newest `limit` recorded runs of a job, newest first.
    pub async fn recent_runs(&self, job: JobName, limit: i64) -> Result<Vec<JobRun>> {
        Ok(self.berth.store().job_runs(job.as_str(), limit).await?)
    }

    /// A page of the job's history, newest first.
    pub async fn runs_page(
        &self,
        job: JobName,
        page: &crate::domain::page::PageRequest,
    ) -> Result<crate::domain::page::Page<JobRun>> {
        Ok(self.berth.store().job_runs_page(job.as_str(), page).await?)
    }

    /// The job's configured schedule text.
    pub fn schedule(&self, job: JobName) -> &str {
        job.schedule(self.berth.config())
    }

    /// When the job runs next; `None` when it is off.
    pub fn next_run(&self, job: JobName, now: DateTime<Local>) -> Option<DateTime<Local>> {
        job.next_run(self.berth.config(), now)
    }

    /// Runs one job now (or plans it, with `dry_run`), records the run and
    /// returns it. Skipped, not queued, when the job is already running.
    pub async fn run_job(&self, job: JobName, dry_run: bool) -> JobRun {
        let started_at = now_millis();
        let Some(_guard) = self.locks.try_hold(job) else {
            let run = JobRun {
                id: Uuid::new_v4(),
                name: job.as_str().into(),
                started_at,
                finished_at: started_at,
                outcome: JobOutcome::Skipped,
                dry_run,
                counts: BTreeMap::new(),
                details: Vec::new(),
                error: Some("the previous run was still going".into()),
            };
            self.save_run(&run).await;
            return run;
        };
        let result = self.execute_job(job, dry_run).await;
        let (details, error) = match result {
            Ok(details) => {
                let failed = details.iter().filter(|d| d.outcome.is_failed()).count();
                let error =
                    (failed > 0).then(|| format!("{failed} of {} actions failed", details.len()));
                (details, error)
            }
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let done = details.iter().filter(|d| d.outcome.counts()).count() as u64;
        let run = JobRun {
            id: Uuid::new_v4(),
            name: job.as_str().into(),
            started_at,
            finished_at: now_millis(),
            outcome: if error.is_some() {
                JobOutcome::Failed
            } else {
                JobOutcome::Ok
            },
            dry_run,
            counts: BTreeMap::from([(job.count_key().to_string(), done)]),
            details,
            error,
        };
        metrics::counter!("berth_job_runs_total", "job" => job.as_str(), "outcome" => run.outcome.as_str())
            .increment(1);
        metrics::histogram!("berth_job_duration_seconds", "job" => job.as_str())
            .record((run.finished_at - run.started_at) as f64 / 1000.0);
        for d in &run.details {
            metrics::counter!("berth_cleanup_actions_total", "job" => job.as_str(), "action" => d.action.clone(), "outcome" => d.outcome.kind())
                .increment(1);
        }
        match &run.error {
            Some(e) => tracing::warn!(job = job.as_str(), dry_run, error = %e, "job failed"),
            None => tracing::info!(job = job.as_str(), dry_run, actions = done, "job finished"),
        }
        self.save_run(&run).await;
        run
    }

    async fn save_run(&self, run: &JobRun) {
        if let Err(e) = self.berth.store().insert_job_run(run).await {
            tracing::error!(job = %run.name, error = %e, "recording a job run failed");
        }
    }

    /// Runs the four cleanup jobs now, one after the other (a failing one
    /// does not stop the rest), as `POST /api/workspaces/cleanup` does.
    pub async fn run_cleanup(&self, dry_run: bool) -> CleanupReport {
        let mut runs = Vec::new();
        for job in JobName::CLEANUP {
            runs.push(self.run_job(job, dry_run).await);
        }
        CleanupReport::from_runs(dry_run, runs)
    }

    /// Starts the scheduler: one task per enabled job, each sleeping until
    /// its next time. Ends when `shutdown` turns true, after any run in
    /// progress has finished.
    pub fn spawn(&self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let scheduler = self.clone();
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for job in JobName::ALL {
                let Ok(Some(cron)) = parse_schedule(job.schedule(scheduler.berth.config())) else {
                    tracing::info!(job = job.as_str(), "job is off");
                    continue;
                };
                let scheduler = scheduler.clone();
                let mut shutdown = shutdown.clone();
                tasks.push(tokio::spawn(async move {
                    loop {
                        let now = Local::now();
                        let Ok(next) = cron.find_next_occurrence(&now, false) else {
                            tracing::warn!(job = job.as_str(), "schedule has no next time");
                            return;
                        };
                        let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown.changed() => return,
                        }
                        if *shutdown.borrow() {
                            return;
                        }
                        scheduler.run_job(job, false).await;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    }
}

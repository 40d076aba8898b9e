//! Scheduled jobs: the four cleanup reconcilers (`docs/original-api.md` §3 "Cleanup") and
//! the backups job on 5-field cron schedules. Every replica runs the
//! schedules; each tick is run once, by the replica that records it first
//! (`job_runs` has one row per job and tick). Each run is recorded with
//! what it did; a failing run is logged and recorded and the scheduler
//! carries on; a job never overlaps itself, across replicas too (a run
//! that finds the previous one still going is recorded as skipped);
//! shutdown waits for runs in progress. `reaper`: what gone replicas left
//! under way.

mod backups;
mod cleanup;
mod reaper;
mod records;

pub use cleanup::CleanupReport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::config::{parse_schedule, Config};
pub use crate::domain::jobs::JobName;
use crate::domain::jobs::{JobOutcome, JobRun};
use crate::domain::{now_millis, Millis};
use crate::service::{Audit, Backups, Berth, Result};
use crate::store::LockKey;

/// The configured schedule text of `job`.
pub fn schedule_of(job: JobName, config: &Config) -> &str {
    let s = &config.cleanup.schedules;
    match job {
        JobName::Inactive => &s.inactive,
        JobName::OrphanedContainers => &s.orphaned_containers,
        JobName::OrphanedVolumes => &s.orphaned_volumes,
        JobName::ErrorRecovery => &s.error_recovery,
        JobName::Backups => &config.backups.check_schedule,
        JobName::VolumeSizes => &s.volume_sizes,
        JobName::AuditRetention => &config.audit.schedule,
    }
}

/// When `job` runs next after `now`; `None` when it is off.
pub fn next_run_of(job: JobName, config: &Config, now: DateTime<Local>) -> Option<DateTime<Local>> {
    parse_schedule(schedule_of(job, config))
        .ok()
        .flatten()
        .and_then(|c| next_tick(&c, now))
}

/// The schedule's next occurrence after `now`, in whole seconds: the tick
/// a run is recorded for. (croner keeps `now`'s fraction of a second in
/// what it finds, and replicas wake at different fractions: the same
/// occurrence must be the same tick for all of them.)
pub fn next_tick(cron: &croner::Cron, now: DateTime<Local>) -> Option<DateTime<Local>> {
    use chrono::Timelike;
    let next = cron.find_next_occurrence(&now, false).ok()?;
    next.with_nanosecond(0)
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
    audit: Audit,
    locks: Arc<JobLocks>,
}

impl Scheduler {
    pub fn new(berth: Berth, backups: Backups, audit: Audit) -> Scheduler {
        Scheduler {
            berth,
            backups,
            audit,
            locks: Arc::new(JobLocks::new()),
        }
    }

    /// The job locks: held while a job runs.
    pub fn locks(&self) -> &JobLocks {
        &self.locks
    }

    /// The newest `limit` recorded runs of a job, newest first.
    pub async fn recent_runs(&self, job: JobName, limit: i64) -> Result<Vec<JobRun>> {
        Ok(self
            .berth
            .core()
            .store()
            .job_runs(job.as_str(), limit)
            .await?)
    }

    /// A page of the job's history, newest first.
    pub async fn runs_page(
        &self,
        job: JobName,
        page: &crate::domain::page::PageRequest,
    ) -> Result<crate::domain::page::Page<JobRun>> {
        Ok(self
            .berth
            .core()
            .store()
            .job_runs_page(job.as_str(), page)
            .await?)
    }

    /// The job's configured schedule text.
    pub fn schedule(&self, job: JobName) -> &str {
        schedule_of(job, self.berth.core().config())
    }

    /// When the job runs next; `None` when it is off.
    pub fn next_run(&self, job: JobName, now: DateTime<Local>) -> Option<DateTime<Local>> {
        next_run_of(job, self.berth.core().config(), now)
    }

    /// Runs one job now (or plans it, with `dry_run`), records the run and
    /// returns it. Skipped, not queued, when the job is already running
    /// (here or on another replica).
    pub async fn run_job(&self, job: JobName, dry_run: bool) -> JobRun {
        self.run_for(job, dry_run, None)
            .await
            .expect("a run by hand is never another replica's")
    }

    /// Runs a job for one tick of its schedule (`tick`: the occurrence, in
    /// unix milliseconds), or by hand (`None`). The run is recorded before
    /// it begins, with the tick: of the replicas whose schedules reach the
    /// same tick, the first to record it runs it and the others get `None`.
    /// One run of a job at a time across replicas: the job's lock, this
    /// process's and the shared one.
    async fn run_for(&self, job: JobName, dry_run: bool, tick: Option<Millis>) -> Option<JobRun> {
        let started_at = now_millis();
        let mut run = JobRun {
            id: Uuid::new_v4(),
            name: job.as_str().into(),
            started_at,
            finished_at: started_at,
            outcome: JobOutcome::Running,
            dry_run,
            counts: BTreeMap::new(),
            details: Vec::new(),
            error: None,
            tick,
            replica: Some(self.berth.core().replicas().id()),
        };
        match self.berth.core().store().insert_job_run(&run).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(job = job.as_str(), ?tick, "another replica runs this tick");
                return None;
            }
            // Without the claim no scheduled run may go ahead (another
            // replica may have it); a run by hand goes on unrecorded.
            Err(e) => {
                crate::metrics::loop_failed("scheduler", "store");
                tracing::error!(job = job.as_str(), error = %e, "recording a job run failed");
                tick?;
            }
        }
        let local = self.locks.try_hold(job);
        let shared = match &local {
            Some(_) => self
                .berth
                .core()
                .replicas()
                .try_lock(&LockKey::Job(job.as_str().to_string()))
                .await
                .map_err(|e| e.to_string()),
            None => Ok(None),
        };
        let _held = match shared {
            Ok(Some(held)) => held,
            Ok(None) => {
                run.outcome = JobOutcome::Skipped;
                run.error = Some("the previous run was still going".into());
                run.finished_at = now_millis();
                self.finish(&run).await;
                return Some(run);
            }
            Err(e) => {
                run.outcome = JobOutcome::Failed;
                run.error = Some(format!("taking the job's lock failed: {e}"));
                run.finished_at = now_millis();
                self.finish(&run).await;
                return Some(run);
            }
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
        run.finished_at = now_millis();
        run.outcome = if error.is_some() {
            JobOutcome::Failed
        } else {
            JobOutcome::Ok
        };
        run.counts = BTreeMap::from([(job.count_key().to_string(), done)]);
        run.details = details;
        run.error = error;
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
        self.finish(&run).await;
        Some(run)
    }

    async fn finish(&self, run: &JobRun) {
        if let Err(e) = self.berth.core().store().finish_job_run(run).await {
            tracing::error!(job = %run.name, error = %e, "recording a job run failed");
        }
    }

    /// The jobs with a run under way on any replica.
    pub async fn running(&self) -> Result<Vec<JobName>> {
        Ok(self
            .berth
            .core()
            .store()
            .running_jobs()
            .await?
            .into_iter()
            .filter_map(|(name, _)| JobName::parse(&name))
            .collect())
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
                let Ok(Some(cron)) =
                    parse_schedule(schedule_of(job, scheduler.berth.core().config()))
                else {
                    tracing::info!(job = job.as_str(), "job is off");
                    continue;
                };
                let scheduler = scheduler.clone();
                let mut shutdown = shutdown.clone();
                tasks.push(tokio::spawn(async move {
                    // The tick run last: the next is after it, however
                    // early the timer woke.
                    let mut last: Option<DateTime<Local>> = None;
                    loop {
                        let now = Local::now();
                        let from = match last {
                            Some(t) if t >= now => t,
                            _ => now,
                        };
                        let Some(next) = next_tick(&cron, from) else {
                            tracing::warn!(job = job.as_str(), "schedule has no next time");
                            return;
                        };
                        last = Some(next);
                        let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = shutdown.changed() => return,
                        }
                        if *shutdown.borrow() {
                            return;
                        }
                        scheduler
                            .run_for(job, false, Some(next.timestamp_millis()))
                            .await;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn replicas_waking_at_different_moments_find_the_same_tick() {
        let cron = parse_schedule("* * * * *").unwrap().unwrap();
        let at = |h, m, s, ms| {
            Local
                .with_ymd_and_hms(2026, 12, 6, h, m, s)
                .unwrap()
                .checked_add_signed(chrono::Duration::milliseconds(ms))
                .unwrap()
        };
        let want = at(15, 2, 0, 0);
        for now in [at(15, 1, 0, 3), at(15, 1, 30, 500), at(15, 1, 59, 999)] {
            assert_eq!(next_tick(&cron, now), Some(want), "from {now}");
        }
        // From the tick itself: the one after.
        assert_eq!(next_tick(&cron, want), Some(at(15, 3, 0, 0)));
        let hourly = parse_schedule("0 * * * *").unwrap().unwrap();
        assert_eq!(next_tick(&hourly, at(15, 1, 0, 250)), Some(at(16, 0, 0, 0)));
    }
}

//! Cleanup and the job scheduler: `POST /api/workspaces/cleanup`,
//! `GET /api/jobs`, `POST /api/jobs/:name/run`. Admins only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Local;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::jobs::{JobDetail, JobRun};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiQuery, Caller};
use crate::http::wire::{ok, rfc3339, Timestamp};
use crate::jobs::{JobName, Scheduler};

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DryRunQuery {
    /// Report what would be done, and do nothing.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetailDto {
    job: String,
    action: String,
    resource: String,
    reason: String,
    outcome: String,
}

impl From<&JobDetail> for DetailDto {
    fn from(d: &JobDetail) -> Self {
        DetailDto {
            job: d.job.clone(),
            action: d.action.clone(),
            resource: d.resource.clone(),
            reason: d.reason.clone(),
            outcome: d.outcome.to_string(),
        }
    }
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunDto {
    id: uuid::Uuid,
    job: String,
    #[schemars(with = "Timestamp")]
    started_at: String,
    #[schemars(with = "Timestamp")]
    finished_at: String,
    #[schemars(with = "crate::domain::jobs::JobOutcome")]
    outcome: &'static str,
    dry_run: bool,
    counts: std::collections::BTreeMap<String, u64>,
    error: Option<String>,
    details: Vec<DetailDto>,
}

impl From<&JobRun> for RunDto {
    fn from(r: &JobRun) -> Self {
        RunDto {
            id: r.id,
            job: r.name.clone(),
            started_at: rfc3339(r.started_at),
            finished_at: rfc3339(r.finished_at),
            outcome: r.outcome.as_str(),
            dry_run: r.dry_run,
            counts: r.counts.clone(),
            error: r.error.clone(),
            details: r.details.iter().map(Into::into).collect(),
        }
    }
}

/// The design note's report: four counts, plus what was (or would be) done.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CleanupDto {
    inactive_containers: u64,
    orphaned_containers: u64,
    orphaned_volumes: u64,
    error_workspaces: u64,
    dry_run: bool,
    details: Vec<DetailDto>,
    /// Jobs that failed, with why (the others still ran).
    errors: Vec<JobErrorDto>,
}

#[derive(Serialize, JsonSchema)]
pub struct JobErrorDto {
    job: String,
    error: String,
}

pub async fn cleanup(
    State(scheduler): State<Scheduler>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<DryRunQuery>,
) -> ApiResult<Response> {
    let r = scheduler.run_cleanup(q.dry_run).await;
    let count = |k: JobName| r.counts.get(k.count_key()).copied().unwrap_or(0);
    Ok(ok(CleanupDto {
        inactive_containers: count(JobName::Inactive),
        orphaned_containers: count(JobName::OrphanedContainers),
        orphaned_volumes: count(JobName::OrphanedVolumes),
        error_workspaces: count(JobName::ErrorRecovery),
        dry_run: r.dry_run,
        details: r.details.iter().map(Into::into).collect(),
        errors: r
            .runs
            .iter()
            .filter_map(|run| {
                run.error.as_ref().map(|e| JobErrorDto {
                    job: run.name.clone(),
                    error: e.clone(),
                })
            })
            .collect(),
    }))
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobDto {
    name: &'static str,
    schedule: String,
    enabled: bool,
    #[schemars(with = "Option<Timestamp>")]
    next_run: Option<String>,
    running: bool,
    recent_runs: Vec<RunDto>,
}

pub async fn list(State(scheduler): State<Scheduler>, _caller: Caller) -> ApiResult<Response> {
    let now = Local::now();
    let mut out = Vec::new();
    for job in JobName::ALL {
        let runs = scheduler.recent_runs(job, 10).await?;
        let next = scheduler.next_run(job, now);
        out.push(JobDto {
            name: job.as_str(),
            schedule: scheduler.schedule(job).to_string(),
            enabled: next.is_some(),
            next_run: next.map(|t| t.to_rfc3339()),
            running: scheduler.locks().is_running(job),
            recent_runs: runs.iter().map(Into::into).collect(),
        });
    }
    Ok(ok(out))
}

pub async fn run(
    State(scheduler): State<Scheduler>,
    _caller: Caller,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<DryRunQuery>,
) -> ApiResult<Response> {
    let job = JobName::parse(&name).ok_or_else(|| {
        let known: Vec<&str> = JobName::ALL.iter().map(|j| j.as_str()).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no job {name:?}; jobs: {}", known.join(", ")),
        )
    })?;
    let run = scheduler.run_job(job, q.dry_run).await;
    Ok(ok(RunDto::from(&run)))
}

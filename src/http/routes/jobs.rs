//! Cleanup and the job scheduler: `POST /api/workspaces/cleanup`,
//! `GET /api/jobs`, `GET /api/jobs/:name/runs`, `POST /api/jobs/:name/run`.
//! Admins only.

use axum::extract::State;
use axum::response::Response;
use chrono::Local;

use crate::http::error::{ApiError, ApiResult, ErrorCode};
use crate::http::extract::{ApiQuery, Caller, TextPath};
use crate::http::wire::ok;
use crate::http::wire::*;
use crate::jobs::{JobName, Scheduler};

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

pub async fn list(State(scheduler): State<Scheduler>, _caller: Caller) -> ApiResult<Response> {
    let now = Local::now();
    let running = scheduler.running().await?;
    let mut out = Vec::new();
    for job in JobName::ALL {
        let runs = scheduler.recent_runs(job, 10).await?;
        let next = scheduler.next_run(job, now);
        out.push(JobDto {
            name: job.as_str().to_string(),
            schedule: scheduler.schedule(job).to_string(),
            enabled: next.is_some(),
            next_run: next.map(|t| t.to_rfc3339()),
            running: running.contains(&job),
            recent_runs: runs.iter().map(Into::into).collect(),
        });
    }
    Ok(ok(out))
}

fn job_named(name: &str) -> Result<JobName, ApiError> {
    JobName::parse(name).ok_or_else(|| {
        let known: Vec<&str> = JobName::ALL.iter().map(|j| j.as_str()).collect();
        ApiError::new(
            ErrorCode::NotFound,
            format!("no job {name:?}; jobs: {}", known.join(", ")),
        )
    })
}

/// `GET /api/jobs/{name}/runs`: the job's history, by pages.
pub async fn runs(
    State(scheduler): State<Scheduler>,
    _caller: Caller,
    TextPath(name): TextPath,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let job = job_named(&name)?;
    let page = q.request().map_err(ApiError::bad_request)?;
    let runs = scheduler.runs_page(job, &page).await?;
    Ok(crate::http::wire::ok_page(runs, |r| RunDto::from(&r)))
}

pub async fn run(
    State(scheduler): State<Scheduler>,
    _caller: Caller,
    TextPath(name): TextPath,
    ApiQuery(q): ApiQuery<DryRunQuery>,
) -> ApiResult<Response> {
    let job = job_named(&name)?;
    let run = scheduler.run_job(job, q.dry_run).await;
    Ok(ok(RunDto::from(&run)))
}

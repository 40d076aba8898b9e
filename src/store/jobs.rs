//! Job runs, the volume retention clocks, and the little the cleanup jobs
//! need beyond the other tables (deleted projects, activity times).

use std::collections::HashMap;

use sqlx::Row;
use uuid::Uuid;

use super::{get_uuid, Result, Store, StoreError};
use crate::domain::cleanup::ProjectSeen;
use crate::domain::jobs::{JobOutcome, JobRun};
use crate::domain::Millis;

impl Store {
    /// Records a run; `false` (nothing written) when a run of the same
    /// job for the same tick was recorded already, by any replica.
    pub async fn insert_job_run(&self, r: &JobRun) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO job_runs (id, name, started_at, finished_at, outcome, dry_run, counts, details, error, tick, replica) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
        )
        .bind(r.id.to_string())
        .bind(&r.name)
        .bind(r.started_at)
        .bind(r.finished_at)
        .bind(r.outcome.as_str())
        .bind(i64::from(r.dry_run))
        .bind(serde_json::to_string(&r.counts).expect("counts serialise"))
        .bind(serde_json::to_string(&r.details).expect("details serialise"))
        .bind(r.error.clone())
        .bind(r.tick)
        .bind(r.replica.map(|x| x.to_string()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes how a recorded run ended (unless it was taken for
    /// interrupted meanwhile: its replica looked gone).
    pub async fn finish_job_run(&self, r: &JobRun) -> Result<()> {
        sqlx::query(
            "UPDATE job_runs SET finished_at = $1, outcome = $2, counts = $3, details = $4, error = $5 \
             WHERE id = $6 AND outcome = 'running'",
        )
        .bind(r.finished_at)
        .bind(r.outcome.as_str())
        .bind(serde_json::to_string(&r.counts).expect("counts serialise"))
        .bind(serde_json::to_string(&r.details).expect("details serialise"))
        .bind(r.error.clone())
        .bind(r.id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The jobs with a run under way, with the replica running each.
    pub async fn running_jobs(&self) -> Result<Vec<(String, Option<Uuid>)>> {
        let rows = sqlx::query("SELECT name, replica FROM job_runs WHERE outcome = 'running'")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, super::get_opt_uuid(r, "replica")?)))
            .collect()
    }

    /// The newest runs of one job, newest first.
    pub async fn job_runs(&self, name: &str, limit: i64) -> Result<Vec<JobRun>> {
        let rows = sqlx::query(
            "SELECT * FROM job_runs WHERE name = $1 ORDER BY started_at DESC, id LIMIT $2",
        )
        .bind(name)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_run_from_row).collect()
    }

    /// Every project record, live or deleted, for the volume planner.
    pub async fn projects_seen(&self) -> Result<Vec<ProjectSeen>> {
        let rows = sqlx::query("SELECT id, deleted_at, volume_name FROM projects")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ProjectSeen {
                    id: get_uuid(r, "id")?,
                    deleted_at: r.try_get("deleted_at")?,
                    volume_name: r.try_get("volume_name")?,
                })
            })
            .collect()
    }

    pub async fn volume_clocks(&self) -> Result<HashMap<String, Millis>> {
        let rows = sqlx::query("SELECT name, first_seen_at FROM volume_clocks")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("first_seen_at")?)))
            .collect()
    }

    pub async fn start_volume_clock(&self, name: &str, at: Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO volume_clocks (name, first_seen_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn clear_volume_clock(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM volume_clocks WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Moves a workspace's last activity forward to `at` (never back).
    pub async fn touch_activity(&self, id: Uuid, at: Millis) -> Result<()> {
        sqlx::query(
            "UPDATE workspaces SET last_activity_at = $1 \
             WHERE id = $2 AND (last_activity_at IS NULL OR last_activity_at < $1)",
        )
        .bind(at)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets a workspace's last activity, also backwards (operators' repair,
    /// and tests that need an old workspace).
    pub async fn set_last_activity(&self, id: Uuid, at: Option<Millis>) -> Result<()> {
        sqlx::query("UPDATE workspaces SET last_activity_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Sets when a project was deleted (operators' repair, and tests that
    /// need a retention period to have passed).
    pub async fn set_project_deleted_at(&self, id: Uuid, at: Millis) -> Result<()> {
        sqlx::query("UPDATE projects SET deleted_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

pub(super) fn job_run_from_row(r: &sqlx::any::AnyRow) -> Result<JobRun> {
    let outcome: String = r.try_get("outcome")?;
    let counts: String = r.try_get("counts")?;
    let details: String = r.try_get("details")?;
    let dry: i64 = r.try_get("dry_run")?;
    Ok(JobRun {
        id: get_uuid(r, "id")?,
        name: r.try_get("name")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        outcome: JobOutcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("outcome {outcome:?}")))?,
        dry_run: dry != 0,
        counts: serde_json::from_str(&counts)
            .map_err(|e| StoreError::Corrupt(format!("counts: {e}")))?,
        details: serde_json::from_str(&details)
            .map_err(|e| StoreError::Corrupt(format!("details: {e}")))?,
        error: r.try_get("error")?,
        tick: r.try_get("tick")?,
        replica: super::get_opt_uuid(r, "replica")?,
    })
}

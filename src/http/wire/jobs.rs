//! Jobs and cleanup on the wire.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::jobs::{JobDetail, JobRun};
use crate::http::wire::{rfc3339, Timestamp};

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DryRunQuery {
    /// Report what would be done, and do nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DetailDto {
    pub job: String,
    pub action: String,
    pub resource: String,
    pub reason: String,
    pub outcome: String,
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

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunDto {
    pub id: uuid::Uuid,
    pub job: String,
    #[schemars(with = "Timestamp")]
    pub started_at: String,
    #[schemars(with = "Timestamp")]
    pub finished_at: String,
    #[schemars(with = "crate::domain::jobs::JobOutcome")]
    pub outcome: String,
    pub dry_run: bool,
    pub counts: std::collections::BTreeMap<String, u64>,
    pub error: Option<String>,
    pub details: Vec<DetailDto>,
    /// The occurrence of the schedule this run is for; absent for a run
    /// by hand. One run per tick, across replicas.
    #[schemars(with = "Option<Timestamp>")]
    pub tick: Option<String>,
    /// The replica that ran it (`GET /api/replicas`).
    pub replica: Option<uuid::Uuid>,
}

impl From<&JobRun> for RunDto {
    fn from(r: &JobRun) -> Self {
        RunDto {
            id: r.id,
            job: r.name.clone(),
            started_at: rfc3339(r.started_at),
            finished_at: rfc3339(r.finished_at),
            outcome: r.outcome.as_str().to_string(),
            dry_run: r.dry_run,
            counts: r.counts.clone(),
            error: r.error.clone(),
            details: r.details.iter().map(Into::into).collect(),
            tick: r.tick.map(rfc3339),
            replica: r.replica,
        }
    }
}

/// The original API's report: four counts, plus what was (or would be) done.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CleanupDto {
    pub inactive_containers: u64,
    pub orphaned_containers: u64,
    pub orphaned_volumes: u64,
    pub error_workspaces: u64,
    pub dry_run: bool,
    pub details: Vec<DetailDto>,
    /// Jobs that failed, with why (the others still ran).
    pub errors: Vec<JobErrorDto>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct JobErrorDto {
    pub job: String,
    pub error: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobDto {
    pub name: String,
    pub schedule: String,
    pub enabled: bool,
    #[schemars(with = "Option<Timestamp>")]
    pub next_run: Option<String>,
    pub running: bool,
    pub recent_runs: Vec<RunDto>,
}

/// One Berth process serving from the database (a replica).
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaDto {
    pub id: uuid::Uuid,
    /// Where it serves (`host:port`).
    pub name: String,
    /// `live` (recent heartbeat), `stopped` (a clean stop) or `gone` (no
    /// heartbeat for `replicas.dead_after_s`; what it left under way was
    /// taken care of by another).
    #[schemars(with = "crate::domain::replicas::ReplicaState")]
    pub state: String,
    /// Whether it is the replica that answered this request.
    pub current: bool,
    pub version: String,
    pub pid: i64,
    #[schemars(with = "Timestamp")]
    pub started_at: String,
    #[schemars(with = "Timestamp")]
    pub heartbeat_at: String,
    #[schemars(with = "Option<Timestamp>")]
    pub stopped_at: Option<String>,
    /// When another replica took care of its unfinished work, and which.
    #[schemars(with = "Option<Timestamp>")]
    pub reaped_at: Option<String>,
    pub reaped_by: Option<uuid::Uuid>,
}

impl ReplicaDto {
    pub fn new(
        r: &crate::domain::replicas::Replica,
        state: crate::domain::replicas::ReplicaState,
        current: uuid::Uuid,
    ) -> ReplicaDto {
        ReplicaDto {
            id: r.id,
            name: r.name.clone(),
            state: state.as_str().to_string(),
            current: r.id == current,
            version: r.version.clone(),
            pid: r.pid,
            started_at: rfc3339(r.started_at),
            heartbeat_at: rfc3339(r.heartbeat_at),
            stopped_at: r.stopped_at.map(rfc3339),
            reaped_at: r.reaped_at.map(rfc3339),
            reaped_by: r.reaped_by,
        }
    }
}

//! Job runs: what a scheduled or manual job did, kept for `GET /api/jobs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Millis;

/// One thing a job did (or, in a dry run, would do) to one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDetail {
    pub job: String,
    /// What was done: `stop`, `remove_container`, `remove_volume`, …
    pub action: String,
    /// The resource: a workspace id, container name or volume name.
    pub resource: String,
    pub reason: String,
    /// `done`, `planned` (dry run) or `failed: <why>`.
    pub outcome: String,
}

/// How a run ended.
/// Serialized (and described) as `as_str` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    Ok,
    /// The job could not finish (e.g. the engine failed); see `error`.
    Failed,
    /// The previous run of the same job was still going.
    Skipped,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Ok => "ok",
            JobOutcome::Failed => "failed",
            JobOutcome::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<JobOutcome> {
        match s {
            "ok" => Some(JobOutcome::Ok),
            "failed" => Some(JobOutcome::Failed),
            "skipped" => Some(JobOutcome::Skipped),
            _ => None,
        }
    }
}

/// One run of a job.
#[derive(Debug, Clone)]
pub struct JobRun {
    pub id: Uuid,
    pub name: String,
    pub started_at: Millis,
    pub finished_at: Millis,
    pub outcome: JobOutcome,
    pub dry_run: bool,
    /// Counts by kind of action, e.g. `{"orphanedContainers": 2}`.
    pub counts: BTreeMap<String, u64>,
    pub details: Vec<JobDetail>,
    pub error: Option<String>,
}

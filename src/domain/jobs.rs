//! Job runs: what a scheduled or manual job did, kept for `GET /api/jobs`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Millis;

super::spelled_enum! {
    /// The jobs Berth runs.
    #[derive(PartialOrd, Ord)]
    pub enum JobName("job") {
        Inactive = "inactive",
        OrphanedContainers = "orphaned-containers",
        OrphanedVolumes = "orphaned-volumes",
        ErrorRecovery = "error-recovery",
        /// Backs up projects whose schedule is due, then prunes by retention.
        Backups = "backups",
        /// Measures every project volume's size (what storage quotas count).
        VolumeSizes = "volume-sizes",
        /// Removes audit records older than `audit.retention_days`.
        AuditRetention = "audit-retention",
    }
}

impl JobName {
    /// The four cleanup jobs of the original (`docs/original-api.md` §3).
    pub const CLEANUP: [JobName; 4] = [
        JobName::Inactive,
        JobName::OrphanedContainers,
        JobName::OrphanedVolumes,
        JobName::ErrorRecovery,
    ];

    /// The count's name in the cleanup report (the original API's keys).
    pub fn count_key(self) -> &'static str {
        match self {
            JobName::Inactive => "inactiveContainers",
            JobName::OrphanedContainers => "orphanedContainers",
            JobName::OrphanedVolumes => "orphanedVolumes",
            JobName::ErrorRecovery => "errorWorkspaces",
            JobName::Backups => "backups",
            JobName::VolumeSizes => "volumesMeasured",
            JobName::AuditRetention => "auditRecordsRemoved",
        }
    }
}

/// One thing a job did (or, in a dry run, would do) to one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDetail {
    pub job: String,
    /// What was done: `stop`, `remove_container`, `remove_volume`, …
    pub action: String,
    /// The resource: a workspace id, container name or volume name.
    pub resource: String,
    pub reason: String,
    pub outcome: ActionOutcome,
}

/// How one action of a job ended. Spelled `done`, `planned` (a dry run),
/// `skipped: <why>` or `failed: <why>`, in the API and in stored runs alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    Done,
    Planned,
    /// Not needed after all (e.g. the resource changed since planning).
    Skipped(String),
    Failed(String),
}

impl ActionOutcome {
    pub fn failed(why: impl fmt::Display) -> ActionOutcome {
        ActionOutcome::Failed(why.to_string())
    }

    /// The outcome without its reason: a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            ActionOutcome::Done => "done",
            ActionOutcome::Planned => "planned",
            ActionOutcome::Skipped(_) => "skipped",
            ActionOutcome::Failed(_) => "failed",
        }
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, ActionOutcome::Failed(_))
    }

    /// Whether the action happened (or, in a dry run, would).
    pub fn counts(&self) -> bool {
        matches!(self, ActionOutcome::Done | ActionOutcome::Planned)
    }
}

impl fmt::Display for ActionOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActionOutcome::Skipped(why) => write!(f, "skipped: {why}"),
            ActionOutcome::Failed(why) => write!(f, "failed: {why}"),
            other => f.write_str(other.kind()),
        }
    }
}

impl Serialize for ActionOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ActionOutcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FromStr for ActionOutcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "done" => Ok(ActionOutcome::Done),
            "planned" => Ok(ActionOutcome::Planned),
            "failed" => Ok(ActionOutcome::Failed(String::new())),
            _ => {
                if let Some(why) = s.strip_prefix("failed: ") {
                    Ok(ActionOutcome::Failed(why.to_string()))
                } else if let Some(why) = s.strip_prefix("skipped: ") {
                    Ok(ActionOutcome::Skipped(why.to_string()))
                } else {
                    Err(format!("unknown action outcome {s:?}"))
                }
            }
        }
    }
}

super::spelled_enum! {
    /// How a run ended.
    pub enum JobOutcome("job outcome") {
        Ok = "ok",
        /// The job could not finish (e.g. the engine failed); see `error`.
        Failed = "failed",
        /// The previous run of the same job was still going.
        Skipped = "skipped",
        /// Under way (on the replica that recorded it).
        Running = "running",
        /// Its replica stopped answering before it ended.
        Interrupted = "interrupted",
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
    /// The occurrence of the schedule this run is for (`None`: run by
    /// hand): one run per tick, whichever replica records it first.
    pub tick: Option<Millis>,
    /// The replica that ran it.
    pub replica: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_outcomes_keep_the_spelling_stored_runs_have() {
        for (text, outcome) in [
            ("done", ActionOutcome::Done),
            ("planned", ActionOutcome::Planned),
            (
                "failed: engine said no",
                ActionOutcome::failed("engine said no"),
            ),
            ("skipped: in use", ActionOutcome::Skipped("in use".into())),
        ] {
            assert_eq!(outcome.to_string(), text);
            assert_eq!(text.parse::<ActionOutcome>().unwrap(), outcome);
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(json, format!("\"{text}\""));
        }
        // A row written before the type existed loads.
        let old = r#"{"job":"inactive","action":"stop","resource":"w","reason":"idle","outcome":"failed: gone"}"#;
        let d: JobDetail = serde_json::from_str(old).unwrap();
        assert_eq!(d.outcome, ActionOutcome::failed("gone"));
        assert_eq!(d.outcome.kind(), "failed");
        assert!("bogus".parse::<ActionOutcome>().is_err());
    }
}

//! Log and stats query parameters, and the live stream's events.

use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsParams {
    /// Lines from the end: a number up to `logs.max_tail` (100000), or `all`.
    #[schemars(regex(pattern = r"^(all|[0-9]+)$"))]
    pub tail: Option<String>,
    /// Lines written at or after this time (Unix seconds).
    #[schemars(range(min = 0, max = 2147483647))]
    pub since: Option<i64>,
    /// Lines written before this time (Unix seconds).
    #[schemars(range(min = 0, max = 2147483647))]
    pub until: Option<i64>,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: Option<bool>,
    /// `stdout`, `stderr` or `all`.
    #[schemars(extend("enum" = ["stdout", "stderr", "all", null]))]
    pub stream: Option<String>,
    /// Answer as a file download.
    pub download: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogStreamParams {
    /// Lines from the end to send first: a number up to `logs.max_tail`, or `all`.
    #[schemars(regex(pattern = r"^(all|[0-9]+)$"))]
    pub tail: Option<String>,
    /// Start at this time (Unix seconds).
    #[schemars(range(min = 0, max = 2147483647))]
    pub since: Option<i64>,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: Option<bool>,
    /// `stdout`, `stderr` or `all`.
    #[schemars(extend("enum" = ["stdout", "stderr", "all", null]))]
    pub stream: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsStreamParams {
    /// Seconds between events (1 to 60, default 2).
    #[schemars(range(min = 1, max = 60))]
    pub interval: Option<u64>,
}

/// One workspace's state as the live stream sends it.
#[derive(serde::Serialize, PartialEq, Clone)]
#[serde(rename_all = "camelCase")]
pub struct LiveState {
    pub id: uuid::Uuid,
    pub status: crate::domain::WorkspaceStatus,
    pub status_reason: Option<String>,
    /// As `GET /api/workspaces/{id}/health` says.
    pub health: crate::domain::Health,
}

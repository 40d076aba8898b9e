//! What an engine says about a container, as the rest of Berth reads it:
//! the engine adapter (`engine`) makes these from Docker's answers, the
//! services decide from them, and the API's wire types are made from them,
//! so neither the services' callers nor the HTTP layer name an engine type.

use std::collections::HashMap;

use super::Health;

/// One health check run, as the engine recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthProbe {
    pub exit_code: i64,
    pub output: String,
    pub start: String,
    pub end: String,
}

/// The engine's view of a container's health.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// `Starting`, `Healthy` or `Unhealthy`.
    pub status: Health,
    pub failing_streak: i64,
    /// Oldest first, as the engine keeps them (at most 5).
    pub log: Vec<HealthProbe>,
}

/// What the engine says about a container right now.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub image: String,
    /// The engine's status word: created, running, exited, …
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub exit_code: i64,
    pub oom_killed: bool,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub restart_count: i64,
    /// The main process on the host, while running.
    pub pid: Option<u32>,
    /// `None` when the container has no health check.
    pub health: Option<HealthReport>,
    /// The 127.0.0.1 port the workspace port is published on, while running.
    pub host_port: Option<u16>,
    pub labels: HashMap<String, String>,
}

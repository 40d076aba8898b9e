//! The domain: what a user, project, workspace and workspace type are, and the
//! rules their values obey. Pure data and validation; no I/O, no wire formats.

pub mod accounts;
pub mod apps;
pub mod audit;
pub mod backups;
pub mod cleanup;
pub mod containers;
pub mod git;
pub mod images;
pub mod jobs;
pub mod limits;
pub mod nodes;
pub mod page;
pub mod placement;
pub mod proxy;
pub mod quota;
pub mod recovery;
pub mod replicas;
pub mod retention;
mod spelled;
pub mod text;
pub mod throttle;
pub mod transition;
pub mod types;

pub use limits::{
    HealthCheck, HealthCheckOverride, LimitsError, ResourceLimits, ResourceOverrides,
};
pub use types::{ActivityProbe, TypeAvailability, WorkspaceType};

use uuid::Uuid;

pub(crate) use spelled::spelled_enum;

/// Milliseconds since the Unix epoch: how the store keeps every instant, so
/// the same SQL runs on SQLite and Postgres.
pub type Millis = i64;

/// Now, in [`Millis`].
pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A time as RFC 3339 in UTC with milliseconds, as every API answer and
/// stored document spells it.
pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

spelled_enum! {
    /// A user's role. Members see their own resources only; admins see all.
    pub enum Role("role") {
        Admin = "admin",
        Member = "member",
    }
}

/// A person who uses Berth.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub created_at: Millis,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this user may see and act on a resource owned by `owner`.
    /// Everything that answers a request by id goes through this, so that
    /// another member's resource is indistinguishable from a missing one.
    pub fn can_access(&self, owner: Uuid) -> bool {
        self.is_admin() || self.id == owner
    }
}

/// A project: a named, persistent Docker volume that workspaces mount.
#[derive(Debug, Clone)]
pub struct Project {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub description: String,
    /// The workspace type this project is meant for; `None` fits any type.
    pub workspace_type: Option<String>,
    /// The workspace this project was assigned to, if any.
    pub workspace_id: Option<Uuid>,
    pub volume_name: String,
    /// The node its volume lives on (which pins its workspaces there).
    pub node: String,
    /// The repository it was cloned from, if it was.
    pub git: Option<git::GitOrigin>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The Docker volume name of a project: stable, derived from the id.
pub fn project_volume_name(id: Uuid) -> String {
    format!("berth-project-{id}")
}

/// A new volume for project `id`'s data, named apart from the one it has
/// (a restore, clone, move or recovery fills it, then switches to it).
pub fn fresh_volume_name(id: Uuid) -> String {
    let short = Uuid::new_v4().simple().to_string();
    format!("berth-project-{id}-{}", &short[..8])
}

/// What every workspace container's name starts with.
pub const WORKSPACE_CONTAINER_PREFIX: &str = "berth-ws-";

/// The Docker container name of a workspace: stable, derived from the id.
pub fn workspace_container_name(id: Uuid) -> String {
    format!("{WORKSPACE_CONTAINER_PREFIX}{id}")
}

spelled_enum! {
    /// Where a workspace stands. Health is reported separately.
    #[derive(PartialOrd, Ord)]
    pub enum WorkspaceStatus("workspace status") {
        /// No container running; the initial state.
        Stopped = "stopped",
        Starting = "starting",
        Running = "running",
        Stopping = "stopping",
        /// Something went wrong; the workspace record carries the reason.
        Error = "error",
        /// Kept for reference; not startable until unarchived.
        Archived = "archived",
    }
}

impl WorkspaceStatus {
    /// Whether a workspace in this status holds room on its node (what a
    /// node's "allocated" counts, for placement and for every start): from
    /// the start until it is stopped.
    pub fn holds_room(self) -> bool {
        matches!(
            self,
            WorkspaceStatus::Starting | WorkspaceStatus::Running | WorkspaceStatus::Stopping
        )
    }
}

spelled_enum! {
    /// How a workspace's health check stands, as the engine reports it
    /// (`Starting`, `Healthy`, `Unhealthy`) or as a summary says why there
    /// is none.
    pub enum Health("health") {
        Healthy = "healthy",
        Unhealthy = "unhealthy",
        /// The check has not passed yet.
        Starting = "starting",
        /// The container runs without a health check.
        NoCheck = "none",
        /// The container is not running.
        Stopped = "stopped",
        /// The workspace has no container.
        NoContainer = "no_container",
    }
}

/// Per-workspace settings layered over the type's defaults (stored as
/// `store::settings` says, not in these types' API spelling).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkspaceSettings {
    pub resources: ResourceOverrides,
    pub health_check: HealthCheckOverride,
}

/// A workspace: one container of a configured type, on a project's volume.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub description: String,
    pub type_name: String,
    pub project_id: Option<Uuid>,
    /// The node its container lives on (its project's; see
    /// `service::placement`). Every engine call for it goes there.
    pub node: String,
    pub is_default: bool,
    pub settings: WorkspaceSettings,
    pub status: WorkspaceStatus,
    /// Why the workspace is in its status, when that needs saying
    /// (an error's cause, a container that exited on its own).
    pub status_reason: Option<String>,
    pub container_id: Option<String>,
    pub host_port: Option<u16>,
    pub last_activity_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Workspace {
    pub fn container_name(&self) -> String {
        workspace_container_name(self.id)
    }
}

spelled_enum! {
    /// Where a workspace's resource figures were read.
    pub enum SampleSource("sample source") {
        /// The container's cgroup files, read directly (the fast way).
        Cgroup = "cgroup",
        /// The engine's stats API (another host's engine, or no access to
        /// the cgroup files).
        Engine = "engine",
    }
}

/// Something that happened to a workspace, kept for its owner to read.
#[derive(Debug, Clone)]
pub struct WorkspaceEvent {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub at: Millis,
    pub kind: EventKind,
    pub message: String,
}

spelled_enum! {
    /// The kinds of [`WorkspaceEvent`].
    pub enum EventKind("event kind") {
        Started = "started",
        Stopped = "stopped",
        Restarted = "restarted",
        Failed = "failed",
        RecoveryScheduled = "recovery_scheduled",
        RecoveryRestart = "recovery_restart",
        RecoveryGaveUp = "recovery_gave_up",
        /// A process of the workspace was killed for exceeding its memory.
        Oom = "oom",
        LimitsChanged = "limits_changed",
    }
}

/// Checks a user-given name: 1 to 100 characters under the text rule
/// ([`text::check`], before trimming: a CR/LF is refused, not trimmed
/// away), not only spaces. Returns the trimmed name or a message saying
/// what to fix.
pub fn validate_name(field: &str, raw: &str) -> Result<String, String> {
    text::check(field, raw, text::Shape::Line, 100)?;
    let name = raw.trim();
    if name.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    Ok(name.to_string())
}

/// Checks a free-text description: at most 2000 characters, no control
/// characters but line breaks and tabs.
pub fn validate_description(raw: &str) -> Result<String, String> {
    validate_text("description", raw, 2000, true)?;
    Ok(raw.trim().to_string())
}

/// Checks text a user gives (a description, a command) under the text
/// rule ([`text::check`]): at most `max` characters, tabs and line feeds
/// only where `multiline`.
pub fn validate_text(field: &str, raw: &str, max: usize, multiline: bool) -> Result<(), String> {
    let shape = if multiline {
        text::Shape::Multiline
    } else {
        text::Shape::Line
    };
    text::check(field, raw, shape, max)
}

/// Checks a number given in a query or body: within `min..=max`, else a
/// message naming the field and the range.
pub fn validate_range(field: &str, value: i64, min: i64, max: i64) -> Result<i64, String> {
    if value < min || value > max {
        return Err(format!(
            "{field} must be between {min} and {max} (got {value})"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_name() {
        for st in WorkspaceStatus::ALL {
            assert_eq!(st.as_str().parse::<WorkspaceStatus>().unwrap(), st);
        }
        assert!("bogus".parse::<WorkspaceStatus>().is_err());
    }

    #[test]
    fn text_refuses_control_characters_but_line_breaks_where_allowed() {
        assert!(validate_text("d", "two\nlines\tand a tab", 100, true).is_ok());
        assert!(validate_text("d", "a\rb", 100, true).is_err());
        assert!(validate_text("d", "\u{0}", 100, true).is_err());
        assert!(validate_text("d", "esc\u{1b}[31m", 100, true).is_err());
        assert!(validate_text("d", "a\nb", 100, false).is_err());
        assert!(validate_text("d", &"x".repeat(101), 100, true).is_err());
        assert!(validate_description("ok\u{7f}").is_err());
        assert_eq!(validate_range("limit", 5, 1, 10), Ok(5));
        assert!(validate_range("limit", 0, 1, 10)
            .unwrap_err()
            .contains("between 1 and 10"));
        assert!(validate_range("limit", -1, 1, 10).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("name", "  a b ").unwrap(), "a b");
        assert!(validate_name("name", "   ").is_err());
        assert!(validate_name("name", &"x".repeat(101)).is_err());
        assert!(validate_name("name", &"x".repeat(100)).is_ok());
        assert!(validate_name("name", "a\u{0}b").is_err());
        // Refused, not trimmed into something else (issue 28).
        assert!(validate_name("name", "\r\nSet-Cookie: pwn=1").is_err());
        assert!(validate_name("name", "abc\u{202E}gpj.exe").is_err());
    }

    #[test]
    fn admins_access_everything_members_their_own() {
        let owner = Uuid::new_v4();
        let mut u = User {
            id: owner,
            email: "a@x".into(),
            role: Role::Member,
            created_at: 0,
        };
        assert!(u.can_access(owner));
        assert!(!u.can_access(Uuid::new_v4()));
        u.role = Role::Admin;
        assert!(u.can_access(Uuid::new_v4()));
    }

    #[test]
    fn names_derive_from_ids() {
        let id = Uuid::nil();
        assert_eq!(
            project_volume_name(id),
            "berth-project-00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(
            workspace_container_name(id),
            "berth-ws-00000000-0000-0000-0000-000000000000"
        );
    }
}

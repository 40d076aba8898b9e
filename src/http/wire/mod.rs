//! Wire types: the JSON the API reads and writes, in the original system's
//! camelCase shapes. Only the HTTP layer knows these; domain types never
//! derive a wire format of their own.

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod backups;
mod jobs;
mod observe;

pub use backups::*;
pub use jobs::*;
pub use observe::*;

use crate::domain::accounts::Holdings;
use crate::domain::{
    Health, HealthCheck, HealthCheckOverride, Millis, Project, ResourceLimits, ResourceOverrides,
    Role, User, Workspace, WorkspaceEvent,
};
use crate::engine::{ContainerState, HealthProbe, HealthReport};
use crate::service::{
    HealthSummary, HistoryPoint, ResourceUse, StatsView, StatusReport, TypeInfo, WorkspaceStats,
};
use crate::store::TokenInfo;

/// The success envelope `{"success": true, "data": …, "message"?: …}`.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Envelope<T: Serialize> {
    pub success: bool,
    pub data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

pub fn ok<T: Serialize>(data: T) -> Response {
    Json(Envelope {
        success: true,
        data,
        message: None,
    })
    .into_response()
}

pub fn ok_with<T: Serialize>(data: T, message: impl Into<String>) -> Response {
    Json(Envelope {
        success: true,
        data,
        message: Some(message.into()),
    })
    .into_response()
}

/// Schema of a time on the wire: an RFC 3339 string, as [`rfc3339`] and the
/// engine write them. Used with `#[schemars(with = "Timestamp")]` on the
/// `String` fields that carry times.
pub struct Timestamp;

impl JsonSchema for Timestamp {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time" })
    }
}

/// Schema of a name as `domain::validate_name` accepts it: 1 to 100
/// characters, not only spaces, no control characters.
pub struct Name;

impl JsonSchema for Name {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Name".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 100,
            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
        })
    }
}

pub fn rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

// ---- requests ----

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProjectRequest {
    #[schemars(with = "Name")]
    pub name: String,
    #[schemars(length(max = 2000))]
    pub description: Option<String>,
    pub workspace_type: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteProjectQuery {
    /// Also remove the project's volume and backups now.
    #[serde(default)]
    pub purge: bool,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWorkspaceRequest {
    #[schemars(with = "Name")]
    pub name: String,
    #[schemars(length(max = 2000))]
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub type_name: String,
    pub is_default: Option<bool>,
    pub project_id: Option<Uuid>,
    pub resource_limits: Option<ResourceOverrides>,
    pub health_check: Option<HealthCheckOverride>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWorkspaceRequest {
    #[schemars(with = "Option<Name>")]
    pub name: Option<String>,
    #[schemars(length(max = 2000))]
    pub description: Option<String>,
    pub is_default: Option<bool>,
    pub current_project_id: Option<Uuid>,
    pub archived: Option<bool>,
    pub health_check: Option<HealthCheckOverride>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectIdRequest {
    pub project_id: Uuid,
}

// ---- responses ----

/// `GET /healthz`.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct HealthzDto {
    #[schemars(extend("const" = "ok"))]
    pub status: String,
    pub version: String,
}

/// What a delete answers: the id of what is gone.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct DeletedDto {
    pub id: Uuid,
}

/// `DELETE /api/projects/:id`.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct ProjectDeletedDto {
    pub id: Uuid,
    /// Whether the volume and the backups went with the project.
    pub purged: bool,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggedOutDto {
    pub logged_out: bool,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    pub id: Uuid,
    pub email: String,
    #[schemars(with = "crate::domain::Role")]
    pub role: String,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
}

impl From<&User> for UserDto {
    fn from(u: &User) -> Self {
        UserDto {
            id: u.id,
            email: u.email.clone(),
            role: u.role.as_str().to_string(),
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    pub access_token: String,
    #[schemars(extend("const" = "Bearer"))]
    pub token_type: String,
    #[schemars(with = "Timestamp")]
    pub expires_at: String,
    pub user: UserDto,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectDto {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub description: String,
    pub workspace_type: Option<String>,
    pub workspace_id: Option<Uuid>,
    pub volume_name: String,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
    #[schemars(with = "Timestamp")]
    pub updated_at: String,
}

impl From<&Project> for ProjectDto {
    fn from(p: &Project) -> Self {
        ProjectDto {
            id: p.id,
            user_id: p.owner_id,
            name: p.name.clone(),
            description: p.description.clone(),
            workspace_type: p.workspace_type.clone(),
            workspace_id: p.workspace_id,
            volume_name: p.volume_name.clone(),
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

/// Limits in the original system's units: cores and MB.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsDto {
    pub cpus: f64,
    pub memory: u64,
    pub memory_swap: u64,
    pub memory_reservation: Option<u64>,
}

impl From<&ResourceLimits> for LimitsDto {
    fn from(l: &ResourceLimits) -> Self {
        LimitsDto {
            cpus: l.cpus,
            memory: l.memory_mb,
            memory_swap: l.effective_swap_mb(),
            memory_reservation: l.memory_reservation_mb,
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckDto {
    pub enabled: bool,
    pub command: String,
    pub interval: u64,
    pub timeout: u64,
    pub retries: u32,
    pub start_period: u64,
}

impl From<&HealthCheck> for HealthCheckDto {
    fn from(h: &HealthCheck) -> Self {
        HealthCheckDto {
            enabled: !h.disabled,
            command: h.command.clone(),
            interval: h.interval_s,
            timeout: h.timeout_s,
            retries: h.retries,
            start_period: h.start_period_s,
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TypeDto {
    #[serde(rename = "type")]
    pub type_name: String,
    pub description: String,
    pub image: String,
    pub port: u16,
    pub resource_limits: LimitsDto,
    pub health_check: Option<HealthCheckDto>,
    pub available: bool,
    pub unavailable_reason: Option<String>,
}

impl From<&TypeInfo> for TypeDto {
    fn from(t: &TypeInfo) -> Self {
        TypeDto {
            type_name: t.name.clone(),
            description: t.config.description.clone(),
            image: t.config.image.clone(),
            port: t.config.port,
            resource_limits: (&t.config.resources).into(),
            health_check: t.config.health_check.as_ref().map(Into::into),
            available: t.available,
            unavailable_reason: t.reason.clone(),
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceConfigDto {
    pub image: String,
    pub port: u16,
    pub resource_limits: LimitsDto,
    pub health_check: Option<HealthCheckDto>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceDto {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub type_name: String,
    #[schemars(with = "crate::domain::WorkspaceStatus")]
    pub status: String,
    pub status_reason: Option<String>,
    pub is_default: bool,
    pub current_project_id: Option<Uuid>,
    pub container_id: Option<String>,
    pub container_name: String,
    pub host_port: Option<u16>,
    /// Where the workspace answers on the Berth host, while running.
    pub url: Option<String>,
    /// What a person opens: the app's own origin when `proxy.app_domain` is
    /// set, else its path under Berth (`/api/workspaces/{id}/proxy/`).
    pub app_url: String,
    pub config: Option<WorkspaceConfigDto>,
    #[schemars(with = "Option<Timestamp>")]
    pub last_activity_at: Option<String>,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
    #[schemars(with = "Timestamp")]
    pub updated_at: String,
}

impl WorkspaceDto {
    /// `config` is `None` when the workspace's type was removed from the
    /// configuration (the record is still shown, and can be deleted).
    pub fn new(w: &Workspace, config: Option<WorkspaceConfigDto>, app_url: String) -> Self {
        WorkspaceDto {
            id: w.id,
            user_id: w.owner_id,
            name: w.name.clone(),
            description: w.description.clone(),
            type_name: w.type_name.clone(),
            status: w.status.as_str().to_string(),
            status_reason: w.status_reason.clone(),
            is_default: w.is_default,
            current_project_id: w.project_id,
            container_id: w.container_id.clone(),
            container_name: w.container_name(),
            host_port: w.host_port,
            url: w.host_port.map(|p| format!("http://127.0.0.1:{p}/")),
            app_url,
            config,
            last_activity_at: w.last_activity_at.map(rfc3339),
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsDto {
    pub total: usize,
    pub by_type: BTreeMap<String, usize>,
    pub by_status: BTreeMap<String, usize>,
    pub default_workspace: Option<WorkspaceDto>,
}

impl StatsDto {
    pub fn new(s: &WorkspaceStats, default_workspace: Option<WorkspaceDto>) -> Self {
        StatsDto {
            total: s.total,
            by_type: s.by_type.clone(),
            by_status: s.by_status.clone(),
            default_workspace,
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthProbeDto {
    pub exit_code: i64,
    pub output: String,
    #[schemars(with = "Timestamp")]
    pub start: String,
    #[schemars(with = "Timestamp")]
    pub end: String,
}

impl From<&HealthProbe> for HealthProbeDto {
    fn from(p: &HealthProbe) -> Self {
        HealthProbeDto {
            exit_code: p.exit_code,
            output: p.output.clone(),
            start: p.start.clone(),
            end: p.end.clone(),
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthDto {
    pub status: String,
    pub failing_streak: i64,
    /// The last 3 checks, oldest first.
    pub log: Vec<HealthProbeDto>,
}

impl From<&HealthReport> for HealthDto {
    fn from(h: &HealthReport) -> Self {
        let skip = h.log.len().saturating_sub(3);
        HealthDto {
            status: h.status.to_string(),
            failing_streak: h.failing_streak,
            log: h.log.iter().skip(skip).map(Into::into).collect(),
        }
    }
}

/// A summary of the container, not the raw inspect (which would expose the
/// environment of the container to anyone who can read its status).
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInfoDto {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: String,
    pub running: bool,
    pub paused: bool,
    pub exit_code: i64,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub error: Option<String>,
    #[schemars(with = "Option<Timestamp>")]
    pub started_at: Option<String>,
    #[schemars(with = "Option<Timestamp>")]
    pub finished_at: Option<String>,
    pub restart_count: i64,
    pub host_port: Option<u16>,
}

impl From<&ContainerState> for ContainerInfoDto {
    fn from(c: &ContainerState) -> Self {
        ContainerInfoDto {
            id: c.id.clone(),
            name: c.name.clone(),
            image: c.image.clone(),
            state: c.status.clone(),
            running: c.running,
            paused: c.paused,
            exit_code: c.exit_code,
            oom_killed: c.oom_killed,
            error: c.error.clone(),
            started_at: c.started_at.clone(),
            finished_at: c.finished_at.clone(),
            restart_count: c.restart_count,
            host_port: c.host_port.filter(|_| c.running),
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusDto {
    #[schemars(with = "crate::domain::WorkspaceStatus")]
    pub status: String,
    pub status_reason: Option<String>,
    pub container_running: bool,
    pub container_info: Option<ContainerInfoDto>,
    pub health: Option<HealthDto>,
    pub resources: Option<ResourcesDto>,
}

/// The design note's `resources`: CPU % and memory in MB.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesDto {
    pub cpu_usage: Option<f64>,
    pub memory_usage: f64,
    pub memory_limit: Option<f64>,
    /// Where the figures were read: the cgroup files or the engine's stats API.
    #[schemars(extend("enum" = ["cgroup", "engine"]))]
    pub source: String,
}

impl From<&ResourceUse> for ResourcesDto {
    fn from(r: &ResourceUse) -> Self {
        ResourcesDto {
            cpu_usage: r.cpu_percent,
            memory_usage: r.memory_usage_mb,
            memory_limit: r.memory_limit_mb,
            source: r.source.to_string(),
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastCheckDto {
    pub exit_code: i64,
    pub output: String,
    #[schemars(with = "Timestamp")]
    pub timestamp: String,
}

/// `GET /api/workspaces/:id/health`, the design note's shape plus a message.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponseDto {
    pub healthy: bool,
    #[schemars(extend("enum" = ["healthy", "unhealthy", "starting", "none", "stopped", "no_container"]))]
    pub status: String,
    pub failing_streak: i64,
    pub last_check: Option<LastCheckDto>,
    pub message: String,
}

impl From<&HealthSummary> for HealthResponseDto {
    fn from(h: &HealthSummary) -> Self {
        HealthResponseDto {
            healthy: h.status == Health::Healthy,
            status: h.status.as_str().to_string(),
            failing_streak: h.failing_streak,
            last_check: h.last_check.as_ref().map(|p| LastCheckDto {
                exit_code: p.exit_code,
                output: p.output.clone(),
                timestamp: p.end.clone(),
            }),
            message: h.message.clone(),
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventDto {
    pub id: Uuid,
    #[schemars(with = "Timestamp")]
    pub at: String,
    pub kind: String,
    pub message: String,
}

impl From<&WorkspaceEvent> for EventDto {
    fn from(e: &WorkspaceEvent) -> Self {
        EventDto {
            id: e.id,
            at: rfc3339(e.at),
            kind: e.kind.to_string(),
            message: e.message.clone(),
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventsQuery {
    /// At most this many events: 1 to 1000, default 50.
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<i64>,
}

impl From<&StatusReport> for StatusDto {
    fn from(r: &StatusReport) -> Self {
        StatusDto {
            status: r.workspace.status.as_str().to_string(),
            status_reason: r.workspace.status_reason.clone(),
            container_running: r.container.as_ref().is_some_and(|c| c.running),
            container_info: r.container.as_ref().map(Into::into),
            health: r.health().map(Into::into),
            resources: r.resources.as_ref().map(Into::into),
        }
    }
}

/// Stats of one workspace in the design note's shape (MB, percent), plus
/// network, block I/O, pids and, for one workspace, its recent history.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatsDto {
    pub workspace_id: Uuid,
    pub container_id: String,
    pub cpu: CpuDto,
    pub memory: MemoryDto,
    pub network: NetworkDto,
    #[serde(rename = "blockIO")]
    pub block_io: BlockIoDto,
    pub pids: Option<u64>,
    /// Where the figures were read: the cgroup files or the engine's stats API.
    #[schemars(extend("enum" = ["cgroup", "engine"]))]
    pub source: String,
    #[schemars(with = "Timestamp")]
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryDto>>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CpuDto {
    pub percent: Option<f64>,
    pub usage: u64,
    pub system_usage: Option<u64>,
    pub online_cpus: u32,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryDto {
    pub percent: Option<f64>,
    pub usage: f64,
    pub limit: Option<f64>,
    pub cache: f64,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetIoDto {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkDto {
    pub interfaces: BTreeMap<String, NetIoDto>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockIoDto {
    pub read_bytes: u64,
    pub write_bytes: u64,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryDto {
    #[schemars(with = "Timestamp")]
    pub at: String,
    pub cpu_percent: f64,
    pub memory_usage: f64,
    /// Bytes received and sent since the container started.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

impl ResourceStatsDto {
    pub fn new(v: &StatsView, history: Option<&[HistoryPoint]>) -> Self {
        let interfaces: BTreeMap<String, NetIoDto> = v
            .networks
            .iter()
            .map(|(k, n)| {
                (
                    k.clone(),
                    NetIoDto {
                        rx_bytes: n.rx_bytes,
                        tx_bytes: n.tx_bytes,
                        rx_packets: n.rx_packets,
                        tx_packets: n.tx_packets,
                    },
                )
            })
            .collect();
        let sum = |f: fn(&NetIoDto) -> u64| interfaces.values().map(f).sum();
        ResourceStatsDto {
            workspace_id: v.workspace_id,
            container_id: v.container_id.clone(),
            cpu: CpuDto {
                percent: v.cpu_percent,
                usage: v.cpu_usage_ns,
                system_usage: v.system_usage_ns,
                online_cpus: v.online_cpus,
            },
            memory: MemoryDto {
                percent: v.memory_percent,
                usage: v.memory_usage_mb,
                limit: v.memory_limit_mb,
                cache: v.memory_cache_mb,
            },
            network: NetworkDto {
                rx_bytes: sum(|n| n.rx_bytes),
                tx_bytes: sum(|n| n.tx_bytes),
                rx_packets: sum(|n| n.rx_packets),
                tx_packets: sum(|n| n.tx_packets),
                interfaces,
            },
            block_io: BlockIoDto {
                read_bytes: v.blk_read,
                write_bytes: v.blk_write,
            },
            pids: v.pids,
            source: v.source.to_string(),
            timestamp: rfc3339(v.at),
            history: history.map(|h| {
                h.iter()
                    .map(|p| HistoryDto {
                        at: rfc3339(p.at),
                        cpu_percent: p.cpu_percent,
                        memory_usage: p.memory_mb,
                        rx_bytes: p.rx_bytes,
                        tx_bytes: p.tx_bytes,
                    })
                    .collect()
            }),
        }
    }
}

// ---- accounts and tokens ----

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    #[schemars(length(min = 8, max = 1024))]
    pub new_password: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordChangedDto {
    /// Login sessions ended by the change (API tokens stay).
    pub ended_sessions: u64,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// A label to recognise the token by.
    #[schemars(with = "Name")]
    pub name: String,
}

/// A token as its owner sees it listed: never the secret itself.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenDto {
    pub id: Uuid,
    pub name: String,
    /// `api`: made for scripts, does not expire; `session`: a login.
    #[schemars(with = "TokenKindName")]
    pub kind: String,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
    #[schemars(with = "Option<Timestamp>")]
    pub expires_at: Option<String>,
    /// To the minute: refreshed at most once a minute.
    #[schemars(with = "Option<Timestamp>")]
    pub last_used_at: Option<String>,
    /// Whether this request was made with it.
    pub current: bool,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum TokenKindName {
    Api,
    Session,
}

impl TokenDto {
    pub fn new(t: &TokenInfo, current: Uuid) -> Self {
        TokenDto {
            id: t.id,
            name: t.name.clone(),
            kind: t.kind.as_str().to_string(),
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            last_used_at: t.last_used_at.map(rfc3339),
            current: t.id == current,
        }
    }
}

/// A new API token: the only time the secret is shown.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTokenDto {
    pub id: Uuid,
    pub name: String,
    /// Send as `Authorization: Bearer <token>`. Not shown again.
    pub token: String,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schemars(length(min = 3, max = 254))]
    pub email: String,
    #[schemars(length(min = 8, max = 1024))]
    pub password: String,
    /// `member` unless given.
    pub role: Option<Role>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub role: Option<Role>,
    /// A new password; ends the user's login sessions.
    #[schemars(length(min = 8, max = 1024))]
    pub password: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteUserQuery {
    /// The user who receives the removed user's projects, workspaces and
    /// backups. Needed when they own any.
    pub transfer_to: Option<Uuid>,
}

/// A user as an admin sees them: with what they own.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountDto {
    pub id: Uuid,
    pub email: String,
    #[schemars(with = "crate::domain::Role")]
    pub role: String,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
    /// Projects not deleted.
    pub projects: u64,
    pub workspaces: u64,
}

impl AccountDto {
    pub fn new(u: &User, h: Holdings) -> Self {
        AccountDto {
            id: u.id,
            email: u.email.clone(),
            role: u.role.as_str().to_string(),
            created_at: rfc3339(u.created_at),
            projects: h.projects,
            workspaces: h.workspaces,
        }
    }
}

/// `DELETE /api/users/:id`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDeletedDto {
    pub id: Uuid,
    /// Who received what the user owned.
    pub transferred_to: Option<Uuid>,
}

// ---- workspace apps ----

/// `GET /api/apps/auth`: where to go once logged in.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HandoffQuery {
    /// The app URL the browser asked for (on an app origin of this Berth).
    pub redirect: String,
}

/// A TCP port a workspace listens on.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortDto {
    pub port: u16,
    /// The address it listens on inside the workspace (`0.0.0.0`, `::`,
    /// `127.0.0.1`…); any of them can be opened.
    pub address: String,
    /// The type's own port (the workspace's app).
    pub main: bool,
    /// Who may open it on its app origin besides the owner.
    pub share: crate::domain::apps::ShareLevel,
    /// Where it opens: its own origin with `proxy.app_domain`, else its path.
    pub url: String,
}

impl From<&crate::service::apps::PortInfo> for PortDto {
    fn from(p: &crate::service::apps::PortInfo) -> Self {
        PortDto {
            port: p.listener.port,
            address: p.listener.address.to_string(),
            main: p.main,
            share: p.share,
            url: p.url.clone(),
        }
    }
}

/// `PUT /api/workspaces/{id}/shares/{port}`.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShareRequest {
    /// `authenticated` (anyone logged in), `public` (anyone; only where the
    /// operator allows it) or `owner` (ends the share).
    pub level: crate::domain::apps::ShareLevel,
}

/// A port's share.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShareDto {
    pub workspace_id: Uuid,
    pub workspace_name: String,
    pub owner_id: Uuid,
    pub port: u16,
    pub level: crate::domain::apps::ShareLevel,
    pub url: String,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
}

/// `DELETE /api/workspaces/{id}/shares/{port}`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnsharedDto {
    pub workspace_id: Uuid,
    pub port: u16,
}

// ---- image pulls ----

/// A type image's pull, as far as it got.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PullDto {
    pub image: String,
    /// `pulling`, `done` or `failed`.
    #[schemars(extend("enum" = ["pulling", "done", "failed"]))]
    pub state: String,
    /// The engine's last word about the image as a whole.
    pub status: String,
    pub layers: Vec<LayerDto>,
    /// Bytes downloaded so far, of the layers' known total.
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub error: Option<String>,
    #[schemars(with = "Timestamp")]
    pub started_at: String,
    #[schemars(with = "Option<Timestamp>")]
    pub finished_at: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LayerDto {
    pub id: String,
    pub status: String,
    pub current: u64,
    pub total: Option<u64>,
    pub done: bool,
}

impl From<&crate::domain::images::PullProgress> for PullDto {
    fn from(p: &crate::domain::images::PullProgress) -> Self {
        let (done, total) = p.bytes();
        PullDto {
            image: p.image.clone(),
            state: p.state.as_str().to_string(),
            status: p.status.clone(),
            layers: p
                .layers
                .iter()
                .map(|(id, l)| LayerDto {
                    id: id.clone(),
                    status: l.status.clone(),
                    current: l.current,
                    total: l.total,
                    done: l.done,
                })
                .collect(),
            bytes_done: done,
            bytes_total: total,
            error: p.error.clone(),
            started_at: rfc3339(p.started_at),
            finished_at: p.finished_at.map(rfc3339),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_schema_lists_every_health_value_and_nothing_else() {
        let schema = serde_json::to_value(schemars::schema_for!(HealthResponseDto)).unwrap();
        let listed: Vec<&str> = schema["properties"]["status"]["enum"]
            .as_array()
            .expect("status has an enum")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let all: Vec<&str> = Health::ALL.iter().map(|h| h.as_str()).collect();
        assert_eq!(listed, all);
    }
}

//! Projects, workspace types and workspaces on the wire: their requests,
//! the workspace record, its status, health and events.

use super::*;

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProjectRequest {
    #[schemars(with = "Name")]
    pub name: String,
    #[schemars(length(max = 2000), extend("x-berth-text" = "multiline"))]
    pub description: Option<String>,
    #[schemars(length(max = 100))]
    pub workspace_type: Option<String>,
    /// Clone a repository into the new project's volume (at `/workspace/<dir>`
    /// in its workspaces). Nothing is made when the clone fails.
    pub git: Option<GitSourceRequest>,
}

/// The repository a project is cloned from.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSourceRequest {
    /// `git://`, `http(s)://`, `ssh://` or `user@host:path`; never with a
    /// password in it (store a credential for its host).
    #[schemars(length(max = 2048))]
    pub url: String,
    /// A branch, tag or commit; the remote's HEAD when left out.
    #[serde(rename = "ref")]
    #[schemars(length(max = 255))]
    pub reference: Option<String>,
    /// A shallow clone of this many commits.
    #[schemars(range(min = 1, max = 1000000))]
    pub depth: Option<u32>,
    /// Also clone the submodules.
    #[serde(default)]
    pub submodules: bool,
    /// The directory in the volume (the repository's name by default).
    #[schemars(length(max = 100))]
    pub dir: Option<String>,
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
    #[schemars(length(max = 2000), extend("x-berth-text" = "multiline"))]
    pub description: Option<String>,
    #[serde(rename = "type")]
    #[schemars(length(max = 100))]
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
    #[schemars(length(max = 2000), extend("x-berth-text" = "multiline"))]
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

/// `DELETE /api/projects/:id`.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct ProjectDeletedDto {
    pub id: Uuid,
    /// Whether the volume and the backups went with the project.
    pub purged: bool,
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
    /// The node the volume lives on (its workspaces run there).
    pub node: String,
    /// The repository it was cloned from, if it was.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub git: Option<ProjectGitDto>,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
    #[schemars(with = "Timestamp")]
    pub updated_at: String,
}

/// Where a project's files came from.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectGitDto {
    pub url: String,
    /// The ref asked for; none: the remote's HEAD.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    /// The commit checked out.
    pub commit: String,
    /// Its directory in the volume (`/workspace/<dir>` in a workspace).
    pub dir: String,
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
            node: p.node.clone(),
            git: p.git.as_ref().map(|g| ProjectGitDto {
                url: g.url.clone(),
                reference: g.reference.clone(),
                commit: g.commit.clone(),
                dir: g.dir.clone(),
            }),
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
    /// On the local node (asked now).
    pub available: bool,
    pub unavailable_reason: Option<String>,
    /// Per node: whether its engine had the image at the last heartbeat
    /// (a node without it pulls it at a start when `images.pull_on_start`).
    pub nodes: std::collections::BTreeMap<String, bool>,
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
            nodes: t.nodes.clone(),
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
    /// Where the workspace answers, while running: on the Berth host
    /// (`127.0.0.1`), or at its node's address.
    pub url: Option<String>,
    /// The node (Docker host) its container lives on: its project's.
    pub node: String,
    /// Since when its node does not answer (`null` while it does):
    /// nothing is deleted or restarted elsewhere meanwhile, and actions
    /// that need the node answer 503.
    #[schemars(with = "Option<Timestamp>")]
    pub node_unreachable_since: Option<String>,
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
    /// `node`: its node's address and since when it fails to answer.
    pub fn new(
        w: &Workspace,
        config: Option<WorkspaceConfigDto>,
        app_url: String,
        node: (String, Option<i64>),
    ) -> Self {
        let (address, unreachable) = node;
        let host = if address.contains(':') {
            format!("[{address}]")
        } else {
            address
        };
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
            url: w
                .host_port
                .filter(|_| !host.is_empty())
                .map(|p| format!("http://{host}:{p}/")),
            node: w.node.clone(),
            node_unreachable_since: unreachable.map(rfc3339),
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

/// The original API's `resources`: CPU % and memory in MB.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesDto {
    pub cpu_usage: Option<f64>,
    pub memory_usage: f64,
    pub memory_limit: Option<f64>,
    /// Where the figures were read: the cgroup files or the engine's stats API.
    pub source: crate::domain::SampleSource,
}

impl From<&ResourceUse> for ResourcesDto {
    fn from(r: &ResourceUse) -> Self {
        ResourcesDto {
            cpu_usage: r.cpu_percent,
            memory_usage: r.memory_usage_mb,
            memory_limit: r.memory_limit_mb,
            source: r.source,
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

/// `GET /api/workspaces/:id/health`, the original API's shape plus a message.
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
    /// `page.nextCursor` of the previous page: the events older than it.
    #[schemars(length(max = 200))]
    pub cursor: Option<String>,
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

//! Nodes on the wire: the Docker engines as admins see and change them.
//! Certificates go in (PEM text) and never come out: an answer says only
//! whether a node uses TLS.

use super::*;
use crate::service::NodeReport;

/// One node: how it is reached, its state, capacity and allocation.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeDto {
    pub name: String,
    /// `unix:///…`, `tcp://host:port`, or `default` (the engine Berth
    /// started with: `DOCKER_HOST` or the local socket).
    pub endpoint: String,
    /// Where its published ports are reached from Berth.
    pub address: String,
    pub tls: bool,
    pub labels: BTreeMap<String, String>,
    /// `connecting` (no heartbeat yet), `ready`, `unreachable`,
    /// `cordoned` (nothing new is placed here) or `draining`.
    #[schemars(extend("enum" = ["connecting", "ready", "unreachable", "cordoned", "draining"]))]
    pub state: String,
    pub cordoned: bool,
    pub draining: bool,
    /// Since when the heartbeat fails (only while it does).
    #[schemars(with = "Option<Timestamp>")]
    pub unreachable_since: Option<String>,
    /// Why the last heartbeat failed (only while it does).
    pub error: Option<String>,
    /// The last answer to a heartbeat.
    #[schemars(with = "Option<Timestamp>")]
    pub last_seen: Option<String>,
    /// The engine's facts at its last answer (absent before the first).
    pub engine: Option<NodeEngineDto>,
    /// What the node has (from the engine's info).
    pub capacity: Option<NodeResourcesDto>,
    /// What the workspaces running here reserve: memory reservations (else
    /// limits) and CPU limits.
    pub allocated: NodeResourcesDto,
    /// Workspaces with a running container here.
    pub running_workspaces: usize,
    /// Projects whose volume lives here.
    pub projects: i64,
    /// Per workspace type: whether its image was on this engine at the last
    /// heartbeat.
    pub types: BTreeMap<String, bool>,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeEngineDto {
    pub version: String,
    pub api_version: String,
    /// `1` or `2`.
    pub cgroup_version: String,
}

/// CPUs in cores, memory in MB (the units of workspace limits).
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeResourcesDto {
    pub cpus: f64,
    pub memory_mb: u64,
}

impl From<&NodeReport> for NodeDto {
    fn from(r: &NodeReport) -> Self {
        let n = &r.node;
        NodeDto {
            name: n.row.name.clone(),
            endpoint: n.row.endpoint.url(),
            address: n.row.address.clone(),
            tls: n.row.tls.is_some(),
            labels: n.row.labels.clone(),
            state: n.state.as_str().to_string(),
            cordoned: n.row.schedule.cordoned,
            draining: n.row.schedule.draining,
            unreachable_since: n.beat.failing_since.map(rfc3339),
            error: n.beat.error.clone(),
            last_seen: n.beat.last_ok.map(rfc3339),
            engine: n.info.as_ref().map(|i| NodeEngineDto {
                version: i.version.clone(),
                api_version: i.api_version.clone(),
                cgroup_version: i.cgroup_version.clone(),
            }),
            capacity: n.info.as_ref().map(|i| NodeResourcesDto {
                cpus: f64::from(i.cpus),
                memory_mb: u64::try_from(i.memory_bytes / (1024 * 1024)).unwrap_or(0),
            }),
            allocated: NodeResourcesDto {
                cpus: (r.allocated.cpus * 1000.0).round() / 1000.0,
                memory_mb: r.allocated.memory_mb,
            },
            running_workspaces: r.running,
            projects: n.projects,
            types: n.types.clone(),
            created_at: rfc3339(n.row.created_at),
        }
    }
}

/// A node's client certificates, as the files docker uses hold them.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeTlsRequest {
    /// The CA that signed the engine's certificate (`ca.pem`).
    #[schemars(length(max = 16384), extend("x-berth-text" = "pem"))]
    pub ca: String,
    /// Berth's client certificate (`cert.pem`).
    #[schemars(length(max = 16384), extend("x-berth-text" = "pem"))]
    pub cert: String,
    /// Its key (`key.pem`); kept in the store, never shown again.
    #[schemars(length(max = 16384), extend("x-berth-text" = "pem"))]
    pub key: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddNodeRequest {
    /// 1–32 lowercase letters, digits and `-`, starting with a letter.
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub name: String,
    /// `tcp://HOST:PORT` (with `tls` for a TLS engine, Docker's port 2376)
    /// or `unix:///path/to/docker.sock`.
    #[schemars(length(max = 512))]
    pub endpoint: String,
    /// Where the node's published ports are reached from Berth; default:
    /// the endpoint's host (127.0.0.1 for a unix socket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub address: Option<String>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, LabelValue>")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<NodeTlsRequest>,
}

#[derive(Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateNodeRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub address: Option<String>,
    /// Replaces every label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<BTreeMap<String, LabelValue>>")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `true`: nothing new is placed here (what runs keeps running);
    /// `false`: takes work again (also ends a drain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cordoned: Option<bool>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeRemovedDto {
    pub name: String,
    pub removed: bool,
}

/// Where a workspace would go (nothing is placed).
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementRequestDto {
    /// The workspace type (its image and resource limits).
    #[serde(rename = "type")]
    #[schemars(length(max = 100))]
    pub type_name: String,
    /// The project: its volume's node pins the workspace there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
    /// Labels the node must carry.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, LabelValue>")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementDto {
    /// The node the planner chose (`nodes.placement`: spread or pack).
    pub node: String,
    pub nodes: Vec<PlacementNodeDto>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementNodeDto {
    pub node: String,
    pub fits: bool,
    /// Why it cannot take the workspace (absent when it can).
    pub reason: Option<String>,
}

impl From<&crate::service::PlacementPlan> for PlacementDto {
    fn from(p: &crate::service::PlacementPlan) -> Self {
        PlacementDto {
            node: p.node.clone(),
            nodes: p
                .nodes
                .iter()
                .map(|(n, why)| PlacementNodeDto {
                    node: n.clone(),
                    fits: why.is_none(),
                    reason: why.clone(),
                })
                .collect(),
        }
    }
}

/// One project a drain moved.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainMovedDto {
    pub project_id: Uuid,
    pub to: String,
    pub seconds: f64,
}

/// One project a drain could not move (it stays on the node).
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainFailedDto {
    pub project_id: Uuid,
    pub error: String,
}

/// `POST`/`GET /api/nodes/:node/drain`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainDto {
    pub node: String,
    #[schemars(with = "Timestamp")]
    pub started_at: String,
    /// `null` while it goes on; the node is cordoned once it is set.
    #[schemars(with = "Option<Timestamp>")]
    pub finished_at: Option<String>,
    /// Projects on the node when the drain began.
    pub total: usize,
    /// The project being moved now.
    pub current: Option<Uuid>,
    pub moved: Vec<DrainMovedDto>,
    pub failed: Vec<DrainFailedDto>,
    /// Why it ended before it finished: the replica running it was gone
    /// (start it again; the node stays draining meanwhile).
    pub interrupted: Option<String>,
}

impl From<&crate::domain::nodes::DrainProgress> for DrainDto {
    fn from(d: &crate::domain::nodes::DrainProgress) -> Self {
        DrainDto {
            node: d.node.clone(),
            started_at: rfc3339(d.started_at),
            finished_at: d.finished_at.map(rfc3339),
            total: d.total,
            current: d.current,
            moved: d
                .moved
                .iter()
                .map(|(p, to, s)| DrainMovedDto {
                    project_id: *p,
                    to: to.clone(),
                    seconds: (s * 1000.0).round() / 1000.0,
                })
                .collect(),
            failed: d
                .failed
                .iter()
                .map(|(p, e)| DrainFailedDto {
                    project_id: *p,
                    error: e.clone(),
                })
                .collect(),
            interrupted: d.interrupted.clone(),
        }
    }
}

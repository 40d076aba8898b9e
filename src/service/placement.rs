//! Where workspaces run: each node with what the workspaces placed on it
//! reserve (the planner's `Demand`: a memory reservation, else the memory
//! limit, and the CPU limit), counted over workspaces that hold a running
//! container. A project is placed when it is made (its volume goes there,
//! and its workspaces follow it); a workspace made without a project is
//! placed when it is made.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::domain::nodes::LOCAL;
use crate::domain::placement::Demand;

use super::nodes::NodeView;
use std::sync::Arc;

use super::{Core, Result, ServiceError, Types, WorkspaceLock};
use crate::domain::Workspace;

/// One node with what is placed on it.
#[derive(Debug, Clone)]
pub struct NodeReport {
    pub node: NodeView,
    pub allocated: Demand,
    /// Workspaces with a running container here.
    pub running: usize,
}

/// Where workspaces run and whether a node has room (see the module's
/// doc): the planner's snapshot, placing new projects, and the room check
/// of every start.
#[derive(Clone)]
pub struct Placement {
    inner: Arc<Inner>,
}

struct Inner {
    core: Core,
    types: Types,
}

impl Placement {
    pub fn new(core: Core, types: Types) -> Placement {
        Placement {
            inner: Arc::new(Inner { core, types }),
        }
    }

    fn core(&self) -> &Core {
        &self.inner.core
    }

    fn types(&self) -> &Types {
        &self.inner.types
    }
}

impl Placement {
    /// Every node, as the heartbeat last saw it, with its allocation.
    pub async fn node_reports(&self) -> Result<Vec<NodeReport>> {
        let views = self.core().nodes().list().await?;
        let mut placed: BTreeMap<String, (Demand, usize)> = BTreeMap::new();
        for ws in self.core().store().workspaces(None).await? {
            if !ws.status.holds_room() {
                continue;
            }
            // A type removed from the config since: nothing to count.
            let Ok(limits) = self.types().effective_limits(&ws) else {
                continue;
            };
            let e = placed.entry(ws.node.clone()).or_default();
            e.0 = e.0 + Demand::of(&limits);
            e.1 += 1;
        }
        Ok(views
            .into_iter()
            .map(|node| {
                let (allocated, running) = placed.remove(&node.row.name).unwrap_or_default();
                NodeReport {
                    node,
                    allocated,
                    running,
                }
            })
            .collect())
    }

    /// One node with its allocation.
    pub async fn node_report(&self, name: &str) -> Result<NodeReport> {
        // The node's existence first, so an unknown name is a 404.
        self.core().nodes().get(name).await?;
        self.node_reports()
            .await?
            .into_iter()
            .find(|r| r.node.row.name == name)
            .ok_or_else(|| super::ServiceError::NotFound(format!("no node named {name:?}")))
    }
}

impl NodeReport {
    /// The node as the placement planner sees it, its CPUs counted
    /// `cpu_ratio` times (`nodes.cpu_allocation_ratio`).
    pub fn seen(&self, cpu_ratio: f64) -> crate::domain::placement::NodeSeen {
        let n = &self.node;
        crate::domain::placement::NodeSeen {
            name: n.row.name.clone(),
            condition: n.state.condition(),
            labels: n.row.labels.clone(),
            images: n.images.clone(),
            cpus: n
                .info
                .as_ref()
                .map_or(0.0, |i| f64::from(i.cpus) * cpu_ratio),
            memory_mb: n.info.as_ref().map_or(0, |i| {
                u64::try_from(i.memory_bytes / (1024 * 1024)).unwrap_or(0)
            }),
            allocated: self.allocated,
        }
    }
}

/// Where a workspace would go, and why each node would or would not take it.
#[derive(Debug, Clone)]
pub struct PlacementPlan {
    /// The chosen node.
    pub node: String,
    /// Every node with its refusal (`None`: it could take it).
    pub nodes: Vec<(String, Option<String>)>,
}

impl Placement {
    /// Asks the planner where a workspace of `type_name` (on `project`,
    /// which pins it to its volume's node, with `labels` a node must carry)
    /// would go now, as the last heartbeat saw the nodes. Nothing is placed.
    pub async fn plan_placement(
        &self,
        user: &crate::domain::User,
        type_name: &str,
        project: Option<uuid::Uuid>,
        labels: BTreeMap<String, String>,
    ) -> Result<PlacementPlan> {
        self.types().workspace_type(type_name)?;
        let pinned = match project {
            Some(id) => Some(self.core().project(user, id).await?.node),
            None => None,
        };
        self.plan(Some(type_name), pinned, labels).await
    }

    /// Where something new of `type_name` (a project meant for it, or a
    /// workspace; `None`: any type, nothing reserved) goes now. With one
    /// node, `local`, it is `local` whatever its heartbeat says: a
    /// single-host installation behaves as it did before nodes.
    pub(crate) async fn place_new(&self, type_name: Option<&str>) -> Result<String> {
        let names = self.core().nodes().names().await?;
        if names.len() <= 1 {
            return Ok(LOCAL.to_string());
        }
        let plan = self.plan(type_name, None, BTreeMap::new()).await?;
        tracing::info!(node = %plan.node, ?type_name, "placed");
        Ok(plan.node)
    }

    pub(crate) async fn plan(
        &self,
        type_name: Option<&str>,
        pinned: Option<String>,
        labels: BTreeMap<String, String>,
    ) -> Result<PlacementPlan> {
        use crate::domain::placement::{place, refusal};
        let req = self.placement_request(type_name, pinned, labels, None)?;
        let seen = self.nodes_seen().await?;
        let chosen = place(&seen, &req, self.core().config().nodes.placement)
            .map_err(|u| super::ServiceError::Conflict(u.to_string()))?;
        Ok(PlacementPlan {
            node: chosen.name.clone(),
            nodes: seen
                .iter()
                .map(|n| (n.name.clone(), refusal(n, &req)))
                .collect(),
        })
    }

    /// Why the node `node` would not take something of `type_name` now
    /// (`None`: it would), as the planner judges it; unknown node: 404.
    pub(crate) async fn refusal_on(
        &self,
        type_name: Option<&str>,
        node: &str,
    ) -> Result<Option<String>> {
        let req = self.placement_request(type_name, None, BTreeMap::new(), None)?;
        let seen = self.nodes_seen().await?;
        let n = seen
            .iter()
            .find(|n| n.name == node)
            .ok_or_else(|| super::ServiceError::NotFound(format!("no node named {node:?}")))?;
        Ok(crate::domain::placement::refusal(n, &req))
    }

    /// The planner's request for something of `type_name` (`None`: any
    /// type, nothing reserved yet, no image to look for), reserving
    /// `demand` when given (a workspace's own limits), else the type's.
    fn placement_request(
        &self,
        type_name: Option<&str>,
        pinned: Option<String>,
        labels: BTreeMap<String, String>,
        demand: Option<Demand>,
    ) -> Result<crate::domain::placement::PlacementRequest> {
        use crate::domain::placement::PlacementRequest;
        Ok(match type_name {
            Some(name) => {
                let t = self.types().workspace_type(name)?;
                PlacementRequest {
                    image: t.image.clone(),
                    demand: demand.unwrap_or_else(|| Demand::of(&t.resources)),
                    node_labels: labels,
                    pinned,
                    can_pull: self.core().config().images.pull_on_start,
                }
            }
            None => PlacementRequest {
                image: String::new(),
                demand: Demand::default(),
                node_labels: labels,
                pinned,
                can_pull: true,
            },
        })
    }

    /// Every node as the planner sees it now.
    async fn nodes_seen(&self) -> Result<Vec<crate::domain::placement::NodeSeen>> {
        Ok(self
            .node_reports()
            .await?
            .iter()
            .map(|r| r.seen(self.core().config().nodes.cpu_allocation_ratio))
            .collect())
    }
}

/// A node's room, held from the check until the workspace counts as
/// holding it (its status saved as starting, or its new limits saved), so
/// that two starts cannot both take the last of it.
pub(crate) struct RoomHold {
    _lock: Option<WorkspaceLock>,
}

/// The in-process key of a node's room lock (the lock map is keyed by id).
fn room_key(node: &str) -> Uuid {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("berth-node-room:{node}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    Uuid::from_bytes(b)
}

impl Placement {
    /// Checks, under the lock of `ws`'s node, that the node has room for
    /// `more` (what a start, or a resize's growth, adds to what the node's
    /// workspaces hold: the planner's "allocated", one notion for both),
    /// and holds the lock. A node whose capacity no heartbeat has told yet
    /// is not judged. Refused: a 409 that names the node, what is free and
    /// needed, and what to do, with the nodes where `full` (the whole
    /// workspace) would fit. Lock order: the workspace's lock, then its
    /// node's, then its owner's quota.
    pub(crate) async fn claim_room(
        &self,
        ws: &Workspace,
        more: Demand,
        full: Demand,
    ) -> Result<RoomHold> {
        use crate::domain::placement::{no_room, refusal, shortfall};
        if more.cpus <= 0.0 && more.memory_mb == 0 {
            return Ok(RoomHold { _lock: None });
        }
        let node = ws.node.as_str();
        let lock = self
            .core()
            .lock_key(
                room_key(node),
                crate::store::LockKey::Node(node.to_string()),
            )
            .await?;
        let reports = self.node_reports().await?;
        let ratio = self.core().config().nodes.cpu_allocation_ratio;
        let Some(here) = reports
            .iter()
            .find(|r| r.node.row.name == node && r.node.info.is_some())
        else {
            return Ok(RoomHold { _lock: Some(lock) });
        };
        let Some(why) = shortfall(&here.seen(ratio), more) else {
            return Ok(RoomHold { _lock: Some(lock) });
        };
        let req = self.placement_request(Some(&ws.type_name), None, BTreeMap::new(), Some(full))?;
        let elsewhere: Vec<String> = reports
            .iter()
            .filter(|r| r.node.row.name != node)
            .map(|r| r.seen(ratio))
            .filter(|n| refusal(n, &req).is_none())
            .map(|n| n.name)
            .collect();
        metrics::counter!("berth_capacity_refusals_total", "node" => node.to_string()).increment(1);
        let project = ws.project_id.map(|p| p.to_string());
        Err(ServiceError::Conflict(no_room(
            node,
            &why,
            project.as_deref(),
            &elsewhere,
        )))
    }

    /// What a workspace of `type_name` with `overrides` would hold on its
    /// node while it runs.
    pub(crate) fn demand_for(
        &self,
        type_name: &str,
        overrides: &crate::domain::ResourceOverrides,
    ) -> Result<Demand> {
        let t = self.types().workspace_type(type_name)?;
        Ok(Demand::of(&t.resources.merged(overrides)))
    }

    /// What `ws` holds on its node while it runs (the planner's demand of
    /// its effective limits).
    pub(crate) fn demand_of(&self, ws: &Workspace) -> Result<Demand> {
        Ok(Demand::of(&self.types().effective_limits(ws)?))
    }

    /// Where a project that holds nothing yet should be for a first
    /// workspace of `type_name` reserving `demand`: `None` when its node
    /// has room for it (or there is one node), else the planner's choice
    /// among the others (`None` too when no node has room: the start will
    /// say so).
    pub(crate) async fn better_node_for(
        &self,
        project_node: &str,
        type_name: &str,
        demand: Demand,
    ) -> Result<Option<String>> {
        use crate::domain::placement::{place, shortfall};
        if self.core().nodes().names().await?.len() <= 1 {
            return Ok(None);
        }
        let seen = self.nodes_seen().await?;
        let fits_here = seen
            .iter()
            .find(|n| n.name == project_node)
            .is_some_and(|n| shortfall(n, demand).is_none());
        if fits_here {
            return Ok(None);
        }
        let req = self.placement_request(Some(type_name), None, BTreeMap::new(), Some(demand))?;
        Ok(place(&seen, &req, self.core().config().nodes.placement)
            .ok()
            .map(|n| n.name.clone())
            .filter(|n| n != project_node))
    }
}

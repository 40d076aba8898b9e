//! Where a workspace goes when there are several Docker hosts (nodes): a
//! pure planner over a snapshot of the nodes, as Kubernetes' scheduler
//! does it — filter, then score.
//!
//! Filter: the node is ready (reachable, not cordoned, not draining), has
//! the labels the type and the project ask for, has the type's image (or
//! can pull it), and has room for what the workspace reserves. Score:
//! `spread` puts it where the most memory stays free (then CPU), `pack`
//! where the least does, so whole nodes stay empty. Ties go to the node
//! named first, so a plan is reproducible.
//!
//! What a workspace reserves is its memory reservation when it sets one,
//! else its memory limit, and its CPU limit (Docker has no CPU
//! reservation): the same figures the node's "allocated" shows. A
//! project's volume lives on one node and pins its workspaces there.
//!
//! An unplaceable request says why for every node, so the 409 tells an
//! operator what to change ("b: 512 MB free of 8192 MB, needs 2048 MB").

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::ResourceLimits;

/// Whether a node takes work, as its heartbeat and its operator say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeCondition {
    Ready,
    /// The last heartbeats failed.
    Unreachable,
    /// An operator asked for nothing new here.
    Cordoned,
    /// Its projects are being moved away (it is cordoned after).
    Draining,
}

/// One node as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSeen {
    pub name: String,
    pub condition: NodeCondition,
    pub labels: BTreeMap<String, String>,
    /// Images the engine has, by reference (`repo:tag`).
    pub images: BTreeSet<String>,
    /// Capacity (CPUs times `nodes.cpu_allocation_ratio`).
    pub cpus: f64,
    pub memory_mb: u64,
    /// What the workspaces placed here reserve (see [`Demand`]).
    pub allocated: Demand,
}

impl NodeSeen {
    fn free(&self) -> Demand {
        Demand {
            cpus: (self.cpus - self.allocated.cpus).max(0.0),
            memory_mb: self.memory_mb.saturating_sub(self.allocated.memory_mb),
        }
    }
}

/// What a workspace reserves on its node.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Demand {
    pub cpus: f64,
    pub memory_mb: u64,
}

impl Demand {
    /// The reservation of a workspace with these limits.
    pub fn of(limits: &ResourceLimits) -> Demand {
        Demand {
            cpus: limits.cpus,
            memory_mb: limits.memory_reservation_mb.unwrap_or(limits.memory_mb),
        }
    }
}

impl std::ops::Add for Demand {
    type Output = Demand;

    fn add(self, other: Demand) -> Demand {
        Demand {
            cpus: self.cpus + other.cpus,
            memory_mb: self.memory_mb + other.memory_mb,
        }
    }
}

super::spelled_enum! {
    /// How nodes are scored among those that fit (`nodes.placement`).
    #[derive(Default)]
    pub enum Strategy("placement") {
        /// The most free memory after placing (then CPU): load spreads out.
        #[default]
        Spread = "spread",
        /// The least free memory after placing: nodes fill one by one.
        Pack = "pack",
    }
}

/// One workspace to place.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementRequest {
    /// The type's image.
    pub image: String,
    pub demand: Demand,
    /// Labels a node must carry (the type's and the project's together).
    pub node_labels: BTreeMap<String, String>,
    /// The node holding the project's volume, when it has one already.
    pub pinned: Option<String>,
    /// A registry is configured: a node without the image pulls it.
    pub can_pull: bool,
}

/// Why no node could take a workspace: a reason per node, in node order.
#[derive(Debug, Clone, PartialEq)]
pub struct Unplaceable {
    pub reasons: Vec<(String, String)>,
}

impl fmt::Display for Unplaceable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reasons.is_empty() {
            return write!(f, "no node is configured");
        }
        write!(f, "no node can take this workspace: ")?;
        for (i, (node, why)) in self.reasons.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{node}: {why}")?;
        }
        Ok(())
    }
}

/// Why `node` cannot take `req`, or `None` when it can.
pub fn refusal(node: &NodeSeen, req: &PlacementRequest) -> Option<String> {
    if let Some(pin) = &req.pinned {
        if pin != &node.name {
            return Some(format!("the project's volume is on {pin}"));
        }
    }
    match node.condition {
        NodeCondition::Ready => {}
        NodeCondition::Unreachable => return Some("unreachable".into()),
        NodeCondition::Cordoned => return Some("cordoned".into()),
        NodeCondition::Draining => return Some("draining".into()),
    }
    for (k, want) in &req.node_labels {
        match node.labels.get(k) {
            None => return Some(format!("lacks the label {k}={want}")),
            Some(have) if have != want => return Some(format!("has {k}={have}, needs {k}={want}")),
            Some(_) => {}
        }
    }
    if !req.can_pull && !node.images.contains(&req.image) {
        return Some(format!(
            "has no image {} (and no registry is configured to pull it)",
            req.image
        ));
    }
    shortfall(node, req.demand)
}

/// Why `node` has no room for `demand` more, or `None` when it has: what
/// is free, of what, and what is needed. The same rule for placement and
/// for every start, resize and restart on the node.
pub fn shortfall(node: &NodeSeen, demand: Demand) -> Option<String> {
    let free = node.free();
    if free.memory_mb < demand.memory_mb {
        return Some(format!(
            "{} MB free of {} MB, needs {} MB",
            free.memory_mb, node.memory_mb, demand.memory_mb
        ));
    }
    // A thousandth of a core of slack: 0.1 + 0.2 reserved must leave 0.7.
    if free.cpus + 1e-3 < demand.cpus {
        return Some(format!(
            "{} CPUs free of {}, needs {}",
            round(free.cpus),
            round(node.cpus),
            round(demand.cpus)
        ));
    }
    None
}

/// The refusal of a start (or resize) on `node`, which lacks room for it:
/// what is free and needed there, and what to do — stop a workspace
/// there, or move the project to one of `elsewhere` (nodes with room, from
/// the planner), or, with none, that no node has room.
pub fn no_room(node: &str, why: &str, project: Option<&str>, elsewhere: &[String]) -> String {
    let mut m =
        format!("node {node} has no room for this workspace: {why}. Stop a workspace on {node}");
    match (elsewhere.first(), project) {
        (Some(first), Some(p)) => m.push_str(&format!(
            ", or move the project to a node with room ({}): berth project move {p} --to {first}",
            elsewhere.join(", ")
        )),
        (Some(_), None) => m.push_str(&format!(
            ", or use a node with room: {}",
            elsewhere.join(", ")
        )),
        (None, _) => m.push_str("; no other node has room either (an admin can add one)"),
    }
    m
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The node a workspace goes to: the best-scored of those that can take it.
pub fn place<'a>(
    nodes: &'a [NodeSeen],
    req: &PlacementRequest,
    strategy: Strategy,
) -> Result<&'a NodeSeen, Unplaceable> {
    let mut reasons = Vec::new();
    let mut best: Option<(&NodeSeen, (f64, f64))> = None;
    for node in nodes {
        if let Some(why) = refusal(node, req) {
            reasons.push((node.name.clone(), why));
            continue;
        }
        let free = node.free();
        // Fractions of capacity left after placing, memory first.
        let left = (
            fraction(
                free.memory_mb as f64 - req.demand.memory_mb as f64,
                node.memory_mb as f64,
            ),
            fraction(free.cpus - req.demand.cpus, node.cpus),
        );
        let better = match &best {
            None => true,
            Some((b, score)) => {
                let ord = match strategy {
                    Strategy::Spread => cmp(left, *score),
                    Strategy::Pack => cmp(*score, left),
                };
                ord == std::cmp::Ordering::Greater
                    || (ord == std::cmp::Ordering::Equal && node.name < b.name)
            }
        };
        if better {
            best = Some((node, left));
        }
    }
    best.map(|(n, _)| n).ok_or(Unplaceable { reasons })
}

fn fraction(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part / whole
    } else {
        0.0
    }
}

fn cmp(a: (f64, f64), b: (f64, f64)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cpus: f64, memory_mb: u64) -> NodeSeen {
        NodeSeen {
            name: name.into(),
            condition: NodeCondition::Ready,
            labels: BTreeMap::new(),
            images: ["code:1".to_string()].into(),
            cpus,
            memory_mb,
            allocated: Demand::default(),
        }
    }

    fn req(cpus: f64, memory_mb: u64) -> PlacementRequest {
        PlacementRequest {
            image: "code:1".into(),
            demand: Demand { cpus, memory_mb },
            node_labels: BTreeMap::new(),
            pinned: None,
            can_pull: false,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Places `n` requests one after the other, each reserving on the node
    /// it got; returns the node names in order.
    fn fill(nodes: &mut [NodeSeen], r: &PlacementRequest, n: usize, s: Strategy) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            let name = match place(nodes, r, s) {
                Ok(node) => node.name.clone(),
                Err(_) => break,
            };
            let node = nodes.iter_mut().find(|x| x.name == name).unwrap();
            node.allocated = node.allocated + r.demand;
            out.push(name);
        }
        out
    }

    #[test]
    fn demand_is_the_reservation_else_the_limit() {
        let mut l = ResourceLimits {
            cpus: 1.5,
            memory_mb: 2048,
            memory_swap_mb: None,
            memory_reservation_mb: None,
        };
        assert_eq!(
            Demand::of(&l),
            Demand {
                cpus: 1.5,
                memory_mb: 2048
            }
        );
        l.memory_reservation_mb = Some(512);
        assert_eq!(Demand::of(&l).memory_mb, 512);
    }

    #[test]
    fn a_single_ready_node_takes_what_fits() {
        let nodes = [node("local", 4.0, 8192)];
        assert_eq!(
            place(&nodes, &req(2.0, 2048), Strategy::Spread)
                .unwrap()
                .name,
            "local"
        );
        assert_eq!(
            place(&nodes, &req(4.0, 8192), Strategy::Pack).unwrap().name,
            "local"
        );
    }

    #[test]
    fn nodes_that_are_not_ready_get_nothing_and_say_why() {
        let mut nodes = vec![
            node("a", 4.0, 8192),
            node("b", 4.0, 8192),
            node("c", 4.0, 8192),
        ];
        nodes[0].condition = NodeCondition::Unreachable;
        nodes[1].condition = NodeCondition::Cordoned;
        nodes[2].condition = NodeCondition::Draining;
        let err = place(&nodes, &req(1.0, 512), Strategy::Spread).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no node can take this workspace: a: unreachable; b: cordoned; c: draining"
        );
        nodes[1].condition = NodeCondition::Ready;
        assert_eq!(
            place(&nodes, &req(1.0, 512), Strategy::Spread)
                .unwrap()
                .name,
            "b"
        );
    }

    #[test]
    fn labels_must_all_match() {
        let mut nodes = vec![
            node("a", 4.0, 8192),
            node("b", 4.0, 8192),
            node("c", 4.0, 8192),
        ];
        nodes[1].labels = labels(&[("disk", "hdd")]);
        nodes[2].labels = labels(&[("disk", "ssd"), ("gpu", "yes")]);
        let mut r = req(1.0, 512);
        r.node_labels = labels(&[("disk", "ssd")]);
        assert_eq!(place(&nodes, &r, Strategy::Spread).unwrap().name, "c");
        r.node_labels = labels(&[("disk", "ssd"), ("gpu", "no")]);
        let err = place(&nodes, &r, Strategy::Spread).unwrap_err();
        assert_eq!(
            err.reasons,
            vec![
                ("a".to_string(), "lacks the label disk=ssd".to_string()),
                ("b".to_string(), "has disk=hdd, needs disk=ssd".to_string()),
                ("c".to_string(), "has gpu=yes, needs gpu=no".to_string()),
            ]
        );
    }

    #[test]
    fn a_missing_image_refuses_a_node_unless_it_can_pull() {
        let mut nodes = vec![node("a", 4.0, 8192), node("b", 1.0, 1024)];
        nodes[0].images.clear();
        let r = req(1.0, 512);
        assert_eq!(place(&nodes, &r, Strategy::Spread).unwrap().name, "b");
        let err = place(&nodes[..1], &r, Strategy::Spread).unwrap_err();
        assert_eq!(
            err.reasons[0].1,
            "has no image code:1 (and no registry is configured to pull it)"
        );
        let pulls = PlacementRequest {
            can_pull: true,
            ..r
        };
        assert_eq!(place(&nodes, &pulls, Strategy::Spread).unwrap().name, "a");
    }

    #[test]
    fn capacity_counts_what_is_reserved_and_names_the_shortfall() {
        let mut nodes = vec![node("a", 4.0, 8192), node("b", 2.0, 8192)];
        nodes[0].allocated = Demand {
            cpus: 1.0,
            memory_mb: 7680,
        };
        let err = place(&nodes, &req(2.5, 2048), Strategy::Spread).unwrap_err();
        assert_eq!(
            err.reasons,
            vec![
                (
                    "a".to_string(),
                    "512 MB free of 8192 MB, needs 2048 MB".to_string()
                ),
                ("b".to_string(), "2 CPUs free of 2, needs 2.5".to_string()),
            ]
        );
        // Exactly full fits; a reservation above capacity never does.
        assert_eq!(
            place(&nodes, &req(2.0, 8192), Strategy::Spread)
                .unwrap()
                .name,
            "b"
        );
        nodes[1].allocated = Demand {
            cpus: 3.0,
            memory_mb: 9000,
        };
        let err = place(&nodes[1..], &req(0.1, 1), Strategy::Spread).unwrap_err();
        assert_eq!(err.reasons[0].1, "0 MB free of 8192 MB, needs 1 MB");
    }

    #[test]
    fn fractional_cpus_add_up_without_float_surprises() {
        let mut nodes = vec![node("a", 1.0, 8192)];
        let placed = fill(&mut nodes, &req(0.1, 10), 20, Strategy::Pack);
        assert_eq!(placed.len(), 10, "ten tenths of a core fit one core");
    }

    #[test]
    fn spread_keeps_the_most_free_memory_and_pack_the_least() {
        let mut nodes = vec![node("a", 8.0, 8192), node("b", 8.0, 16384)];
        nodes[1].allocated.memory_mb = 8192;
        // Equal free memory (8 GB); as fractions a keeps more.
        assert_eq!(
            place(&nodes, &req(1.0, 1024), Strategy::Spread)
                .unwrap()
                .name,
            "a"
        );
        assert_eq!(
            place(&nodes, &req(1.0, 1024), Strategy::Pack).unwrap().name,
            "b"
        );
    }

    #[test]
    fn pack_fills_nodes_in_order_and_spread_alternates() {
        let nodes = vec![
            node("a", 4.0, 4096),
            node("b", 4.0, 4096),
            node("c", 4.0, 4096),
        ];
        let r = req(1.0, 1024);
        let mut packed = nodes.clone();
        assert_eq!(
            fill(&mut packed, &r, 13, Strategy::Pack),
            ["a", "a", "a", "a", "b", "b", "b", "b", "c", "c", "c", "c"]
        );
        let mut spread = nodes.clone();
        assert_eq!(
            fill(&mut spread, &r, 13, Strategy::Spread),
            ["a", "b", "c", "a", "b", "c", "a", "b", "c", "a", "b", "c"]
        );
        // Full: the thirteenth is refused, with every node's reason.
        let err = place(&spread, &r, Strategy::Spread).unwrap_err();
        assert_eq!(err.reasons.len(), 3);
        assert!(err
            .reasons
            .iter()
            .all(|(_, why)| why == "0 MB free of 4096 MB, needs 1024 MB"));
    }

    #[test]
    fn ties_go_to_the_first_name_whatever_the_order_given() {
        let mut nodes = vec![
            node("c", 4.0, 4096),
            node("a", 4.0, 4096),
            node("b", 4.0, 4096),
        ];
        for s in [Strategy::Spread, Strategy::Pack] {
            assert_eq!(place(&nodes, &req(1.0, 512), s).unwrap().name, "a");
        }
        nodes.reverse();
        assert_eq!(
            place(&nodes, &req(1.0, 512), Strategy::Pack).unwrap().name,
            "a"
        );
    }

    #[test]
    fn a_pinned_project_goes_to_its_node_or_nowhere() {
        let mut nodes = vec![node("a", 8.0, 16384), node("b", 2.0, 2048)];
        let mut r = req(1.0, 1024);
        r.pinned = Some("b".into());
        assert_eq!(place(&nodes, &r, Strategy::Spread).unwrap().name, "b");
        nodes[1].condition = NodeCondition::Unreachable;
        let err = place(&nodes, &r, Strategy::Spread).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no node can take this workspace: a: the project's volume is on b; b: unreachable"
        );
        // Pinned to a node that is not in the pool any more.
        r.pinned = Some("gone".into());
        assert_eq!(
            place(&nodes, &r, Strategy::Spread)
                .unwrap_err()
                .reasons
                .len(),
            2
        );
    }

    #[test]
    fn an_empty_pool_says_so() {
        let err = place(&[], &req(1.0, 512), Strategy::Spread).unwrap_err();
        assert_eq!(err.to_string(), "no node is configured");
    }

    #[test]
    fn a_node_without_capacity_figures_takes_nothing_that_needs_any() {
        let nodes = vec![node("zero", 0.0, 0)];
        assert!(place(&nodes, &req(0.5, 1), Strategy::Spread).is_err());
        // A demand of nothing fits anywhere ready.
        assert_eq!(
            place(&nodes, &req(0.0, 0), Strategy::Spread).unwrap().name,
            "zero"
        );
    }

    #[test]
    fn the_room_a_start_needs_is_the_room_placement_counts() {
        let mut n = node("bar1", 2.0, 23_500);
        n.allocated = Demand {
            cpus: 0.5,
            memory_mb: 14_463,
        };
        let demand = Demand {
            cpus: 0.5,
            memory_mb: 14_463,
        };
        let why = shortfall(&n, demand).unwrap();
        assert_eq!(why, "9037 MB free of 23500 MB, needs 14463 MB");
        // The planner refuses the node for the same reason.
        let mut r = req(0.5, 14_463);
        r.image = "code:1".into();
        assert_eq!(refusal(&n, &r), Some(why));
        // Exactly full fits; a core's thousandth of slack.
        n.allocated = Demand {
            cpus: 1.7,
            memory_mb: 9_037,
        };
        assert_eq!(
            shortfall(
                &n,
                Demand {
                    cpus: 0.3,
                    memory_mb: 14_463
                }
            ),
            None
        );
        assert!(shortfall(
            &n,
            Demand {
                cpus: 0.31,
                memory_mb: 1
            }
        )
        .unwrap()
        .contains("CPUs free of 2"));
    }

    #[test]
    fn a_refused_start_says_what_to_do() {
        let m = no_room(
            "bar1",
            "1 MB free of 2 MB, needs 3 MB",
            Some("P"),
            &["foo1".into(), "foo2".into()],
        );
        assert!(
            m.starts_with(
                "node bar1 has no room for this workspace: 1 MB free of 2 MB, needs 3 MB."
            ),
            "{m}"
        );
        assert!(m.contains("Stop a workspace on bar1"), "{m}");
        assert!(
            m.contains("(foo1, foo2): berth project move P --to foo1"),
            "{m}"
        );
        let m = no_room("local", "x", Some("P"), &[]);
        assert!(m.contains("no other node has room either"), "{m}");
    }
}

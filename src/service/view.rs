//! The engine view: what each node's engine last said about each of this
//! installation's workspace containers, kept current by the node's event
//! watcher, so a status read, the proxy and the fleet figures answer from
//! memory instead of asking the engine on every request.
//!
//! A node's view is *synced* only while its watcher follows the engine's
//! event stream, after a full resync (every workspace container listed and
//! inspected). Until then, and from the moment the stream fails or its
//! watcher stops, readers ask the engine themselves: a stale answer is
//! worse than a slow one. The watcher resyncs at start, after every
//! reconnect, when the heartbeat sees the node answer again, and every
//! `nodes.resync_s` (an event stream can stall without failing).
//!
//! Every inspect made through [`View::inspect_noted`] (lifecycle operations,
//! reconcile, the watcher's per-event look) updates the view, so a
//! workspace Berth itself just started is current before its `start` event
//! arrives. Entries carry the sequence number taken *before* their inspect
//! was sent: an older answer that arrives late never replaces a newer one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Core, Result};
use crate::engine::ContainerState;

/// Every node's view.
#[derive(Default)]
pub(super) struct EngineView {
    nodes: Mutex<HashMap<String, NodeView>>,
    seq: AtomicU64,
}

#[derive(Default)]
struct NodeView {
    synced: bool,
    /// Bumped by every unsync: a resync that began before one must not
    /// mark the view synced.
    epoch: u64,
    /// By container name; a name with no entry has no container.
    containers: HashMap<String, Entry>,
    resyncs: u64,
}

struct Entry {
    seq: u64,
    /// `None`: an inspect found no such container (kept, with its
    /// sequence number, so a late answer cannot bring it back).
    state: Option<ContainerState>,
}

/// What a node's view holds, for tests and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewState {
    pub synced: bool,
    pub containers: usize,
    pub resyncs: u64,
}

/// The parts of a container's state a reader of status or health would
/// notice; an update that changes none of them is not announced.
fn material(c: Option<&ContainerState>) -> Option<(String, bool, bool, i64, Option<String>, i64)> {
    c.map(|c| {
        let h = c.health.as_ref();
        (
            c.id.clone(),
            c.running,
            c.paused,
            c.exit_code,
            h.map(|h| h.status.as_str().to_string()),
            h.map(|h| h.failing_streak).unwrap_or(0),
        )
    })
}

impl EngineView {
    /// The sequence number of an inspect about to be sent.
    fn ticket(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The container `name` on `node` as last seen, if the node's view is
    /// synced (`Some(None)`: it has no such container); `None` when the
    /// caller must ask the engine.
    fn get(&self, node: &str, name: &str) -> Option<Option<ContainerState>> {
        let nodes = self.nodes.lock().expect("engine view poisoned");
        let v = nodes.get(node).filter(|v| v.synced)?;
        Some(v.containers.get(name).and_then(|e| e.state.clone()))
    }

    /// Records what an inspect ticketed `seq` found; returns whether a
    /// reader would see a difference.
    fn note(&self, node: &str, name: &str, seq: u64, state: Option<ContainerState>) -> bool {
        let mut nodes = self.nodes.lock().expect("engine view poisoned");
        let v = nodes.entry(node.to_string()).or_default();
        match v.containers.get_mut(name) {
            Some(e) if e.seq > seq => false,
            Some(e) => {
                let changed = material(e.state.as_ref()) != material(state.as_ref());
                e.seq = seq;
                e.state = state;
                changed
            }
            None => {
                let changed = state.is_some();
                v.containers.insert(name.to_string(), Entry { seq, state });
                changed
            }
        }
    }

    /// Where a resync begins: the node's epoch and the first ticket.
    fn begin(&self, node: &str) -> (u64, u64) {
        let epoch = {
            let nodes = self.nodes.lock().expect("engine view poisoned");
            nodes.get(node).map_or(0, |v| v.epoch)
        };
        (epoch, self.ticket())
    }

    /// Replaces a node's view with a full listing begun at `from` (see
    /// [`EngineView::begin`]; every inspect ticketed after it). Entries
    /// noted after the beginning (an event handled during the resync) are
    /// newer than the listing and stay. With `claim` (the caller follows
    /// the node's event stream) the view becomes synced; without, it stays
    /// as it was. Neither if it was unsynced since the beginning.
    fn replace(
        &self,
        node: &str,
        (epoch, from): (u64, u64),
        claim: bool,
        found: Vec<(String, u64, Option<ContainerState>)>,
    ) {
        let mut nodes = self.nodes.lock().expect("engine view poisoned");
        let v = nodes.entry(node.to_string()).or_default();
        v.containers.retain(|_, e| e.seq >= from);
        for (name, seq, state) in found {
            match v.containers.get(&name) {
                Some(e) if e.seq > seq => {}
                _ => {
                    v.containers.insert(name, Entry { seq, state });
                }
            }
        }
        if v.epoch == epoch {
            v.synced |= claim;
        }
        v.resyncs += 1;
    }

    /// From now on readers ask the engine (its event stream failed, or its
    /// watcher stopped).
    fn unsync(&self, node: &str) {
        let mut nodes = self.nodes.lock().expect("engine view poisoned");
        let v = nodes.entry(node.to_string()).or_default();
        v.synced = false;
        v.epoch += 1;
    }

    fn state(&self, node: &str) -> ViewState {
        let nodes = self.nodes.lock().expect("engine view poisoned");
        nodes.get(node).map_or(
            ViewState {
                synced: false,
                containers: 0,
                resyncs: 0,
            },
            |v| ViewState {
                synced: v.synced,
                containers: v.containers.values().filter(|e| e.state.is_some()).count(),
                resyncs: v.resyncs,
            },
        )
    }
}

/// Marks a node's view unsynced when dropped: held by its watcher, so a
/// watcher that ends or is aborted leaves no view behind that looks current.
pub(super) struct SyncedWhileAlive {
    pub(super) view: View,
    pub(super) node: String,
}

impl Drop for SyncedWhileAlive {
    fn drop(&mut self) {
        self.view.unsync_view(&self.node);
    }
}

/// The engine view as a service (see the module's doc): what readers ask
/// before they ask an engine.
#[derive(Clone)]
pub struct View {
    inner: Arc<Inner>,
}

struct Inner {
    core: Core,
    view: EngineView,
}

impl View {
    pub fn new(core: Core) -> View {
        View {
            inner: Arc::new(Inner {
                core,
                view: EngineView::default(),
            }),
        }
    }

    fn core(&self) -> &Core {
        &self.inner.core
    }
}

impl View {
    /// Asks `node`'s engine about the container `name` and records the
    /// answer in the view. Returns the state and whether it differs, for a
    /// reader, from what the view held.
    pub(super) async fn inspect_noted(
        &self,
        node: &str,
        name: &str,
    ) -> Result<(Option<ContainerState>, bool)> {
        let engine = self.core().engine_on(node).await?;
        let seq = self.inner.view.ticket();
        let state = engine.inspect_container(name).await?;
        let changed = self.inner.view.note(node, name, seq, state.clone());
        Ok((state, changed))
    }

    /// What `node`'s view holds for the container `name` while it is
    /// synced (`Some(None)`: no such container), `None` when the view
    /// cannot answer; a node that does not answer is `Unavailable`, so the
    /// view never answers for an engine the heartbeat has lost.
    pub(super) async fn cached(
        &self,
        node: &str,
        name: &str,
    ) -> Result<Option<Option<ContainerState>>> {
        self.core().engine_on(node).await?;
        Ok(self.inner.view.get(node, name))
    }

    /// Lists and inspects every workspace container of this installation
    /// on `node` and makes that the node's view; `claim`: the caller
    /// follows the node's event stream, so the view is synced after.
    /// Returns what it found, by container name.
    pub(crate) async fn resync_view(
        &self,
        node: &str,
        claim: bool,
    ) -> Result<HashMap<String, ContainerState>> {
        let engine = self.core().engine_on(node).await?;
        let from = self.inner.view.begin(node);
        let list = engine
            .list_managed_containers(&[format!(
                "{}={}",
                crate::engine::LABEL_INSTANCE,
                self.core().config().instance
            )])
            .await?;
        let mut found = Vec::with_capacity(list.len());
        for (_, name) in list {
            // Only workspace containers are read by name through the view.
            if !name.starts_with(crate::domain::WORKSPACE_CONTAINER_PREFIX) {
                continue;
            }
            let seq = self.inner.view.ticket();
            let state = engine.inspect_container(&name).await?;
            found.push((name, seq, state));
        }
        let listed = found
            .iter()
            .filter_map(|(n, _, s)| Some((n.clone(), s.clone()?)))
            .collect();
        self.inner.view.replace(node, from, claim, found);
        Ok(listed)
    }

    /// Stops answering from `node`'s view until the next resync.
    pub(crate) fn unsync_view(&self, node: &str) {
        self.inner.view.unsync(node);
    }

    /// Whether `node`'s view is synced, how many containers it holds and
    /// how many full resyncs it has had.
    pub fn view_state(&self, node: &str) -> ViewState {
        self.inner.view.state(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, running: bool) -> ContainerState {
        ContainerState {
            id: id.into(),
            name: "berth-ws-x".into(),
            image: "i".into(),
            status: if running { "running" } else { "exited" }.into(),
            running,
            paused: false,
            exit_code: 0,
            oom_killed: false,
            error: None,
            started_at: None,
            finished_at: None,
            restart_count: 0,
            pid: None,
            health: None,
            host_port: None,
            labels: Default::default(),
        }
    }

    #[test]
    fn an_unsynced_node_sends_readers_to_the_engine() {
        let v = EngineView::default();
        assert_eq!(v.get("local", "a"), None);
        let s = v.ticket();
        v.note("local", "a", s, Some(state("1", true)));
        // Noted, but no full listing yet: not trusted.
        assert_eq!(v.get("local", "a"), None);
        // A listing by someone not following the events: still not.
        v.replace("local", v.begin("local"), false, vec![]);
        assert_eq!(v.get("local", "a"), None);
        v.replace("local", v.begin("local"), true, vec![]);
        assert_eq!(
            v.get("local", "a"),
            Some(None),
            "the listing had no such container"
        );
        v.unsync("local");
        assert_eq!(v.get("local", "a"), None);
        // A resync begun before an unsync does not make it synced.
        let from = v.begin("local");
        v.unsync("local");
        v.replace("local", from, true, vec![]);
        assert_eq!(v.get("local", "a"), None);
    }

    #[test]
    fn a_late_answer_never_replaces_a_newer_one() {
        let v = EngineView::default();
        v.replace("n", v.begin("n"), true, vec![]);
        let old = v.ticket();
        let new = v.ticket();
        assert!(v.note("n", "a", new, Some(state("1", false))));
        assert!(!v.note("n", "a", old, Some(state("1", true))));
        assert!(!v.get("n", "a").unwrap().unwrap().running);
        // Gone, then a late answer from before the removal.
        let gone = v.ticket();
        assert!(v.note("n", "a", gone, None));
        assert!(!v.note("n", "a", new, Some(state("1", true))));
        assert_eq!(v.get("n", "a"), Some(None));
    }

    #[test]
    fn a_resync_keeps_what_events_noted_while_it_ran() {
        let v = EngineView::default();
        let before = v.ticket();
        v.note("n", "stale", before, Some(state("0", true)));
        let from = v.begin("n");
        let listed = v.ticket();
        // An event during the resync: newer than the listing's inspect.
        let during = v.ticket();
        v.note("n", "a", during, Some(state("1", false)));
        v.replace(
            "n",
            from,
            true,
            vec![("a".into(), listed, Some(state("1", true)))],
        );
        assert!(!v.get("n", "a").unwrap().unwrap().running);
        assert_eq!(v.get("n", "stale"), Some(None), "not listed: gone");
        assert_eq!(
            v.state("n"),
            ViewState {
                synced: true,
                containers: 1,
                resyncs: 1
            }
        );
    }

    #[test]
    fn only_what_a_reader_sees_counts_as_a_change() {
        let v = EngineView::default();
        let a = state("1", true);
        assert!(v.note("n", "a", v.ticket(), Some(a.clone())));
        let mut later = a.clone();
        later.status = "running (probe log grew)".into();
        assert!(!v.note("n", "a", v.ticket(), Some(later)));
        let mut stopped = a;
        stopped.running = false;
        assert!(v.note("n", "a", v.ticket(), Some(stopped)));
    }
}

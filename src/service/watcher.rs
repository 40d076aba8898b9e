//! The event watchers, one per node: each follows its engine's container
//! events for this installation and re-checks the workspace each one concerns, so status
//! stays current and failures are recovered without polling. When the
//! engine goes away it reconnects with backoff and reconciles everything,
//! since events may have been missed meanwhile.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::Berth;
use crate::domain::{now_millis, EventKind};
use crate::engine::{ContainerAction, ContainerEvent};

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A task aborted when its handle is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Berth {
    /// Starts the watchers, one per node (nodes added later get theirs
    /// within a heartbeat interval; removed ones lose it); they run until
    /// the returned handle is aborted.
    pub fn spawn_watcher(&self) -> JoinHandle<()> {
        let berth = self.clone();
        tokio::spawn(async move { berth.supervise_watchers().await })
    }

    async fn supervise_watchers(self) {
        // Aborted with this task: dropping the map aborts every watcher.
        let mut watching: std::collections::BTreeMap<String, AbortOnDrop> =
            std::collections::BTreeMap::new();
        // Nodes the heartbeat last saw failing.
        let mut failing: std::collections::BTreeSet<String> = Default::default();
        let every = Duration::from_secs(self.config().nodes.heartbeat_s.max(1));
        loop {
            match self.nodes().names().await {
                Ok(names) => {
                    watching.retain(|n, _| names.contains(n));
                    for name in &names {
                        // Back after failing: reconcile its workspaces now.
                        // Events it sent as it came back were refused while
                        // the heartbeat still called it unreachable, and its
                        // event stream may have lived through the outage.
                        let fails = self.nodes().seen(name).1.is_some();
                        if !fails && failing.remove(name) {
                            let berth = self.clone();
                            let node = name.clone();
                            tokio::spawn(async move {
                                match berth.reconcile_node(&node).await {
                                    Ok(n) => {
                                        tracing::info!(%node, changed = n, "node is back; reconciled")
                                    }
                                    Err(e) => {
                                        tracing::warn!(%node, error = %e, "reconciling a node that came back failed")
                                    }
                                }
                            });
                        } else if fails {
                            failing.insert(name.clone());
                        }
                    }
                    for name in names {
                        if let std::collections::btree_map::Entry::Vacant(slot) =
                            watching.entry(name)
                        {
                            let berth = self.clone();
                            let node = slot.key().clone();
                            let task = tokio::spawn(async move { berth.watch(node).await });
                            slot.insert(AbortOnDrop(task));
                        }
                    }
                }
                Err(e) => {
                    crate::metrics::loop_failed("watcher", e.kind());
                    tracing::warn!(error = %e, "listing nodes for the watchers failed");
                }
            }
            tokio::time::sleep(every).await;
        }
    }

    async fn watch(self, node: String) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let since = now_millis() / 1000 - 1;
            match self.reconcile_node(&node).await {
                Ok(n) if n > 0 => {
                    tracing::info!(%node, changed = n, "watcher reconciled workspaces")
                }
                Ok(_) => {}
                Err(e) => {
                    crate::metrics::loop_failed("watcher", e.kind());
                    tracing::warn!(%node, error = %e, "watcher reconcile failed");
                }
            }
            match self.engine_on(&node).await {
                Ok(engine) => {
                    let mut events =
                        Box::pin(engine.workspace_events(&self.config().instance, since));
                    while let Some(ev) = events.next().await {
                        match ev {
                            Ok(ev) => {
                                backoff = Duration::from_secs(1);
                                self.on_event(ev).await;
                            }
                            Err(e) => {
                                // One mapping of errors to kinds: the service's.
                                let e = super::ServiceError::from(e);
                                crate::metrics::loop_failed("watcher", e.kind());
                                tracing::warn!(%node, error = %e, "engine event stream failed");
                                break;
                            }
                        }
                    }
                }
                // Unreachable by the heartbeat: ask again at the next beat,
                // so a node that returns is reconciled within about one.
                Err(e) => {
                    tracing::debug!(%node, error = %e, "no event stream");
                    let every = Duration::from_secs(self.config().nodes.heartbeat_s.max(1));
                    tokio::time::sleep(every).await;
                    continue;
                }
            }
            tracing::warn!(%node, retry_in = ?backoff, "engine event stream ended; reconnecting");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn on_event(&self, ev: ContainerEvent) {
        let Ok(id) = Uuid::parse_str(&ev.workspace_id) else {
            return;
        };
        tracing::debug!(workspace = %id, action = ev.action.as_str(), "engine event");
        if ev.action == ContainerAction::Oom {
            metrics::counter!("berth_oom_kills_total").increment(1);
            let limit = self
                .store()
                .workspace(id)
                .await
                .ok()
                .flatten()
                .and_then(|w| self.effective_limits(&w).ok())
                .map(|l| format!(" ({} MB)", l.memory_mb))
                .unwrap_or_default();
            let msg = format!("a process was killed for exceeding the memory limit{limit}");
            if let Err(e) = self
                .store()
                .insert_event(id, now_millis(), EventKind::Oom, &msg)
                .await
            {
                tracing::warn!(workspace = %id, error = %e, "recording OOM failed");
            }
        }
        // Checking takes the workspace's lock, which a user's stop may hold
        // for seconds: do it beside the stream, not in its way.
        let berth = self.clone();
        tokio::spawn(async move {
            if let Err(e) = berth.check_workspace(id).await {
                crate::metrics::loop_failed("watcher", e.kind());
                tracing::warn!(workspace = %id, error = %e, "checking workspace after event failed");
            }
            // Nobody listening is fine.
            let _ = berth.inner.changes.send(id);
        });
    }
}

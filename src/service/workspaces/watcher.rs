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
use crate::domain::transition::Note;
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
    /// within a heartbeat interval; removed ones lose it), and the timer
    /// of recovery restarts; they run until the returned handle is aborted.
    pub fn spawn_watcher(&self) -> JoinHandle<()> {
        let berth = self.clone();
        tokio::spawn(async move { berth.supervise_watchers().await })
    }

    async fn supervise_watchers(self) {
        // Restarts waiting out their backoff are this supervisor's too:
        // aborted with it.
        let _recovery = AbortOnDrop(self.spawn_recovery_timer());
        // Aborted with this task: dropping the map aborts every watcher.
        let mut watching: std::collections::BTreeMap<String, AbortOnDrop> =
            std::collections::BTreeMap::new();
        // Nodes the heartbeat last saw failing.
        let mut failing: std::collections::BTreeSet<String> = Default::default();
        let every = Duration::from_secs(self.core().config().nodes.heartbeat_s.max(1));
        loop {
            match self.core().nodes().names().await {
                Ok(names) => {
                    watching.retain(|n, _| names.contains(n));
                    for name in &names {
                        // Back after failing: reconcile its workspaces now.
                        // Events it sent as it came back were refused while
                        // the heartbeat still called it unreachable, and its
                        // event stream may have lived through the outage.
                        let fails = self.core().nodes().seen(name).1.is_some();
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
        // However this task ends (aborted with the supervisor, or its node
        // removed), the view it kept current stops answering.
        let _view = crate::service::view::SyncedWhileAlive {
            view: self.observe().view().clone(),
            node: node.clone(),
        };
        let mut backoff = Duration::from_secs(1);
        let resync_every = Duration::from_secs(self.core().config().nodes.resync_s.max(1));
        loop {
            let since = now_millis() / 1000 - 1;
            match self.core().engine_on(&node).await {
                Ok(engine) => {
                    // Listed, inspected and reconciled before the stream is
                    // followed; events from `since` on are replayed, so
                    // nothing between the two is missed.
                    match self.reconcile_followed(&node).await {
                        Ok(n) if n > 0 => {
                            tracing::info!(%node, changed = n, "watcher reconciled workspaces")
                        }
                        Ok(_) => {}
                        Err(e) => {
                            crate::metrics::loop_failed("watcher", e.kind());
                            tracing::warn!(%node, error = %e, "watcher reconcile failed");
                        }
                    }
                    let mut events =
                        Box::pin(engine.workspace_events(&self.core().config().instance, since));
                    let mut resync = tokio::time::interval(resync_every);
                    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    resync.tick().await;
                    let resyncing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    loop {
                        tokio::select! {
                            ev = events.next() => match ev {
                                Some(Ok(ev)) => {
                                    backoff = Duration::from_secs(1);
                                    self.on_event(&node, ev).await;
                                }
                                Some(Err(e)) => {
                                    // One mapping of errors to kinds: the service's.
                                    let e = crate::service::ServiceError::from(e);
                                    crate::metrics::loop_failed("watcher", e.kind());
                                    tracing::warn!(%node, error = %e, "engine event stream failed");
                                    break;
                                }
                                None => break,
                            },
                            // A stream can stall without failing (a network
                            // that drops packets): rebuild the view now and
                            // then, beside the stream.
                            _ = resync.tick() => {
                                if !resyncing.swap(true, std::sync::atomic::Ordering::AcqRel) {
                                    let berth = self.clone();
                                    let node = node.clone();
                                    let resyncing = resyncing.clone();
                                    tokio::spawn(async move {
                                        if let Err(e) = berth.reconcile_followed(&node).await {
                                            crate::metrics::loop_failed("watcher", e.kind());
                                            tracing::warn!(%node, error = %e, "periodic resync failed");
                                        }
                                        resyncing.store(false, std::sync::atomic::Ordering::Release);
                                    });
                                }
                            }
                        }
                    }
                    // Events may be missed from here until the next resync.
                    self.observe().view().unsync_view(&node);
                }
                // Unreachable by the heartbeat: ask again at the next beat,
                // so a node that returns is reconciled within about one.
                Err(e) => {
                    tracing::debug!(%node, error = %e, "no event stream");
                    let every = Duration::from_secs(self.core().config().nodes.heartbeat_s.max(1));
                    tokio::time::sleep(every).await;
                    continue;
                }
            }
            tracing::warn!(%node, retry_in = ?backoff, "engine event stream ended; reconnecting");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn on_event(&self, node: &str, ev: ContainerEvent) {
        let Ok(id) = Uuid::parse_str(&ev.workspace_id) else {
            return;
        };
        tracing::debug!(workspace = %id, action = ev.action.as_str(), "engine event");
        if ev.action == ContainerAction::Oom {
            let limit = self
                .core()
                .store()
                .workspace(id)
                .await
                .ok()
                .flatten()
                .and_then(|w| self.types().effective_limits(&w).ok())
                .map(|l| format!(" ({} MB)", l.memory_mb))
                .unwrap_or_default();
            let msg = format!("a process was killed for exceeding the memory limit{limit}");
            // Every replica follows this engine: the first to record the
            // event (and a replay of it after a reconnect) writes it once.
            let source = format!(
                "{node}/{}/{}/{}",
                ev.container_id,
                ev.action.as_str(),
                ev.time_nano
            );
            match self
                .core()
                .note_once(id, Note::new(EventKind::Oom, msg), &source)
                .await
            {
                Ok(true) => metrics::counter!("berth_oom_kills_total").increment(1),
                Ok(false) => {}
                Err(e) => tracing::warn!(workspace = %id, error = %e, "recording OOM failed"),
            }
        }
        // The container is looked at again (the view learns it), and the
        // record checked under the workspace's lock only if it no longer
        // agrees: that lock may be held for seconds by a user's stop, so it
        // is done beside the stream, not in its way.
        let berth = self.clone();
        let node = node.to_string();
        tokio::spawn(async move {
            let name = crate::domain::workspace_container_name(id);
            let (state, changed) = match berth.observe().inspect_noted(&node, &name).await {
                Ok(seen) => seen,
                Err(e) => {
                    crate::metrics::loop_failed("watcher", e.kind());
                    tracing::warn!(workspace = %id, error = %e, "inspecting after an event failed");
                    return;
                }
            };
            let disagrees = match berth.core().store().workspace(id).await {
                Ok(Some(ws)) => ws.node == node && !berth.agrees(&ws, state.as_ref()),
                Ok(None) => false,
                Err(_) => true,
            };
            if disagrees {
                if let Err(e) = berth.check_workspace(id).await {
                    crate::metrics::loop_failed("watcher", e.kind());
                    tracing::warn!(workspace = %id, error = %e, "checking workspace after event failed");
                }
            }
            if changed || disagrees {
                // Nobody listening is fine.
                let _ = berth.inner.changes.send(id);
            }
        });
    }
}

//! The event watcher: follows the engine's container events for this
//! installation and re-checks the workspace each one concerns, so status
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

impl Berth {
    /// Starts the watcher; it runs until the returned handle is aborted.
    pub fn spawn_watcher(&self) -> JoinHandle<()> {
        let berth = self.clone();
        tokio::spawn(async move { berth.watch().await })
    }

    async fn watch(self) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let since = now_millis() / 1000 - 1;
            match self.reconcile_all().await {
                Ok(n) if n > 0 => tracing::info!(changed = n, "watcher reconciled workspaces"),
                Ok(_) => {}
                Err(e) => {
                    crate::metrics::loop_failed("watcher", e.kind());
                    tracing::warn!(error = %e, "watcher reconcile failed");
                }
            }
            let mut events = Box::pin(
                self.engine()
                    .workspace_events(&self.config().instance, since),
            );
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
                        tracing::warn!(error = %e, "engine event stream failed");
                        break;
                    }
                }
            }
            tracing::warn!(retry_in = ?backoff, "engine event stream ended; reconnecting");
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

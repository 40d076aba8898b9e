//! The service side of the workspace proxy: find the port to forward to,
//! waking a stopped workspace on access (bounded), and record proxy traffic
//! as activity at most once per `proxy.activity_interval_s`. The HTTP side
//! (`http::routes::proxy`) moves the bytes.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::super::{Result, ServiceError};
use super::Apps;
use crate::domain::proxy::{wake_step, WakeStep, WakeView};
use crate::domain::User;

/// Where a proxy request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// Running: the type's port is published there; other ports are
    /// reached through the container.
    Ready(Reach),
    /// Still starting when the wait ran out; it goes on starting.
    Waking,
}

/// Where a running workspace is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// The node it runs on.
    pub node: String,
    /// The address its node's published ports are reached on (the local
    /// node: 127.0.0.1).
    pub host: String,
    /// The type's port as published there.
    pub host_port: u16,
    /// The container's id, for other ports (reached through the engine).
    pub container: String,
}

/// How often a waiting request looks at the workspace again.
const POLL: Duration = Duration::from_millis(200);

impl Apps {
    /// The port to forward a proxy request for workspace `id` to. A stopped
    /// workspace is started and waited for (until healthy, when it has a
    /// health check) at most `wait`.
    pub async fn proxy_upstream(&self, user: &User, id: Uuid, wait: Duration) -> Result<Upstream> {
        self.core().workspace(user, id).await?;
        self.upstream_of(id, Some(user), wait).await
    }

    /// As [`Berth::proxy_upstream`] for a workspace the caller already may
    /// open; `waker` (who may start it) is `None` for someone it is only
    /// shared with: a stopped workspace then stays stopped.
    pub async fn upstream_of(
        &self,
        id: Uuid,
        waker: Option<&User>,
        wait: Duration,
    ) -> Result<Upstream> {
        let deadline = Instant::now() + wait;
        let mut started = false;
        loop {
            let ws = self
                .core()
                .store()
                .workspace(id)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no workspace with id {id}")))?;
            // From the engine view: a proxied request asks the engine
            // nothing while the node's events are followed.
            let container = self
                .observe()
                .container_on(&ws.node, &ws.container_name())
                .await?;
            let running = container.as_ref().is_some_and(|c| c.running);
            let step = wake_step(&WakeView {
                status: ws.status,
                reason: ws.status_reason.as_deref(),
                running,
                health: container
                    .as_ref()
                    .and_then(|c| c.health.as_ref())
                    .map(|h| h.status),
                host_port: container
                    .as_ref()
                    .filter(|c| c.running)
                    .and_then(|c| c.host_port),
                started,
            });
            match step {
                WakeStep::Forward(port) => {
                    return Ok(Upstream::Ready(Reach {
                        host: self.core().nodes().address(&ws.node).await?,
                        node: ws.node,
                        host_port: port,
                        container: container.map(|c| c.id).unwrap_or_default(),
                    }))
                }
                WakeStep::Unavailable(m) => return Err(ServiceError::NotReady(m)),
                WakeStep::Start if waker.is_none() => {
                    return Err(ServiceError::NotReady(
                        "the workspace is stopped; its owner can start it".into(),
                    ))
                }
                WakeStep::Start => {
                    tracing::info!(workspace = %id, "waking workspace on proxy access");
                    // In its own task, so a client that gives up does not
                    // cancel a start half way.
                    let this = self.clone();
                    let user = waker.cloned().expect("checked above");
                    let start =
                        tokio::spawn(async move { this.berth().start_workspace(&user, id).await });
                    match start.await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e @ (ServiceError::Conflict(_) | ServiceError::Invalid(_)))) => {
                            return Err(ServiceError::NotReady(format!(
                                "workspace is stopped and cannot be started: {e}"
                            )))
                        }
                        Ok(Err(e)) => return Err(e),
                        Err(e) => return Err(ServiceError::Internal(format!("start task: {e}"))),
                    }
                    started = true;
                    continue;
                }
                WakeStep::Wait => {}
            }
            if Instant::now() >= deadline {
                return Ok(Upstream::Waking);
            }
            tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// Records proxy traffic to workspace `id` by `user_id` as activity,
    /// at most once per `proxy.activity_interval_s`.
    pub fn proxy_activity(&self, user_id: Uuid, id: Uuid) {
        let every = Duration::from_secs(self.core().config().proxy.activity_interval_s);
        {
            let mut last = self.inner.proxy_touched.lock().expect("proxy map poisoned");
            let now = Instant::now();
            if last
                .get(&id)
                .is_some_and(|t| now.duration_since(*t) < every)
            {
                return;
            }
            last.insert(id, now);
        }
        let this = self.clone();
        tokio::spawn(async move { this.berth().touch(user_id, id).await });
    }
}

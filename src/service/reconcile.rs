//! Bringing the database into agreement with the engine (SPEC §3
//! "Reconcile"). [`observe`] is the pure decision: from what the record says
//! and what the engine shows, what the record should say. The rest applies it.

use super::{Berth, Result};
use crate::domain::{now_millis, Workspace, WorkspaceStatus};
use crate::engine::ContainerState;

/// The parts of a container's state that decide a workspace's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub running: bool,
    pub exit_code: i64,
    pub oom_killed: bool,
    /// Set when the container exists but was never started.
    pub never_started: bool,
}

impl From<&ContainerState> for Seen {
    fn from(c: &ContainerState) -> Self {
        Seen {
            running: c.running,
            exit_code: c.exit_code,
            oom_killed: c.oom_killed,
            never_started: c.status == "created",
        }
    }
}

/// What a workspace's status and reason should be, given the engine's view
/// (`None`: no container). Archived and error states are left for the
/// operator or recovery to change; everything else follows the engine.
pub fn observe(
    status: WorkspaceStatus,
    reason: Option<&str>,
    seen: Option<&Seen>,
) -> (WorkspaceStatus, Option<String>) {
    use WorkspaceStatus::*;
    let keep = (status, reason.map(str::to_string));
    match (status, seen) {
        (Archived | Error, _) => keep,
        (_, Some(s)) if s.running => (Running, None),
        (Stopped, _) => keep,
        (Running | Starting | Stopping, None) => (
            Stopped,
            (status == Running).then(|| "container no longer exists".to_string()),
        ),
        (Running | Starting | Stopping, Some(s)) => {
            let why = if s.oom_killed {
                Some(format!(
                    "container was OOM killed (exit code {})",
                    s.exit_code
                ))
            } else if status == Running && !s.never_started {
                Some(format!("container exited with code {}", s.exit_code))
            } else {
                None
            };
            (Stopped, why)
        }
    }
}

impl Berth {
    /// Refreshes one workspace from the engine and saves it if anything
    /// changed. Returns the workspace and its container state.
    pub(super) async fn refresh(
        &self,
        mut ws: Workspace,
    ) -> Result<(Workspace, Option<ContainerState>)> {
        let container = self
            .engine()
            .inspect_container(&ws.container_name())
            .await?;
        let seen = container.as_ref().map(Seen::from);
        let (status, reason) = observe(ws.status, ws.status_reason.as_deref(), seen.as_ref());
        let container_id = container.as_ref().map(|c| c.id.clone());
        let host_port = container
            .as_ref()
            .filter(|c| c.running)
            .and_then(|c| c.host_port);
        if status != ws.status
            || reason != ws.status_reason
            || container_id != ws.container_id
            || host_port != ws.host_port
        {
            tracing::info!(workspace = %ws.id, from = %ws.status, to = %status, ?reason, "reconciled with engine");
            ws.status = status;
            ws.status_reason = reason;
            ws.container_id = container_id;
            ws.host_port = host_port;
            ws.updated_at = now_millis();
            self.store().save_workspace(&ws).await?;
        }
        Ok((ws, container))
    }

    /// Reconciles every workspace with the engine (at startup). Returns how
    /// many records changed. One workspace failing does not stop the rest.
    pub async fn reconcile_all(&self) -> Result<usize> {
        let mut changed = 0;
        for ws in self.store().workspaces(None).await? {
            let _guard = self.lock_workspace(ws.id).await;
            let before = (ws.status, ws.status_reason.clone(), ws.host_port);
            match self.refresh(ws.clone()).await {
                Ok((after, _)) => {
                    if (after.status, after.status_reason, after.host_port) != before {
                        changed += 1;
                    }
                }
                Err(e) => tracing::warn!(workspace = %ws.id, error = %e, "reconcile failed"),
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkspaceStatus::*;

    fn seen(running: bool, code: i64, oom: bool) -> Seen {
        Seen {
            running,
            exit_code: code,
            oom_killed: oom,
            never_started: false,
        }
    }

    #[test]
    fn a_running_container_means_running() {
        for st in [Stopped, Starting, Running, Stopping] {
            assert_eq!(
                observe(st, Some("old"), Some(&seen(true, 0, false))),
                (Running, None)
            );
        }
    }

    #[test]
    fn a_vanished_container_stops_the_workspace() {
        assert_eq!(
            observe(Running, None, None),
            (Stopped, Some("container no longer exists".into()))
        );
        assert_eq!(observe(Starting, None, None), (Stopped, None));
        assert_eq!(observe(Stopping, None, None), (Stopped, None));
        assert_eq!(observe(Stopped, None, None), (Stopped, None));
    }

    #[test]
    fn an_exited_container_says_why() {
        assert_eq!(
            observe(Running, None, Some(&seen(false, 137, true))),
            (
                Stopped,
                Some("container was OOM killed (exit code 137)".into())
            )
        );
        assert_eq!(
            observe(Running, None, Some(&seen(false, 2, false))),
            (Stopped, Some("container exited with code 2".into()))
        );
        // A stop we asked for is no news.
        assert_eq!(
            observe(Stopping, None, Some(&seen(false, 0, false))),
            (Stopped, None)
        );
        let created = Seen {
            never_started: true,
            ..seen(false, 0, false)
        };
        assert_eq!(observe(Running, None, Some(&created)), (Stopped, None));
    }

    #[test]
    fn stopped_keeps_its_reason_while_the_container_is_down() {
        assert_eq!(
            observe(
                Stopped,
                Some("container exited with code 1"),
                Some(&seen(false, 1, false))
            ),
            (Stopped, Some("container exited with code 1".into()))
        );
    }

    #[test]
    fn archived_and_error_are_left_alone() {
        for s in [
            None,
            Some(seen(true, 0, false)),
            Some(seen(false, 1, false)),
        ] {
            assert_eq!(observe(Archived, None, s.as_ref()), (Archived, None));
            assert_eq!(
                observe(Error, Some("boom"), s.as_ref()),
                (Error, Some("boom".into()))
            );
        }
    }
}

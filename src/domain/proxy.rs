//! What the workspace proxy does next with a request for a workspace, given
//! what the store and the engine say about it: forward, start it (wake on
//! access), wait for it, or answer that it cannot be reached. Pure, so every
//! combination is unit-tested; `service::proxy` runs the loop.

use super::{Health, WorkspaceStatus};

/// One look at a workspace while a proxy request waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WakeView<'a> {
    pub status: WorkspaceStatus,
    pub reason: Option<&'a str>,
    /// The container exists and runs.
    pub running: bool,
    /// The engine's health status (`Starting`, `Healthy`, `Unhealthy`), or
    /// `None` without a health check.
    pub health: Option<Health>,
    /// The published 127.0.0.1 port, while running.
    pub host_port: Option<u16>,
    /// This request already started the workspace.
    pub started: bool,
}

/// The proxy's next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeStep {
    Forward(u16),
    /// Start it (wake on access), then look again.
    Start,
    /// It is on its way up; look again shortly.
    Wait,
    /// It cannot serve; the message says why and what to do.
    Unavailable(String),
}

/// Decides the next step. A running workspace whose health check has not
/// passed yet is waited for; one that is unhealthy is still forwarded to (its
/// server may well answer, and recovery deals with the health check).
pub fn wake_step(v: &WakeView<'_>) -> WakeStep {
    match v.status {
        WorkspaceStatus::Archived => {
            return WakeStep::Unavailable(
                "workspace is archived; unarchive it (PUT archived=false) to use it".into(),
            )
        }
        WorkspaceStatus::Error => {
            return WakeStep::Unavailable(format!(
                "workspace is in error: {}; start it again once the cause is fixed",
                v.reason.unwrap_or("no reason recorded")
            ))
        }
        _ => {}
    }
    if v.running {
        return match (v.health, v.host_port) {
            (Some(Health::Starting), _) => WakeStep::Wait,
            (_, Some(port)) => WakeStep::Forward(port),
            (_, None) => WakeStep::Unavailable(
                "workspace runs but its port is not published on 127.0.0.1".into(),
            ),
        };
    }
    match (v.status, v.started) {
        // Someone (this request or another) is starting it.
        (WorkspaceStatus::Starting, _) => WakeStep::Wait,
        (_, false) => WakeStep::Start,
        (_, true) => WakeStep::Unavailable(
            "workspace stopped right after it was started; see its logs and events".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: WorkspaceStatus) -> WakeView<'static> {
        WakeView {
            status,
            reason: None,
            running: false,
            health: None,
            host_port: None,
            started: false,
        }
    }

    fn running(health: Option<Health>) -> WakeView<'static> {
        WakeView {
            running: true,
            health,
            host_port: Some(32768),
            ..view(WorkspaceStatus::Running)
        }
    }

    #[test]
    fn running_without_check_or_healthy_is_forwarded() {
        assert_eq!(wake_step(&running(None)), WakeStep::Forward(32768));
        assert_eq!(
            wake_step(&running(Some(Health::Healthy))),
            WakeStep::Forward(32768)
        );
    }

    #[test]
    fn unhealthy_is_still_forwarded() {
        assert_eq!(
            wake_step(&running(Some(Health::Unhealthy))),
            WakeStep::Forward(32768)
        );
    }

    #[test]
    fn health_starting_is_waited_for() {
        assert_eq!(wake_step(&running(Some(Health::Starting))), WakeStep::Wait);
    }

    #[test]
    fn running_without_port_is_unavailable() {
        let v = WakeView {
            host_port: None,
            ..running(None)
        };
        assert!(matches!(wake_step(&v), WakeStep::Unavailable(m) if m.contains("port")));
    }

    #[test]
    fn stopped_is_started_once() {
        assert_eq!(wake_step(&view(WorkspaceStatus::Stopped)), WakeStep::Start);
        // The record says running but the container is gone: start it.
        assert_eq!(wake_step(&view(WorkspaceStatus::Running)), WakeStep::Start);
        let after = WakeView {
            started: true,
            ..view(WorkspaceStatus::Stopped)
        };
        assert!(matches!(wake_step(&after), WakeStep::Unavailable(m) if m.contains("logs")));
    }

    #[test]
    fn starting_is_waited_for_whoever_started_it() {
        assert_eq!(wake_step(&view(WorkspaceStatus::Starting)), WakeStep::Wait);
        let ours = WakeView {
            started: true,
            ..view(WorkspaceStatus::Starting)
        };
        assert_eq!(wake_step(&ours), WakeStep::Wait);
    }

    #[test]
    fn error_and_archived_are_unavailable_with_the_reason() {
        let err = WakeView {
            reason: Some("OOM killed 3 times"),
            running: true,
            host_port: Some(1),
            ..view(WorkspaceStatus::Error)
        };
        assert!(
            matches!(wake_step(&err), WakeStep::Unavailable(m) if m.contains("OOM killed 3 times"))
        );
        assert!(matches!(
            wake_step(&view(WorkspaceStatus::Archived)),
            WakeStep::Unavailable(m) if m.contains("archived")
        ));
    }
}

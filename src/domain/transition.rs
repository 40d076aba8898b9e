//! Status transitions: the one function that changes where a workspace
//! stands. Each transition owns the columns it writes (status, its reason,
//! the container and its port, the node, activity) and nothing else, so
//! the store can save exactly those (`Store::save_status`) without
//! overwriting a name, settings or the default flag written meanwhile; and
//! it refuses a move the lifecycle does not make (an archived workspace
//! started, a running one archived), as [`Illegal`]. Pure; the services
//! decide when. A step's event ([`Note`]) is saved with it by the one
//! service method that applies transitions (`Core::steps`), in the same
//! database transaction. `tests/architecture.rs` fails on any other writer
//! of those fields, and on any other writer of a status or an event.

use super::{EventKind, Millis, Workspace, WorkspaceStatus};

/// What a workspace's history says about a step: the event saved with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub kind: EventKind,
    pub message: String,
}

impl Note {
    pub fn new(kind: EventKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// What happened to a workspace's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// A start is under way (a person's, wake on access, or recovery's,
    /// with why).
    Starting {
        reason: Option<String>,
    },
    /// Its container runs. `activity`: a person's start or restart made it
    /// so, and its idle time counts from now.
    Running {
        container_id: Option<String>,
        host_port: Option<u16>,
        activity: bool,
    },
    /// A stop is under way.
    Stopping,
    /// Not running, its container kept; `reason` when it did not stop at
    /// a person's asking.
    Stopped {
        reason: Option<String>,
    },
    /// Something went wrong; the reason says what.
    Failed {
        reason: String,
    },
    /// Its container is gone (removed to be made anew, or cleaned up): no
    /// container, stopped, unless archived.
    ContainerRemoved,
    Archived,
    Unarchived,
    /// The status the engine's view implies, adopted as it is (reconcile).
    Observed {
        status: WorkspaceStatus,
        reason: Option<String>,
    },
    /// The container as the engine has it now (reconcile, a recovery
    /// restart): its id (none when it is gone) and its published port.
    Seen {
        container_id: Option<String>,
        host_port: Option<u16>,
    },
    /// It lives on `node` now, without a container (it is made there at
    /// the next start): the workspace followed its project, or left it.
    /// The status is not touched.
    Rehomed {
        node: String,
    },
}

/// A transition the lifecycle does not make from where the workspace
/// stands; the message says what to do first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("workspace {workspace} is {from}: {what}")]
pub struct Illegal {
    pub workspace: uuid::Uuid,
    pub from: WorkspaceStatus,
    pub what: &'static str,
}

/// Why `t` may not happen to a workspace that is `from`, if it may not.
pub fn refusal(from: WorkspaceStatus, t: &Transition) -> Option<&'static str> {
    use WorkspaceStatus as S;
    match (from, t) {
        (
            S::Archived,
            Transition::Starting { .. } | Transition::Running { .. } | Transition::Stopping,
        ) => Some("unarchive it before starting or stopping it"),
        (S::Starting | S::Running | S::Stopping, Transition::Archived) => {
            Some("stop it before archiving it")
        }
        (f, Transition::Unarchived) if f != S::Archived => {
            Some("only an archived workspace is unarchived")
        }
        _ => None,
    }
}

/// The workspace after `t`, at `now`; refused as [`refusal`] says.
pub fn transition(ws: &Workspace, t: Transition, now: Millis) -> Result<Workspace, Illegal> {
    if let Some(what) = refusal(ws.status, &t) {
        return Err(Illegal {
            workspace: ws.id,
            from: ws.status,
            what,
        });
    }
    let mut w = ws.clone();
    w.updated_at = now;
    match t {
        Transition::Starting { reason } => {
            w.status = WorkspaceStatus::Starting;
            w.status_reason = reason;
        }
        Transition::Running {
            container_id,
            host_port,
            activity,
        } => {
            w.status = WorkspaceStatus::Running;
            w.status_reason = None;
            if container_id.is_some() {
                w.container_id = container_id;
            }
            w.host_port = host_port;
            if activity {
                w.last_activity_at = Some(now);
            }
        }
        Transition::Stopping => w.status = WorkspaceStatus::Stopping,
        Transition::Stopped { reason } => {
            w.status = WorkspaceStatus::Stopped;
            w.status_reason = reason;
            w.host_port = None;
        }
        Transition::Failed { reason } => {
            w.status = WorkspaceStatus::Error;
            w.status_reason = Some(reason);
            w.host_port = None;
        }
        Transition::ContainerRemoved => {
            w.container_id = None;
            w.host_port = None;
            if w.status != WorkspaceStatus::Archived {
                w.status = WorkspaceStatus::Stopped;
                w.status_reason = None;
            }
        }
        Transition::Archived => {
            w.status = WorkspaceStatus::Archived;
            w.status_reason = None;
        }
        Transition::Unarchived => w.status = WorkspaceStatus::Stopped,
        Transition::Observed { status, reason } => {
            w.status = status;
            w.status_reason = reason;
        }
        Transition::Seen {
            container_id,
            host_port,
        } => {
            w.container_id = container_id;
            w.host_port = host_port;
        }
        Transition::Rehomed { node } => {
            w.node = node;
            w.container_id = None;
            w.host_port = None;
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::WorkspaceSettings;
    use uuid::Uuid;

    fn ws(status: WorkspaceStatus) -> Workspace {
        Workspace {
            id: Uuid::nil(),
            owner_id: Uuid::nil(),
            name: "w".into(),
            description: "d".into(),
            type_name: "t".into(),
            project_id: None,
            node: "local".into(),
            is_default: true,
            settings: WorkspaceSettings::default(),
            status,
            status_reason: Some("before".into()),
            container_id: Some("c0".into()),
            host_port: Some(1),
            last_activity_at: Some(5),
            created_at: 1,
            updated_at: 2,
        }
    }

    #[test]
    fn a_start_sets_the_container_and_counts_activity_from_now() {
        let w = transition(
            &ws(WorkspaceStatus::Starting),
            Transition::Running {
                container_id: Some("c1".into()),
                host_port: Some(9),
                activity: true,
            },
            100,
        )
        .unwrap();
        assert_eq!(w.status, WorkspaceStatus::Running);
        assert_eq!(w.status_reason, None);
        assert_eq!(w.container_id.as_deref(), Some("c1"));
        assert_eq!(w.host_port, Some(9));
        assert_eq!(w.last_activity_at, Some(100));
        assert_eq!(w.updated_at, 100);
        // Recovery's start does not count as someone's activity.
        let r = transition(
            &ws(WorkspaceStatus::Error),
            Transition::Running {
                container_id: None,
                host_port: Some(9),
                activity: false,
            },
            100,
        )
        .unwrap();
        assert_eq!(r.last_activity_at, Some(5));
        assert_eq!(r.container_id.as_deref(), Some("c0"), "kept when not given");
    }

    #[test]
    fn stopping_failing_and_removal_clear_what_no_longer_holds() {
        let s = transition(
            &ws(WorkspaceStatus::Running),
            Transition::Stopped { reason: None },
            3,
        )
        .unwrap();
        assert_eq!(
            (s.status, s.status_reason, s.host_port),
            (WorkspaceStatus::Stopped, None, None)
        );
        assert_eq!(s.container_id.as_deref(), Some("c0"), "container kept");
        let f = transition(
            &ws(WorkspaceStatus::Running),
            Transition::Failed {
                reason: "boom".into(),
            },
            3,
        )
        .unwrap();
        assert_eq!(f.status, WorkspaceStatus::Error);
        assert_eq!(f.status_reason.as_deref(), Some("boom"));
        assert_eq!(f.host_port, None);
        let r = transition(&ws(WorkspaceStatus::Error), Transition::ContainerRemoved, 3).unwrap();
        assert_eq!(
            (r.status, r.container_id, r.host_port, r.status_reason),
            (WorkspaceStatus::Stopped, None, None, None)
        );
        let a = transition(
            &ws(WorkspaceStatus::Archived),
            Transition::ContainerRemoved,
            3,
        )
        .unwrap();
        assert_eq!(a.status, WorkspaceStatus::Archived, "archived stays");
    }

    #[test]
    fn a_transition_touches_nothing_but_the_state() {
        for t in every_transition() {
            let from = if t == Transition::Unarchived {
                WorkspaceStatus::Archived
            } else {
                WorkspaceStatus::Stopped
            };
            let before = ws(from);
            let after = transition(&before, t.clone(), 9).unwrap();
            assert_eq!(
                (
                    &after.name,
                    &after.description,
                    after.is_default,
                    &after.settings
                ),
                (
                    &before.name,
                    &before.description,
                    before.is_default,
                    &before.settings
                ),
                "{t:?}"
            );
            assert_eq!(after.project_id, before.project_id, "{t:?}");
            assert_eq!(after.created_at, before.created_at, "{t:?}");
        }
    }

    #[test]
    fn the_container_and_node_are_set_by_transitions_too() {
        let seen = transition(
            &ws(WorkspaceStatus::Running),
            Transition::Seen {
                container_id: Some("c9".into()),
                host_port: None,
            },
            4,
        )
        .unwrap();
        assert_eq!(
            (seen.container_id.as_deref(), seen.host_port),
            (Some("c9"), None)
        );
        assert_eq!(seen.status, WorkspaceStatus::Running, "status untouched");
        let moved = transition(
            &ws(WorkspaceStatus::Error),
            Transition::Rehomed { node: "n2".into() },
            4,
        )
        .unwrap();
        assert_eq!(
            (
                moved.node.as_str(),
                moved.container_id,
                moved.host_port,
                moved.status
            ),
            ("n2", None, None, WorkspaceStatus::Error)
        );
    }

    /// Every transition, with a value where it takes one.
    fn every_transition() -> Vec<Transition> {
        vec![
            Transition::Starting { reason: None },
            Transition::Running {
                container_id: None,
                host_port: None,
                activity: false,
            },
            Transition::Stopping,
            Transition::Stopped { reason: None },
            Transition::Failed { reason: "x".into() },
            Transition::ContainerRemoved,
            Transition::Archived,
            Transition::Unarchived,
            Transition::Observed {
                status: WorkspaceStatus::Stopped,
                reason: None,
            },
            Transition::Seen {
                container_id: None,
                host_port: None,
            },
            Transition::Rehomed { node: "n".into() },
        ]
    }

    #[test]
    fn only_the_moves_the_lifecycle_makes_are_taken() {
        use WorkspaceStatus as S;
        let statuses = [
            S::Stopped,
            S::Starting,
            S::Running,
            S::Stopping,
            S::Error,
            S::Archived,
        ];
        // (from, transition index in every_transition()) pairs refused.
        let refused: &[(S, usize)] = &[
            (S::Archived, 0),
            (S::Archived, 1),
            (S::Archived, 2),
            (S::Starting, 6),
            (S::Running, 6),
            (S::Stopping, 6),
            (S::Stopped, 7),
            (S::Starting, 7),
            (S::Running, 7),
            (S::Stopping, 7),
            (S::Error, 7),
        ];
        for from in statuses {
            for (i, t) in every_transition().into_iter().enumerate() {
                let got = transition(&ws(from), t.clone(), 7);
                let should_refuse = refused.contains(&(from, i));
                match got {
                    Ok(w) => assert!(!should_refuse, "{from} -> {t:?} was taken: {:?}", w.status),
                    Err(e) => {
                        assert!(should_refuse, "{from} -> {t:?} was refused: {e}");
                        assert_eq!((e.from, e.workspace), (from, Uuid::nil()));
                        assert!(!e.what.is_empty());
                    }
                }
            }
        }
    }
}

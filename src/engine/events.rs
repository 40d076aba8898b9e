//! The engine's event stream, narrowed to this installation's workspace
//! containers and the actions that change a workspace's state.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::{Stream, StreamExt};

use super::{Engine, EngineError, LABEL_INSTANCE, LABEL_MANAGED, LABEL_WORKSPACE_ID};

/// One container event that matters to a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    /// The `berth.workspace.id` label of the container.
    pub workspace_id: String,
    pub container_id: String,
    pub action: ContainerAction,
    /// The exit code of a `die`.
    pub exit_code: Option<i64>,
    /// When the engine says it happened (unix nanoseconds): with the
    /// container and the action, what names this event among the engine's.
    pub time_nano: i64,
}

crate::domain::spelled_enum! {
    /// The container actions worth waking up for (the engine's spelling).
    pub enum ContainerAction("container action") {
        Die = "die",
        /// The kernel killed a process for exceeding the memory limit.
        Oom = "oom",
        Start = "start",
        Destroy = "destroy",
        /// `health_status: healthy` and the like; the status is re-read.
        HealthStatus = "health_status",
        /// A process run in the container ended: every health check probe
        /// is one, so the probe log Berth shows stays current.
        ExecDie = "exec_die",
        Pause = "pause",
        Unpause = "unpause",
    }
}

impl ContainerAction {
    /// The action of an engine event message, if it is one of ours:
    /// `health_status: unhealthy` is a `HealthStatus`.
    fn of_message(action: &str) -> Option<ContainerAction> {
        ContainerAction::parse(action.split(':').next().unwrap_or(action).trim())
    }
}

impl Engine {
    /// Follows container events of workspaces labelled with `instance`. The
    /// stream ends (or errs) when the engine goes away; the caller reconnects.
    /// Events from `since_unix_s` on are replayed first.
    pub fn workspace_events(
        &self,
        instance: &str,
        since_unix_s: i64,
    ) -> impl Stream<Item = Result<ContainerEvent, EngineError>> + Send + 'static {
        let mut filters: HashMap<&str, Vec<String>> = HashMap::new();
        filters.insert("type", vec!["container".into()]);
        filters.insert(
            "label",
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_INSTANCE}={instance}"),
            ],
        );
        filters.insert(
            "event",
            ContainerAction::ALL
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
        );
        // Replaying from `since` closes the gap between a reconcile and the
        // moment the subscription is live.
        let opts = EventsOptionsBuilder::new()
            .since(&since_unix_s.to_string())
            .filters(&filters)
            .build();
        self.docker.events(Some(opts)).filter_map(|r| async move {
            match r {
                Err(e) => Some(Err(EngineError::from(e))),
                Ok(m) => {
                    let actor = m.actor?;
                    let attrs = actor.attributes.unwrap_or_default();
                    let workspace_id = attrs.get(LABEL_WORKSPACE_ID)?.clone();
                    let action = ContainerAction::of_message(m.action.as_deref()?)?;
                    Some(Ok(ContainerEvent {
                        workspace_id,
                        container_id: actor.id.unwrap_or_default(),
                        action,
                        exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()),
                        time_nano: m.time_nano.unwrap_or(0),
                    }))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_actions_are_read_with_their_detail_dropped() {
        assert_eq!(
            ContainerAction::of_message("health_status: unhealthy"),
            Some(ContainerAction::HealthStatus)
        );
        assert_eq!(
            ContainerAction::of_message("oom"),
            Some(ContainerAction::Oom)
        );
        assert_eq!(
            ContainerAction::of_message("die"),
            Some(ContainerAction::Die)
        );
        assert_eq!(ContainerAction::of_message("exec_start: sh"), None);
        assert_eq!(ContainerAction::of_message("attach"), None);
    }
}

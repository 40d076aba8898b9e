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
    /// `die`, `oom`, `start`, `destroy`, `health_status: unhealthy`, …
    pub action: String,
    /// The exit code of a `die`.
    pub exit_code: Option<i64>,
}

/// Actions worth waking up for.
const ACTIONS: &[&str] = &["die", "oom", "start", "destroy", "health_status"];

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
        filters.insert("event", ACTIONS.iter().map(|a| a.to_string()).collect());
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
                    Some(Ok(ContainerEvent {
                        workspace_id,
                        container_id: actor.id.unwrap_or_default(),
                        action: m.action.unwrap_or_default(),
                        exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()),
                    }))
                }
            }
        })
    }
}

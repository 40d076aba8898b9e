//! What the cleanup jobs do to one workspace, each under the workspace's
//! lock and after re-reading it: the plan was made from a snapshot, and a
//! person may have acted since.

use uuid::Uuid;

use super::Berth;
use crate::domain::transition::{Note, Transition};
use crate::domain::{now_millis, EventKind, Millis, WorkspaceStatus};
use crate::service::Result;

/// What became of one planned action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// Nothing to do any more; says why.
    Skipped(String),
}

impl Berth {
    /// Stops a workspace idle since before `idle_since`.
    pub async fn stop_idle_workspace(
        &self,
        id: Uuid,
        idle_since: Millis,
        reason: &str,
    ) -> Result<Applied> {
        let _guard = self.core().lock_workspace(id).await?;
        let Some(ws) = self.core().store().workspace(id).await? else {
            return Ok(Applied::Skipped("workspace deleted".into()));
        };
        if ws.status != WorkspaceStatus::Running {
            return Ok(Applied::Skipped(format!("workspace is {}", ws.status)));
        }
        if ws.last_activity_at.unwrap_or(ws.created_at) > idle_since {
            return Ok(Applied::Skipped("used since the plan was made".into()));
        }
        self.stop_locked(ws, &format!("stopped by cleanup: {reason}"))
            .await?;
        Ok(Applied::Done)
    }

    /// An errored workspace whose container runs healthy is running again.
    pub async fn mark_error_running(&self, id: Uuid, reason: &str) -> Result<Applied> {
        let _guard = self.core().lock_workspace(id).await?;
        let Some(ws) = self.core().store().workspace(id).await? else {
            return Ok(Applied::Skipped("workspace deleted".into()));
        };
        if ws.status != WorkspaceStatus::Error {
            return Ok(Applied::Skipped(format!("workspace is {}", ws.status)));
        }
        let c = self
            .core()
            .engine_of(&ws)
            .await?
            .inspect_container(&ws.container_name())
            .await?;
        let Some(c) = c.filter(|c| c.running) else {
            return Ok(Applied::Skipped("container no longer runs".into()));
        };
        // A fresh start as far as the recovery budget is concerned.
        self.core()
            .transition_noting(
                &ws,
                Transition::Running {
                    container_id: Some(c.id),
                    host_port: c.host_port,
                    activity: false,
                },
                Note::new(
                    EventKind::Started,
                    format!("recovered by cleanup: {reason}"),
                ),
            )
            .await?;
        Ok(Applied::Done)
    }

    /// An errored workspace that cannot be recovered: its container is
    /// removed (never its volume) and it is marked stopped.
    pub async fn clean_errored_workspace(&self, id: Uuid, reason: &str) -> Result<Applied> {
        let _guard = self.core().lock_workspace(id).await?;
        let Some(ws) = self.core().store().workspace(id).await? else {
            return Ok(Applied::Skipped("workspace deleted".into()));
        };
        if ws.status != WorkspaceStatus::Error {
            return Ok(Applied::Skipped(format!("workspace is {}", ws.status)));
        }
        self.core()
            .engine_of(&ws)
            .await?
            .remove_container(&ws.container_name())
            .await?;
        let was = ws.status_reason.clone().unwrap_or_default();
        self.core()
            .transition_noting(
                &ws,
                Transition::ContainerRemoved,
                Note::new(
                    EventKind::Stopped,
                    format!("cleaned up by cleanup ({reason}); the error was: {was}"),
                ),
            )
            .await?;
        Ok(Applied::Done)
    }

    /// Records use of a workspace by its owner (API actions, proxy traffic).
    pub async fn touch(&self, user_id: Uuid, id: Uuid) {
        let Ok(Some(ws)) = self.core().store().workspace(id).await else {
            return;
        };
        if ws.owner_id != user_id {
            return;
        }
        if let Err(e) = self.core().store().touch_activity(id, now_millis()).await {
            tracing::warn!(workspace = %id, error = %e, "recording activity failed");
        }
    }
}

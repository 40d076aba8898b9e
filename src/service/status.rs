//! What a workspace is doing: its record reconciled with the engine, its
//! container, its health in one word, and its CPU and memory use.

use uuid::Uuid;

use super::{Berth, Result};
use crate::domain::{Health, User, Workspace};
use crate::engine::{ContainerState, HealthProbe, HealthReport};

/// `GET /api/workspaces/:id/status`: the record, reconciled, with the
/// engine's view of its container.
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub workspace: Workspace,
    pub container: Option<ContainerState>,
    /// CPU and memory use, while the container runs.
    pub resources: Option<ResourceUse>,
}

/// CPU and memory use of a running workspace.
#[derive(Debug, Clone)]
pub struct ResourceUse {
    /// Percent of one core (200 = two cores busy); `None` until two samples.
    pub cpu_percent: Option<f64>,
    /// MB, page cache excluded.
    pub memory_usage_mb: f64,
    pub memory_limit_mb: Option<f64>,
    /// `cgroup` or `engine`.
    pub source: &'static str,
}

/// `GET /api/workspaces/:id/health`: one word for the state of the check,
/// whatever the state of the container.
#[derive(Debug, Clone)]
pub struct HealthSummary {
    pub status: Health,
    pub failing_streak: i64,
    pub last_check: Option<HealthProbe>,
    pub message: String,
}

impl StatusReport {
    pub fn health(&self) -> Option<&HealthReport> {
        self.container.as_ref().and_then(|c| c.health.as_ref())
    }

    pub fn health_summary(&self) -> HealthSummary {
        let none = |status: Health, message: &str| HealthSummary {
            status,
            failing_streak: 0,
            last_check: None,
            message: message.to_string(),
        };
        let Some(c) = &self.container else {
            return none(
                Health::NoContainer,
                "the workspace has no container (never started, or removed)",
            );
        };
        if !c.running {
            return none(Health::Stopped, "the container is not running");
        }
        let Some(h) = &c.health else {
            return none(Health::NoCheck, "the container runs without a health check");
        };
        let status = match h.status {
            Health::Healthy | Health::Unhealthy => h.status,
            _ => Health::Starting,
        };
        let message = match status {
            Health::Healthy => "the health check passes".to_string(),
            Health::Unhealthy => format!(
                "the health check failed {} times in a row",
                h.failing_streak
            ),
            _ => "the health check has not passed yet".to_string(),
        };
        HealthSummary {
            status,
            failing_streak: h.failing_streak,
            last_check: h.log.last().cloned(),
            message,
        }
    }
}

impl Berth {
    /// The workspace reconciled with the engine, and its container.
    pub async fn workspace_status(&self, user: &User, id: Uuid) -> Result<StatusReport> {
        // Usually the record agrees with the engine and there is nothing to
        // write: answer without the workspace's lock, so readers of one
        // workspace do not queue behind each other (or behind a start).
        // Otherwise reconcile under the lock, from a fresh read.
        let ws = self.workspace(user, id).await?;
        let engine = self.engine_of(&ws).await?;
        let container = engine.inspect_container(&ws.container_name()).await?;
        let (workspace, container) = if self.agrees(&ws, container.as_ref()) {
            (ws, container)
        } else {
            let _guard = self.lock_workspace(id).await;
            let ws = self.workspace(user, id).await?;
            self.refresh(ws, true).await?
        };
        let resources = match container.as_ref().filter(|c| c.running) {
            Some(c) => {
                self.resource_use(&engine, workspace.id, &c.id, c.pid)
                    .await?
            }
            None => None,
        };
        Ok(StatusReport {
            workspace,
            container,
            resources,
        })
    }

    /// CPU and memory use of a running container.
    async fn resource_use(
        &self,
        engine: &crate::engine::Engine,
        workspace_id: Uuid,
        container_id: &str,
        pid: Option<u32>,
    ) -> Result<Option<ResourceUse>> {
        let Some((_, later, cpu)) = self
            .sample_pair(engine, workspace_id, container_id, pid)
            .await?
        else {
            return Ok(None);
        };
        let v = super::stats::view(workspace_id, container_id, cpu, &later);
        Ok(Some(ResourceUse {
            cpu_percent: v.cpu_percent,
            memory_usage_mb: v.memory_usage_mb,
            memory_limit_mb: v.memory_limit_mb,
            source: v.source,
        }))
    }
}

//! What a workspace is doing: its record reconciled with the engine, its
//! container, its health in one word, and its CPU and memory use.

use uuid::Uuid;

use super::Berth;
use crate::domain::{Health, User, Workspace};
use crate::engine::{ContainerState, HealthProbe, HealthReport};
use crate::service::Result;

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
    pub source: crate::domain::SampleSource,
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
    ///
    /// The container comes from the engine view (see `view`): no engine
    /// call while the node's events are followed. CPU and memory come from
    /// the cgroup files or the sampler's last sample, never from a wait.
    pub async fn workspace_status(&self, user: &User, id: Uuid) -> Result<StatusReport> {
        // Usually the record agrees with the engine and there is nothing to
        // write: answer without the workspace's lock, so readers of one
        // workspace do not queue behind each other (or behind a start).
        // Otherwise reconcile under the lock, from a fresh read.
        let ws = self.core().workspace(user, id).await?;
        let container = self
            .observe()
            .container_on(&ws.node, &ws.container_name())
            .await?;
        let (workspace, container) = if self.agrees(&ws, container.as_ref()) {
            (ws, container)
        } else {
            let _guard = self.core().lock_workspace(id).await?;
            let ws = self.core().workspace(user, id).await?;
            self.refresh(ws, true).await?
        };
        let resources = match container.as_ref().filter(|c| c.running) {
            Some(c) => {
                let engine = self.core().engine_of(&workspace).await?;
                self.observe()
                    .current_use(&engine, workspace.id, &c.id, c.pid)
                    .map(|(later, cpu)| {
                        let v =
                            crate::service::observe::stats::view(workspace.id, &c.id, cpu, &later);
                        ResourceUse {
                            cpu_percent: v.cpu_percent,
                            memory_usage_mb: v.memory_usage_mb,
                            memory_limit_mb: v.memory_limit_mb,
                            source: v.source,
                        }
                    })
            }
            None => None,
        };
        Ok(StatusReport {
            workspace,
            container,
            resources,
        })
    }
}

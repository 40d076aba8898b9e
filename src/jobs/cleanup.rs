//! The cleanup jobs' executors: take a snapshot (records from the store,
//! containers and volumes from the engine, now, the policy), hand it to the
//! pure planners in `domain::cleanup`, and carry out the plan, or in a dry
//! run only report it. Each action is re-checked under the workspace's lock
//! by the service, so a plan made a moment ago never undoes a person's act.

use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;

use super::JobName;
use super::Scheduler;
use crate::domain::cleanup::{
    plan_error_recovery, plan_inactive, plan_orphaned_containers, plan_orphaned_volumes,
    CleanupAction, CleanupPolicy,
};
use crate::domain::jobs::{ActionOutcome, JobDetail, JobOutcome, JobRun};
use crate::domain::now_millis;
use crate::engine::{Engine, LABEL_PROJECT_ID};
use crate::service::maintenance::Applied;
use crate::service::{Berth, Result};

/// What `POST /api/workspaces/cleanup` answers: the original API's four
/// counts, and every action with its resource, reason and outcome.
#[derive(Debug, Clone)]
pub struct CleanupReport {
    pub dry_run: bool,
    pub counts: BTreeMap<String, u64>,
    pub details: Vec<JobDetail>,
    pub runs: Vec<JobRun>,
}

impl CleanupReport {
    pub fn from_runs(dry_run: bool, runs: Vec<JobRun>) -> CleanupReport {
        let mut counts = BTreeMap::new();
        let mut details = Vec::new();
        for r in &runs {
            for (k, v) in &r.counts {
                *counts.entry(k.clone()).or_insert(0) += v;
            }
            details.extend(r.details.iter().cloned());
        }
        for j in JobName::CLEANUP {
            counts.entry(j.count_key().to_string()).or_insert(0);
        }
        CleanupReport {
            dry_run,
            counts,
            details,
            runs,
        }
    }

    pub fn failed(&self) -> bool {
        self.runs.iter().any(|r| r.outcome == JobOutcome::Failed)
    }
}

fn policy(berth: &Berth) -> CleanupPolicy {
    let c = &berth.core().config().cleanup;
    let h = |x: u64| i64::try_from(x.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
    CleanupPolicy {
        instance: berth.core().config().instance.clone(),
        inactive_after_ms: h(c.inactive_after_h),
        container_grace_ms: i64::try_from(c.container_grace_min.saturating_mul(60_000))
            .unwrap_or(i64::MAX),
        volume_retention_ms: h(c.volume_retention_days.saturating_mul(24)),
    }
}

fn describe(a: &CleanupAction) -> Option<(&'static str, String, &str)> {
    Some(match a {
        CleanupAction::StopWorkspace {
            workspace_id,
            reason,
        } => ("stop_workspace", workspace_id.to_string(), reason),
        CleanupAction::RemoveContainer { name, reason, .. } => {
            ("remove_container", name.clone(), reason)
        }
        CleanupAction::RemoveVolume { name, reason } => ("remove_volume", name.clone(), reason),
        CleanupAction::MarkRunning {
            workspace_id,
            reason,
        } => ("mark_running", workspace_id.to_string(), reason),
        CleanupAction::CleanUpErrored {
            workspace_id,
            reason,
            ..
        } => ("clean_up_errored", workspace_id.to_string(), reason),
        CleanupAction::StartVolumeClock { .. } | CleanupAction::ClearVolumeClock { .. } => {
            return None
        }
    })
}

impl Scheduler {
    /// Plans one job from a fresh snapshot and applies it unless `dry_run`.
    /// An error here (the snapshot could not be taken) fails the whole run;
    /// an action that fails is reported in its detail and the rest go on.
    pub(super) async fn execute_job(&self, job: JobName, dry_run: bool) -> Result<Vec<JobDetail>> {
        match job {
            JobName::Backups => return self.run_scheduled_backups(dry_run).await,
            JobName::VolumeSizes => return self.measure_volumes(dry_run).await,
            JobName::AuditRetention => return self.prune_audit(dry_run).await,
            _ => {}
        }
        // Each node on its own: a snapshot of its engine and of the
        // records placed there, a plan, carried out on that engine. A node
        // that does not answer is left alone (nothing of it is judged from
        // an absent answer); the local engine failing fails the run.
        let mut details = Vec::new();
        for node in self.berth.core().nodes().names().await? {
            let engine = match self.berth.core().engine_on(&node).await {
                Ok(e) => e,
                Err(e) if node == crate::domain::nodes::LOCAL => return Err(e),
                Err(e) => {
                    tracing::info!(%node, error = %e, job = job.as_str(), "cleanup skips a node that does not answer");
                    continue;
                }
            };
            match self.execute_on(job, dry_run, &node, &engine).await {
                Ok(d) => details.extend(d),
                Err(e) if node == crate::domain::nodes::LOCAL => return Err(e),
                Err(e) => {
                    tracing::warn!(%node, error = %e, job = job.as_str(), "cleanup on a node failed")
                }
            }
        }
        Ok(details)
    }

    async fn execute_on(
        &self,
        job: JobName,
        dry_run: bool,
        node: &str,
        engine: &Engine,
    ) -> Result<Vec<JobDetail>> {
        let now = now_millis();
        let policy = policy(&self.berth);
        let containers = engine.list_containers_seen().await?;
        use crate::domain::WorkspaceStatus;
        // Each planner is fed only the records it decides on, by indexed
        // queries: not every workspace of every node.
        let store = self.berth.core().store();
        // Which project each managed volume belongs to (read once: the
        // volume planner and the executor both need it).
        let mut volume_projects = BTreeMap::new();
        let plan = match job {
            JobName::Inactive => {
                self.probe_activity(node).await?;
                let ws = store
                    .workspaces_on(node, Some(WorkspaceStatus::Running))
                    .await?;
                plan_inactive(&ws, &containers, now, &policy)
            }
            JobName::OrphanedContainers => {
                // Ours are the containers of workspaces placed here: one left
                // on a node its workspace moved or was recovered away from
                // (its node was lost then) is an orphan here.
                let ids: HashSet<Uuid> = store.workspace_ids_on(node).await?.into_iter().collect();
                plan_orphaned_containers(&ids, &containers, now, &policy)
            }
            JobName::OrphanedVolumes => {
                let projects = self.berth.core().store().projects_seen().await?;
                let volumes = engine.list_managed_volumes().await?;
                volume_projects = volumes
                    .iter()
                    .filter_map(|v| {
                        let p = v.labels.get(LABEL_PROJECT_ID)?;
                        Some((v.name.clone(), Uuid::parse_str(p).ok()?))
                    })
                    .collect();
                let clocks = self.berth.core().store().volume_clocks().await?;
                plan_orphaned_volumes(&projects, &volumes, &containers, &clocks, now, &policy)
            }
            JobName::ErrorRecovery => {
                let ws = store
                    .workspaces_on(node, Some(WorkspaceStatus::Error))
                    .await?;
                plan_error_recovery(&ws, &containers)
            }
            JobName::Backups | JobName::VolumeSizes | JobName::AuditRetention => {
                unreachable!("handled above")
            }
        };
        let mut details = Vec::new();
        for action in plan {
            let described = describe(&action);
            if dry_run {
                if let Some((kind, resource, reason)) = described {
                    details.push(JobDetail {
                        job: job.as_str().into(),
                        action: kind.into(),
                        resource,
                        reason: reason.to_string(),
                        outcome: ActionOutcome::Planned,
                    });
                }
                continue;
            }
            let result = self
                .apply(engine, &action, now, &policy, &volume_projects)
                .await;
            if let Some((kind, resource, reason)) = described {
                let outcome = match result {
                    Ok(Applied::Done) => ActionOutcome::Done,
                    Ok(Applied::Skipped(why)) => ActionOutcome::Skipped(why.to_string()),
                    Err(e) => ActionOutcome::failed(e),
                };
                details.push(JobDetail {
                    job: job.as_str().into(),
                    action: kind.into(),
                    resource,
                    reason: reason.to_string(),
                    outcome,
                });
            } else if let Err(e) = result {
                tracing::warn!(job = job.as_str(), error = %e, "cleanup bookkeeping failed");
            }
        }
        Ok(details)
    }

    /// Asks running workspaces whose type has an activity probe when they
    /// were last used (on their published port at their node's address),
    /// and records the answer. A probe that fails says nothing: the
    /// workspace keeps its last activity.
    async fn probe_activity(&self, node: &str) -> Result<()> {
        let host = self.berth.core().nodes().address(node).await?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(2))
            .build()
            .map_err(|e| crate::service::ServiceError::Internal(e.to_string()))?;
        let running = self
            .berth
            .core()
            .store()
            .workspaces_on(node, Some(crate::domain::WorkspaceStatus::Running))
            .await?;
        for ws in running {
            let Some(port) = ws.host_port else {
                continue;
            };
            let Some((probe, keep_prefix)) = self
                .berth
                .core()
                .config()
                .types
                .get(&ws.type_name)
                .and_then(|t| t.activity_probe.clone().map(|p| (p, t.proxy.keep_prefix)))
            else {
                continue;
            };
            // An app served under its base path answers there.
            let path = crate::domain::apps::upstream_path(
                true,
                keep_prefix,
                &crate::service::apps::AppUrls::proxy_prefix(ws.id),
                &probe.path,
            );
            let url = format!("http://{host}:{port}{path}");
            let Ok(resp) = client.get(&url).send().await else {
                continue;
            };
            if !resp.status().is_success() {
                continue;
            }
            let Ok(body) = resp.json::<serde_json::Value>().await else {
                continue;
            };
            if let Some(at) = probe.read(&body) {
                // Never in the future: a workspace's clock may run ahead.
                self.berth
                    .core()
                    .store()
                    .touch_activity(ws.id, at.min(now_millis()))
                    .await?;
            }
        }
        Ok(())
    }

    async fn apply(
        &self,
        engine: &Engine,
        action: &CleanupAction,
        now: i64,
        policy: &CleanupPolicy,
        volume_projects: &BTreeMap<String, Uuid>,
    ) -> Result<Applied> {
        match action {
            CleanupAction::StopWorkspace {
                workspace_id,
                reason,
            } => {
                let idle_since = now - policy.inactive_after_ms;
                self.berth
                    .stop_idle_workspace(*workspace_id, idle_since, reason)
                    .await
            }
            CleanupAction::RemoveContainer { container_id, .. } => {
                engine.remove_container(container_id).await?;
                Ok(Applied::Done)
            }
            CleanupAction::RemoveVolume { name, .. } => {
                engine.remove_volume(name).await?;
                self.berth.core().store().clear_volume_clock(name).await?;
                if let Some(pid) = volume_projects.get(name) {
                    // The record was only kept for the retained volume.
                    if self.berth.core().store().project(*pid).await?.is_none() {
                        self.berth.core().store().purge_project(*pid).await?;
                    }
                }
                Ok(Applied::Done)
            }
            CleanupAction::StartVolumeClock { name } => {
                self.berth
                    .core()
                    .store()
                    .start_volume_clock(name, now)
                    .await?;
                Ok(Applied::Done)
            }
            CleanupAction::ClearVolumeClock { name } => {
                self.berth.core().store().clear_volume_clock(name).await?;
                Ok(Applied::Done)
            }
            CleanupAction::MarkRunning {
                workspace_id,
                reason,
            } => self.berth.mark_error_running(*workspace_id, reason).await,
            CleanupAction::CleanUpErrored {
                workspace_id,
                reason,
                ..
            } => {
                self.berth
                    .clean_errored_workspace(*workspace_id, reason)
                    .await
            }
        }
    }
}

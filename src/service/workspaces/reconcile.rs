//! Bringing the database into agreement with the engine (`docs/original-api.md`
//! §3 "Reconcile"), and recovering workspaces that failed (§3 "Health").
//!
//! [`observe`] is the pure decision: from what the record says and what the
//! engine shows, either the status the record should take, or a failure of a
//! workspace that should be running. Failures go to the recovery planner
//! (`domain::recovery::next_recovery_step`); [`Berth::apply_failure`]
//! carries out its step. The same path serves the event watcher, status
//! reads and the reconcile at startup, so a failure is handled once
//! whichever notices it first.

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

use super::Berth;
use crate::domain::recovery::{next_recovery_step, Failure, RecoveryStep};
use crate::domain::transition::{Note, Transition};
use crate::domain::{now_millis, EventKind, Health, Workspace, WorkspaceStatus};
use crate::engine::ContainerState;
use crate::service::Result;
use crate::store::{Notice, RecoveryDue};

/// The parts of a container's state that decide a workspace's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub running: bool,
    pub unhealthy: bool,
    pub exit_code: i64,
    pub oom_killed: bool,
}

impl From<&ContainerState> for Seen {
    fn from(c: &ContainerState) -> Self {
        Seen {
            running: c.running,
            // Unhealthy means probes failed. The engine also says
            // "unhealthy", with no failed probe, for a paused container
            // (Berth pauses one for a consistent backup) and keeps saying
            // it after the unpause until the next probe: not a failure.
            unhealthy: !c.paused
                && c.health
                    .as_ref()
                    .is_some_and(|h| h.status == Health::Unhealthy && h.failing_streak > 0),
            exit_code: c.exit_code,
            oom_killed: c.oom_killed,
        }
    }
}

/// What the record should become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to change.
    Keep,
    /// Take this status and reason.
    Set(WorkspaceStatus, Option<String>),
    /// A workspace that should be running has failed.
    Failed(Failure),
}

/// Decides what a workspace's record should say given the engine's view
/// (`seen`: `None` when there is no container). `recovering`: a restart is
/// already scheduled, so nothing is to be decided now.
///
/// Running and Starting mean "should be running": a container found down or
/// unhealthy then is a failure. A container that vanished was removed on
/// purpose (by someone), so that is a stop, not a failure. Archived and
/// error are left for a person or the cleanup job to change.
pub fn observe(
    status: WorkspaceStatus,
    reason: Option<&str>,
    seen: Option<&Seen>,
    recovering: bool,
) -> Verdict {
    use WorkspaceStatus::*;
    let same = |s: WorkspaceStatus, r: Option<String>| {
        if s == status && r.as_deref() == reason {
            Verdict::Keep
        } else {
            Verdict::Set(s, r)
        }
    };
    if recovering || matches!(status, Archived | Error) {
        return Verdict::Keep;
    }
    match (status, seen) {
        (Running, Some(s)) if s.running && s.unhealthy => Verdict::Failed(Failure::Unhealthy),
        (_, Some(s)) if s.running => same(Running, None),
        (Stopped, _) => Verdict::Keep,
        (Stopping, _) => same(Stopped, None),
        (Running | Starting, None) => same(Stopped, Some("container no longer exists".into())),
        (Running | Starting, Some(s)) => Verdict::Failed(if s.oom_killed {
            Failure::OomKilled
        } else {
            Failure::Exited(s.exit_code)
        }),
        (Archived | Error, _) => Verdict::Keep,
    }
}

/// How a failure reads in a record when nothing restarts it.
fn failure_reason(f: &Failure) -> String {
    match f {
        Failure::Unhealthy => "health check failing".into(),
        Failure::OomKilled => "container was OOM killed".into(),
        Failure::Exited(code) => format!("container exited with code {code}"),
    }
}

impl Berth {
    /// Whether the record already agrees with what the engine shows, so that
    /// [`Self::refresh`] would neither save nor hand a failure to recovery.
    /// A reader that sees agreement may answer without the workspace's lock.
    /// (A workspace waiting for a recovery restart never agrees here: its
    /// restart is in the database, read under the lock by `refresh`.)
    pub(super) fn agrees(&self, ws: &Workspace, container: Option<&ContainerState>) -> bool {
        let seen = container.map(Seen::from);
        let verdict = observe(ws.status, ws.status_reason.as_deref(), seen.as_ref(), false);
        let container_id = container.map(|c| c.id.as_str());
        let host_port = container.filter(|c| c.running).and_then(|c| c.host_port);
        matches!(verdict, Verdict::Keep)
            && container_id == ws.container_id.as_deref()
            && host_port == ws.host_port
    }

    /// Refreshes one workspace from the engine and saves what changed.
    /// With `recover`, a failure is handed to recovery; without (a user's
    /// own start/stop is about to decide), it is only recorded. The caller
    /// holds the workspace's lock.
    pub(super) async fn refresh(
        &self,
        ws: Workspace,
        recover: bool,
    ) -> Result<(Workspace, Option<ContainerState>)> {
        let container = self
            .observe()
            .inspect_on(&ws.node, &ws.container_name())
            .await?;
        let seen = container.as_ref().map(Seen::from);
        let recovering = self.core().store().recovery_due(ws.id).await?.is_some();
        let verdict = observe(
            ws.status,
            ws.status_reason.as_deref(),
            seen.as_ref(),
            recovering,
        );
        let container_id = container.as_ref().map(|c| c.id.clone());
        let host_port = container
            .as_ref()
            .filter(|c| c.running)
            .and_then(|c| c.host_port);
        // What changed, saved at once below (or before recovery decides).
        let mut steps = Vec::new();
        if container_id != ws.container_id || host_port != ws.host_port {
            steps.push(Transition::Seen {
                container_id,
                host_port,
            });
        }
        match verdict {
            Verdict::Keep => {}
            Verdict::Set(status, reason) => {
                tracing::info!(workspace = %ws.id, from = %ws.status, to = %status, ?reason, "reconciled with engine");
                steps.push(Transition::Observed { status, reason });
            }
            Verdict::Failed(failure) => {
                if recover {
                    // Saved first: recovery decides from what the engine has.
                    let ws = self.core().steps(&ws, steps, None).await?;
                    let ws = self.apply_failure(ws, failure).await?;
                    let container = self
                        .observe()
                        .inspect_on(&ws.node, &ws.container_name())
                        .await?;
                    return Ok((ws, container));
                }
                if failure != Failure::Unhealthy {
                    let reason = Some(failure_reason(&failure));
                    steps.push(Transition::Stopped { reason });
                }
            }
        }
        let ws = self.core().steps(&ws, steps, None).await?;
        Ok((ws, container))
    }

    /// Carries out the recovery step for a failure. The caller holds the
    /// workspace's lock.
    async fn apply_failure(&self, ws: Workspace, failure: Failure) -> Result<Workspace> {
        let policy = self.core().config().recovery.clone();
        let what = failure_reason(&failure);
        if !policy.enabled {
            let note = Note::new(EventKind::Failed, what.clone());
            if failure == Failure::Unhealthy {
                self.core().note(&ws, note).await?;
                return Ok(ws);
            }
            return self
                .core()
                .transition_noting(&ws, Transition::Stopped { reason: Some(what) }, note)
                .await;
        }
        let now = now_millis();
        let window_ms = i64::try_from(policy.window_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let restarts = self
            .core()
            .store()
            .event_times(
                ws.id,
                EventKind::RecoveryRestart,
                now.saturating_sub(window_ms),
            )
            .await?;
        let since = self
            .core()
            .store()
            .last_event_time(ws.id, EventKind::Started)
            .await?;
        let kind = match failure {
            Failure::Unhealthy => "unhealthy",
            Failure::OomKilled => "oom",
            Failure::Exited(_) => "exited",
        };
        match next_recovery_step(&failure, &restarts, since, now, &policy) {
            RecoveryStep::GiveUp { reason } => {
                metrics::counter!("berth_recovery_gave_up_total", "reason" => kind).increment(1);
                // Keep the container (its logs say why) but stop it, so an
                // unhealthy one does not keep burning resources.
                if let Some(cid) = &ws.container_id {
                    self.core()
                        .engine_of(&ws)
                        .await?
                        .stop_container(cid, self.core().config().stop_timeout_s)
                        .await?;
                }
                let note = Note::new(EventKind::RecoveryGaveUp, reason.clone());
                self.core()
                    .transition_noting(&ws, Transition::Failed { reason }, note)
                    .await
            }
            RecoveryStep::Restart {
                after_ms: 0,
                attempt,
            } => self.recovery_restart(ws, &what, attempt).await,
            RecoveryStep::Restart { after_ms, attempt } => {
                metrics::counter!("berth_recovery_restarts_total", "reason" => kind).increment(1);
                let secs = after_ms as f64 / 1000.0;
                let ws = self
                    .core()
                    .transition_noting(
                        &ws,
                        Transition::Starting {
                            reason: Some(format!(
                                "recovering: {what}; restart {attempt} in {secs} s"
                            )),
                        },
                        Note::new(
                            EventKind::RecoveryScheduled,
                            format!("{what}; restart {attempt} in {secs} s"),
                        ),
                    )
                    .await?;
                // Kept in the database: whichever replica's timer finds it
                // due first restarts it, and it survives this one.
                self.core()
                    .store()
                    .schedule_recovery(&RecoveryDue {
                        workspace_id: ws.id,
                        due_at: now_millis().saturating_add(after_ms as i64),
                        attempt,
                        failure: what,
                        scheduled_by: self.core().replicas().id(),
                    })
                    .await?;
                self.inner.recovery_wake.notify_one();
                self.core().replicas().notify(Notice::Recovery).await;
                Ok(ws)
            }
        }
    }

    /// A restart whose backoff has passed, by whichever replica takes the
    /// workspace's lock first: the others find it done.
    async fn scheduled_restart(&self, id: Uuid) -> Result<()> {
        let _guard = self.core().lock_workspace(id).await?;
        let Some(due) = self.core().store().recovery_due(id).await? else {
            return Ok(());
        };
        if due.due_at > now_millis() {
            return Ok(());
        }
        self.core().store().clear_recovery(id).await?;
        let Some(ws) = self.core().store().workspace(id).await? else {
            return Ok(());
        };
        // A person stopped, archived or deleted it meanwhile: their call.
        if ws.status != WorkspaceStatus::Starting {
            return Ok(());
        }
        self.recovery_restart(ws, &due.failure, due.attempt).await?;
        Ok(())
    }

    /// Starts this replica's recovery timer: it sleeps until the next
    /// scheduled restart (any replica's), woken early when one is
    /// scheduled here or, by a notice, on another replica; every restart
    /// due is tried, and the first replica to take its lock does it. Runs
    /// until aborted.
    pub fn spawn_recovery_timer(&self) -> tokio::task::JoinHandle<()> {
        let berth = self.clone();
        let mut notices = self.core().replicas().subscribe();
        tokio::spawn(async move {
            // At most this long between looks, so a lost notice costs at
            // most this much delay.
            const LOOK_EVERY: Duration = Duration::from_secs(5);
            loop {
                let wait = match berth.core().store().next_recovery_due().await {
                    Ok(Some(due)) => {
                        let ms = due.saturating_sub(now_millis()).max(0) as u64;
                        Duration::from_millis(ms).min(LOOK_EVERY)
                    }
                    Ok(None) => LOOK_EVERY,
                    Err(e) => {
                        crate::metrics::loop_failed("recovery", "store");
                        tracing::warn!(error = %e, "reading the scheduled recoveries failed");
                        LOOK_EVERY
                    }
                };
                if !wait.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = berth.inner.recovery_wake.notified() => {}
                        n = notices.recv() => {
                            if matches!(n, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                                notices = berth.core().replicas().subscribe();
                            }
                        }
                    }
                }
                let due = match berth.core().store().recoveries_due(now_millis()).await {
                    Ok(due) => due,
                    Err(e) => {
                        crate::metrics::loop_failed("recovery", "store");
                        tracing::warn!(error = %e, "reading the scheduled recoveries failed");
                        tokio::time::sleep(LOOK_EVERY).await;
                        continue;
                    }
                };
                for id in due {
                    if let Err(e) = berth.scheduled_restart(id).await {
                        crate::metrics::loop_failed("recovery", e.kind());
                        tracing::warn!(workspace = %id, error = %e, "scheduled recovery failed");
                    }
                }
            }
        })
    }

    async fn recovery_restart(&self, ws: Workspace, what: &str, attempt: u32) -> Result<Workspace> {
        // Recorded before the attempt: an attempt that never finishes
        // still counts against the recovery budget.
        self.core()
            .note(
                &ws,
                Note::new(
                    EventKind::RecoveryRestart,
                    format!("restart {attempt} after: {what}"),
                ),
            )
            .await?;
        let engine = self.core().engine_of(&ws).await?;
        let container = self
            .observe()
            .inspect_on(&ws.node, &ws.container_name())
            .await?;
        let result = match &container {
            Some(c) if c.running => engine
                .restart_container(&c.id, self.core().config().stop_timeout_s)
                .await
                .map_err(Into::into),
            Some(c) => engine.start_container(&c.id).await.map_err(Into::into),
            None => {
                // Recreate from the spec (the project may be gone).
                match ws.project_id {
                    Some(pid) => match self.core().store().project(pid).await? {
                        // Recreated where it was: a project that moved
                        // takes its workspaces along at their next start.
                        Some(p) if p.node == ws.node => {
                            let spec = self.types().container_spec(&ws, &p).await?;
                            match engine.create_container(&spec).await {
                                Ok(id) => engine.start_container(&id).await.map_err(Into::into),
                                Err(e) => Err(e.into()),
                            }
                        }
                        Some(p) => Err(crate::service::ServiceError::Conflict(format!(
                            "the project moved to node {}; start the workspace there",
                            p.node
                        ))),
                        None => Err(crate::service::ServiceError::Conflict(
                            "project no longer exists".into(),
                        )),
                    },
                    None => Err(crate::service::ServiceError::Conflict(
                        "workspace has no project".into(),
                    )),
                }
            }
        };
        let state = self
            .observe()
            .inspect_on(&ws.node, &ws.container_name())
            .await?;
        let host_port = state
            .as_ref()
            .filter(|s| s.running)
            .and_then(|s| s.host_port);
        let (step, note) = match result {
            Ok(()) => (
                Transition::Running {
                    container_id: None,
                    host_port,
                    activity: false,
                },
                None,
            ),
            Err(e) => {
                let reason = format!("recovery restart failed: {e}");
                let note = Note::new(EventKind::RecoveryGaveUp, reason.clone());
                (Transition::Failed { reason }, Some(note))
            }
        };
        // Then the container as the engine has it now (made anew, or gone).
        let seen = Transition::Seen {
            container_id: state.as_ref().map(|s| s.id.clone()),
            host_port,
        };
        self.core().steps(&ws, [step, seen], note).await
    }

    /// Re-checks one workspace against the engine, recovering it if it
    /// failed. What the event watcher calls for every event.
    pub async fn check_workspace(&self, id: Uuid) -> Result<()> {
        let _guard = self.core().lock_workspace(id).await?;
        if let Some(ws) = self.core().store().workspace(id).await? {
            self.refresh(ws, true).await?;
        }
        Ok(())
    }

    /// Reconciles every workspace with the engine (at startup and after the
    /// engine comes back), recovering those that should run and do not.
    /// Returns how many records changed. One workspace failing does not stop
    /// the rest.
    pub async fn reconcile_all(&self) -> Result<usize> {
        self.reconcile_where(None, None).await
    }

    /// As [`Berth::reconcile_all`], for the workspaces on one node (what
    /// the supervisor does when the heartbeat hears a node again): its
    /// containers listed once, the view refreshed (but not claimed as
    /// synced: only the node's watcher, which follows its events, does
    /// that), and only the records that disagree looked at under their lock.
    pub async fn reconcile_node(&self, node: &str) -> Result<usize> {
        let listed = self.observe().view().resync_view(node, false).await?;
        self.reconcile_where(Some(node), Some(listed)).await
    }

    /// As [`Berth::reconcile_node`], by the node's watcher, which follows
    /// the node's events from now: the view is synced after.
    pub(super) async fn reconcile_followed(&self, node: &str) -> Result<usize> {
        let listed = self.observe().view().resync_view(node, true).await?;
        self.reconcile_where(Some(node), Some(listed)).await
    }

    async fn reconcile_where(
        &self,
        node: Option<&str>,
        listed: Option<HashMap<String, ContainerState>>,
    ) -> Result<usize> {
        let mut changed = 0;
        for ws in self.core().store().workspaces(None).await? {
            if node.is_some_and(|n| n != ws.node) {
                continue;
            }
            // Agreeing with a listing just made: nothing to do, no lock.
            if listed
                .as_ref()
                .is_some_and(|l| self.agrees(&ws, l.get(&ws.container_name())))
            {
                continue;
            }
            let _guard = self.core().lock_workspace(ws.id).await?;
            let Some(ws) = self.core().store().workspace(ws.id).await? else {
                continue;
            };
            let before = (ws.status, ws.status_reason.clone(), ws.host_port);
            match self.refresh(ws.clone(), true).await {
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
            unhealthy: false,
            exit_code: code,
            oom_killed: oom,
        }
    }

    #[test]
    fn a_paused_container_is_not_judged_by_its_health() {
        // What the engine answers for a paused container with a check.
        let mut c = ContainerState {
            id: "c".into(),
            name: "berth-ws-x".into(),
            image: "i".into(),
            status: "paused".into(),
            running: true,
            paused: true,
            exit_code: 0,
            oom_killed: false,
            error: None,
            started_at: None,
            finished_at: None,
            restart_count: 0,
            pid: Some(1),
            health: Some(crate::engine::HealthReport {
                status: Health::Unhealthy,
                failing_streak: 0,
                log: vec![],
            }),
            host_port: Some(1),
            labels: Default::default(),
        };
        let seen = Seen::from(&c);
        assert!(!seen.unhealthy);
        assert_eq!(observe(Running, None, Some(&seen), false), Verdict::Keep);
        // Unpaused: still "unhealthy" until the next probe, none failed.
        c.paused = false;
        c.status = "running".into();
        assert_eq!(
            observe(Running, None, Some(&Seen::from(&c)), false),
            Verdict::Keep
        );
        // Probes failed: a failure.
        c.health.as_mut().unwrap().failing_streak = 3;
        assert_eq!(
            observe(Running, None, Some(&Seen::from(&c)), false),
            Verdict::Failed(Failure::Unhealthy)
        );
    }

    #[test]
    fn a_running_container_means_running() {
        for st in [Stopped, Starting, Running, Stopping] {
            assert_eq!(
                observe(st, Some("old"), Some(&seen(true, 0, false)), false),
                Verdict::Set(Running, None)
            );
        }
        assert_eq!(
            observe(Running, None, Some(&seen(true, 0, false)), false),
            Verdict::Keep
        );
    }

    #[test]
    fn an_unhealthy_running_workspace_has_failed() {
        let s = Seen {
            unhealthy: true,
            ..seen(true, 0, false)
        };
        assert_eq!(
            observe(Running, None, Some(&s), false),
            Verdict::Failed(Failure::Unhealthy)
        );
        // Still starting (or being recovered): not judged yet.
        assert_eq!(observe(Running, None, Some(&s), true), Verdict::Keep);
    }

    #[test]
    fn a_vanished_container_is_a_stop_not_a_failure() {
        assert_eq!(
            observe(Running, None, None, false),
            Verdict::Set(Stopped, Some("container no longer exists".into()))
        );
        assert_eq!(
            observe(Starting, None, None, false),
            Verdict::Set(Stopped, Some("container no longer exists".into()))
        );
        assert_eq!(
            observe(Stopping, None, None, false),
            Verdict::Set(Stopped, None)
        );
        assert_eq!(observe(Stopped, None, None, false), Verdict::Keep);
    }

    #[test]
    fn a_down_container_that_should_run_has_failed() {
        assert_eq!(
            observe(Running, None, Some(&seen(false, 137, true)), false),
            Verdict::Failed(Failure::OomKilled)
        );
        assert_eq!(
            observe(Running, None, Some(&seen(false, 2, false)), false),
            Verdict::Failed(Failure::Exited(2))
        );
        assert_eq!(
            observe(Starting, None, Some(&seen(false, 0, false)), false),
            Verdict::Failed(Failure::Exited(0))
        );
        // A stop we asked for is no failure.
        assert_eq!(
            observe(Stopping, None, Some(&seen(false, 0, false)), false),
            Verdict::Set(Stopped, None)
        );
        // Nor is a stopped workspace whose container is down.
        assert_eq!(
            observe(Stopped, Some("x"), Some(&seen(false, 1, false)), false),
            Verdict::Keep
        );
        // While a restart is scheduled nothing is decided.
        assert_eq!(
            observe(Starting, None, Some(&seen(false, 1, false)), true),
            Verdict::Keep
        );
    }

    #[test]
    fn archived_and_error_are_left_alone() {
        for s in [
            None,
            Some(seen(true, 0, false)),
            Some(seen(false, 1, false)),
        ] {
            assert_eq!(observe(Archived, None, s.as_ref(), false), Verdict::Keep);
            assert_eq!(
                observe(Error, Some("boom"), s.as_ref(), false),
                Verdict::Keep
            );
        }
    }
}

//! Live resource figures: one workspace now, all of a user's running
//! workspaces in one call (the dashboard's hot path), and a short history
//! per running workspace kept by a background sampler.
//!
//! Counters come from the engine adapter (`engine::resources`: cgroup files
//! when visible, else the engine's stats API). CPU % needs two samples; the
//! sampler keeps the previous one per container, so a read is one sample,
//! not a two-second engine round-trip.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tokio::task::JoinHandle;
use uuid::Uuid;

use super::super::{Result, ServiceError};
use super::Observe;
use crate::domain::{now_millis, Millis, User};
use crate::engine::{cpu_percent, ContainerState, Engine, NetIo, ResourceSample};

/// A previous sample younger than this gives CPU % directly.
const FRESH: Duration = Duration::from_secs(60);
/// Shorter gaps than this make CPU % too noisy to report.
const MIN_GAP: Duration = Duration::from_millis(50);
/// A sample younger than this is shown again rather than read anew (see
/// `current_use`).
const REUSE: Duration = Duration::from_millis(500);
/// When no recent sample exists, wait this long for a second one.
const SECOND_SAMPLE: Duration = Duration::from_millis(200);

/// One point of a workspace's resource history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPoint {
    pub at: Millis,
    pub cpu_percent: f64,
    pub memory_mb: f64,
    /// Bytes received and sent on all interfaces since the container
    /// started (a chart draws the rate between points).
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Figures for one running workspace, in the original API's units.
#[derive(Debug, Clone)]
pub struct StatsView {
    pub workspace_id: Uuid,
    pub container_id: String,
    /// Percent of one core; `None` without two samples.
    pub cpu_percent: Option<f64>,
    pub cpu_usage_ns: u64,
    pub system_usage_ns: Option<u64>,
    pub online_cpus: u32,
    pub memory_usage_mb: f64,
    pub memory_limit_mb: Option<f64>,
    pub memory_percent: Option<f64>,
    pub memory_cache_mb: f64,
    pub networks: BTreeMap<String, NetIo>,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: Option<u64>,
    pub source: crate::domain::SampleSource,
    pub at: Millis,
}

/// What the sampler knows of one running container.
#[derive(Debug, Default)]
pub(super) struct Tracked {
    workspace_id: Option<Uuid>,
    /// The node it runs on ("" until the sampler has seen it).
    node: String,
    pid: Option<u32>,
    last: Option<ResourceSample>,
    /// CPU % as of `last`, for reads that come too soon after it.
    last_cpu: Option<f64>,
    history: VecDeque<HistoryPoint>,
}

/// What a new sample can be compared with.
enum Previous {
    /// A sample old enough for a CPU % of its own.
    Sample(ResourceSample),
    /// A sample taken moments ago: its CPU % still stands.
    Cpu(f64),
    Nothing,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn mb(bytes: u64) -> f64 {
    round2(bytes as f64 / 1_048_576.0)
}

/// The figures from a sample, with the CPU % computed against an earlier one.
pub fn view(
    workspace_id: Uuid,
    container_id: &str,
    cpu_percent: Option<f64>,
    later: &ResourceSample,
) -> StatsView {
    let limit = later.memory_limit;
    StatsView {
        workspace_id,
        container_id: container_id.to_string(),
        cpu_percent,
        cpu_usage_ns: later.cpu_ns,
        system_usage_ns: later.system_ns,
        online_cpus: later.online_cpus,
        memory_usage_mb: mb(later.memory_usage),
        memory_limit_mb: limit.map(mb),
        memory_percent: limit
            .filter(|&l| l > 0)
            .map(|l| round2(later.memory_usage as f64 / l as f64 * 100.0)),
        memory_cache_mb: mb(later.memory_cache),
        networks: later.networks.clone(),
        blk_read: later.blk_read,
        blk_write: later.blk_write,
        pids: later.pids,
        source: later.source,
        at: now_millis(),
    }
}

impl Observe {
    /// Asks `node`'s engine about the container `name`, notes the answer
    /// in the view, and takes a first sample of a container it sees
    /// running anew. Returns the state and whether it changed for a
    /// reader: what the watcher acts on.
    pub(crate) async fn inspect_noted(
        &self,
        node: &str,
        name: &str,
    ) -> Result<(Option<ContainerState>, bool)> {
        let (state, changed) = self.view().inspect_noted(node, name).await?;
        if let Some(s) = state.as_ref().filter(|_| changed) {
            let engine = self.core().engine_on(node).await?;
            self.seed_sample(&engine, s);
        }
        Ok((state, changed))
    }

    /// As [`Observe::inspect_noted`], the state only: what lifecycle
    /// operations and reconcile use, which must see the engine itself.
    pub(crate) async fn inspect_on(
        &self,
        node: &str,
        name: &str,
    ) -> Result<Option<ContainerState>> {
        Ok(self.inspect_noted(node, name).await?.0)
    }

    /// The container `name` on `node` from the view when it is synced, else
    /// from the engine: what readers (status, health, the proxy, stats)
    /// use.
    pub(crate) async fn container_on(
        &self,
        node: &str,
        name: &str,
    ) -> Result<Option<ContainerState>> {
        match self.view().cached(node, name).await? {
            Some(state) => Ok(state),
            None => self.inspect_on(node, name).await,
        }
    }

    fn previous(&self, container_id: &str, now: &ResourceSample) -> Previous {
        let tracked = self.inner.tracked.lock().expect("tracked poisoned");
        let Some(t) = tracked.get(container_id) else {
            return Previous::Nothing;
        };
        let Some(p) = &t.last else {
            return Previous::Nothing;
        };
        let age = now.at.saturating_duration_since(p.at);
        if (MIN_GAP..FRESH).contains(&age) {
            Previous::Sample(p.clone())
        } else if age < MIN_GAP {
            t.last_cpu.map(Previous::Cpu).unwrap_or(Previous::Nothing)
        } else {
            Previous::Nothing
        }
    }

    fn remember(
        &self,
        container_id: &str,
        workspace_id: Uuid,
        pid: Option<u32>,
        s: ResourceSample,
        cpu: Option<f64>,
    ) {
        let mut tracked = self.inner.tracked.lock().expect("tracked poisoned");
        let t = tracked.entry(container_id.to_string()).or_default();
        t.workspace_id = Some(workspace_id);
        t.pid = pid.or(t.pid);
        t.last = Some(s);
        t.last_cpu = cpu;
    }

    fn known_pid(&self, container_id: &str) -> Option<u32> {
        let tracked = self.inner.tracked.lock().expect("tracked poisoned");
        tracked.get(container_id).and_then(|t| t.pid)
    }

    /// A sample now, the one it was compared with, and the CPU %: against
    /// the last sample kept when recent, else a second one a moment later.
    pub(crate) async fn sample_pair(
        &self,
        engine: &Engine,
        workspace_id: Uuid,
        container_id: &str,
        pid: Option<u32>,
    ) -> Result<Option<(Option<ResourceSample>, ResourceSample, Option<f64>)>> {
        let Some(first) = engine.sample_resources(container_id, pid).await? else {
            return Ok(None);
        };
        let pair = match self.previous(container_id, &first) {
            Previous::Sample(p) => (Some(p), first),
            Previous::Cpu(c) => return Ok(Some((None, first, Some(c)))),
            Previous::Nothing => {
                tokio::time::sleep(SECOND_SAMPLE).await;
                match engine.sample_resources(container_id, pid).await? {
                    Some(second) => (Some(first), second),
                    None => return Ok(None),
                }
            }
        };
        let cpu = pair
            .0
            .as_ref()
            .and_then(|e| cpu_percent(e, &pair.1))
            .map(round2);
        self.remember(container_id, workspace_id, pid, pair.1.clone(), cpu);
        Ok(Some((pair.0, pair.1, cpu)))
    }

    /// CPU and memory of a running container without asking the engine
    /// (what a status read shows): the cgroup files where this process
    /// sees them, with CPU % against the last sample kept; else the
    /// sampler's last sample of it, if it is recent. CPU % is `None` until
    /// there are two samples (see [`Berth::seed_sample`]).
    pub(crate) fn current_use(
        &self,
        engine: &Engine,
        workspace_id: Uuid,
        container_id: &str,
        pid: Option<u32>,
    ) -> Option<(ResourceSample, Option<f64>)> {
        // A sample of the last moment stands: reading and the kernel's
        // formatting of a container's cgroup files cost more than the rest
        // of a status request, so under load they are read about once per
        // REUSE per container, not once per request.
        {
            let tracked = self.inner.tracked.lock().expect("tracked poisoned");
            if let Some(t) = tracked.get(container_id) {
                if let (Some(last), Some(cpu)) = (&t.last, t.last_cpu) {
                    if last.at.elapsed() < REUSE {
                        return Some((last.clone(), Some(cpu)));
                    }
                }
            }
        }
        if let Some(now) = engine.sample_local(container_id, pid) {
            let cpu = match self.previous(container_id, &now) {
                Previous::Sample(p) => cpu_percent(&p, &now).map(round2),
                Previous::Cpu(c) => return Some((now, Some(c))),
                Previous::Nothing => None,
            };
            self.remember(container_id, workspace_id, pid, now.clone(), cpu);
            return Some((now, cpu));
        }
        let tracked = self.inner.tracked.lock().expect("tracked poisoned");
        let t = tracked.get(container_id)?;
        let last = t.last.as_ref()?;
        (last.at.elapsed() < FRESH).then(|| (last.clone(), t.last_cpu))
    }

    /// Takes a first sample of a container seen running for the first time
    /// where the cgroup files are visible, so that the first status read
    /// a moment later already has a CPU %.
    pub(super) fn seed_sample(&self, engine: &Engine, state: &crate::engine::ContainerState) {
        if !state.running {
            return;
        }
        let Some(ws) = state
            .labels
            .get(crate::engine::LABEL_WORKSPACE_ID)
            .and_then(|w| Uuid::parse_str(w).ok())
        else {
            return;
        };
        let known = {
            let tracked = self.inner.tracked.lock().expect("tracked poisoned");
            tracked.get(&state.id).is_some_and(|t| t.last.is_some())
        };
        if !known {
            if let Some(s) = engine.sample_local(&state.id, state.pid) {
                self.remember(&state.id, ws, state.pid, s, None);
            }
        }
    }

    /// The figures of one running workspace, with its recent history.
    pub async fn resource_stats(
        &self,
        user: &User,
        id: Uuid,
    ) -> Result<(StatsView, Vec<HistoryPoint>)> {
        let ws = self.core().workspace(user, id).await?;
        let not_running = || {
            ServiceError::Conflict(
                "the workspace is not running; start it to see its figures".into(),
            )
        };
        let engine = self.core().engine_of(&ws).await?;
        let c = self
            .container_on(&ws.node, &ws.container_name())
            .await?
            .filter(|c| c.running)
            .ok_or_else(not_running)?;
        let (_, later, cpu) = self
            .sample_pair(&engine, id, &c.id, c.pid)
            .await?
            .ok_or_else(not_running)?;
        Ok((view(id, &c.id, cpu, &later), self.history(&c.id)))
    }

    fn history(&self, container_id: &str) -> Vec<HistoryPoint> {
        let tracked = self.inner.tracked.lock().expect("tracked poisoned");
        tracked
            .get(container_id)
            .map(|t| t.history.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Current figures of every running workspace the user may see, in one
    /// call and without an engine call: the running records (one indexed
    /// query), each container's pid from the engine view, its cgroup files
    /// where they are visible here (CPU % against the sampler's last
    /// sample) and else the sampler's last sample. Only containers started
    /// a moment ago (no sample old enough for a CPU %) cost one short wait
    /// for a second cgroup read, shared by all of them.
    pub async fn fleet_stats(&self, user: &User) -> Result<Vec<StatsView>> {
        let owner = (!user.is_admin()).then_some(user.id);
        let running = self.core().store().running_workspaces(owner).await?;
        let mut out = Vec::with_capacity(running.len());
        let mut unpaired = Vec::new();
        for w in running {
            let Some(cid) = w.container_id.clone() else {
                continue;
            };
            // A node that does not answer leaves its workspaces out (their
            // records say so); the others' figures still come.
            let Ok(engine) = self.core().engine_on(&w.node).await else {
                continue;
            };
            let pid = match self.known_pid(&cid) {
                Some(p) => Some(p),
                None => self
                    .container_on(&w.node, &w.container_name())
                    .await?
                    .filter(|c| c.running)
                    .and_then(|c| c.pid),
            };
            match self.current_use(&engine, w.id, &cid, pid) {
                Some((now, None)) if engine.host_local() => {
                    unpaired.push((w.id, engine, cid, pid, now))
                }
                Some((now, cpu)) => out.push(view(w.id, &cid, cpu, &now)),
                None => {}
            }
        }
        if !unpaired.is_empty() {
            tokio::time::sleep(SECOND_SAMPLE).await;
            for (ws_id, engine, cid, pid, first) in unpaired {
                match engine.sample_local(&cid, pid) {
                    Some(second) => {
                        let cpu = cpu_percent(&first, &second).map(round2);
                        self.remember(&cid, ws_id, pid, second.clone(), cpu);
                        out.push(view(ws_id, &cid, cpu, &second));
                    }
                    None => out.push(view(ws_id, &cid, None, &first)),
                }
            }
        }
        Ok(out)
    }

    /// Starts the sampler: every `stats.interval_s` it samples each running
    /// workspace container of this installation and keeps the last
    /// `stats.history_min` minutes of CPU and memory per container.
    pub fn spawn_sampler(&self) -> JoinHandle<()> {
        let berth = self.clone();
        tokio::spawn(async move {
            let every = Duration::from_secs(berth.core().config().stats.interval_s.max(1));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = berth.sample_all().await {
                    // Every few seconds while the engine is away: counted,
                    // not logged above debug.
                    crate::metrics::loop_failed("sampler", e.kind());
                    tracing::debug!(error = %e, "stats sampling failed");
                }
            }
        })
    }

    async fn sample_all(&self) -> Result<()> {
        let cfg = &self.core().config().stats;
        let keep = (cfg.history_min.saturating_mul(60) / cfg.interval_s.max(1)).max(1) as usize;
        // Every node's running containers; a node that does not answer
        // keeps what was tracked of it until it does.
        let mut running = Vec::new();
        let mut silent = Vec::new();
        for node in self.core().nodes().names().await? {
            let engine = match self.core().engine_on(&node).await {
                Ok(e) => e,
                Err(e) if node == crate::domain::nodes::LOCAL => return Err(e),
                Err(_) => {
                    silent.push(node);
                    continue;
                }
            };
            match engine
                .running_workspace_containers(&self.core().config().instance)
                .await
            {
                Ok(list) => running.extend(
                    list.into_iter()
                        .map(|(c, w, u)| (node.clone(), engine.clone(), c, w, u)),
                ),
                Err(e) if node == crate::domain::nodes::LOCAL => return Err(e.into()),
                Err(_) => silent.push(node),
            }
        }
        {
            let mut tracked = self.inner.tracked.lock().expect("tracked poisoned");
            tracked.retain(|cid, t| {
                let still =
                    silent.contains(&t.node) || running.iter().any(|(_, _, c, _, _)| c == cid);
                if !still {
                    // Not running is not unhealthy: the series must not
                    // keep firing an alert for a stopped workspace.
                    if let Some(w) = t.workspace_id {
                        metrics::gauge!("berth_workspace_unhealthy", "workspace" => w.to_string())
                            .set(0.0);
                    }
                }
                still
            });
        }
        for (node, engine, cid, ws, unhealthy) in running {
            let Ok(ws_id) = Uuid::parse_str(&ws) else {
                continue;
            };
            let pid = match self.known_pid(&cid) {
                Some(p) => Some(p),
                None => engine.inspect_container(&cid).await?.and_then(|c| c.pid),
            };
            let Some(now) = engine.sample_resources(&cid, pid).await? else {
                continue;
            };
            let mut tracked = self.inner.tracked.lock().expect("tracked poisoned");
            let t = tracked.entry(cid.clone()).or_default();
            let cpu = t.last.as_ref().and_then(|prev| cpu_percent(prev, &now));
            if let Some(cpu) = cpu {
                {
                    t.history.push_back(HistoryPoint {
                        at: now_millis(),
                        cpu_percent: round2(cpu),
                        memory_mb: mb(now.memory_usage),
                        rx_bytes: now.networks.values().map(|n| n.rx_bytes).sum(),
                        tx_bytes: now.networks.values().map(|n| n.tx_bytes).sum(),
                    });
                    while t.history.len() > keep {
                        t.history.pop_front();
                    }
                }
            }
            let w = ws_id.to_string();
            if let Some(c) = cpu {
                metrics::gauge!("berth_workspace_cpu_percent", "workspace" => w.clone()).set(c);
            }
            metrics::gauge!("berth_workspace_unhealthy", "workspace" => w.clone())
                .set(if unhealthy { 1.0 } else { 0.0 });
            metrics::gauge!("berth_workspace_memory_bytes", "workspace" => w)
                .set(now.memory_usage as f64);
            t.workspace_id = Some(ws_id);
            t.node = node;
            t.pid = pid;
            t.last = Some(now);
            t.last_cpu = cpu.map(round2);
        }
        Ok(())
    }
}

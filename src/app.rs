//! The application assembled: each service built once, in one place, from
//! the store, the engine and the configuration, and handed to what drives
//! it: the HTTP router (as its state; handlers extract the service they
//! use) and the background loops. The CLI's admin commands open the store
//! alone and need none of this.

use axum::extract::FromRef;

use crate::config::Config;
use crate::engine::Engine;
use crate::jobs::Scheduler;
use crate::service::{
    Accounts, Apps, Audit, Backups, Berth, Nodes, Projects, Quotas, Repos, Volumes,
};
use crate::store::Store;

/// Everything a request or a loop may use.
#[derive(Clone)]
pub struct App {
    /// Workspaces, projects, accounts, apps: the services that answer
    /// requests (see `service`).
    pub berth: Berth,
    /// Workspace apps: their origins, the login handoff, shares, ports,
    /// and the proxy's wake on access; drives `berth`.
    pub apps: Apps,
    /// Projects and their volumes.
    pub projects: Projects,
    /// Projects cloned from git repositories, through `projects` and
    /// `volumes`.
    pub repos: Repos,
    /// Clones, sizes, moves and drains of project volumes; drives
    /// `berth`'s workspaces.
    pub volumes: Volumes,
    /// Backups and restores of project volumes, through `volumes`.
    pub backups: Backups,
    /// Users, sessions and tokens (the one `berth` was built with: it
    /// authenticates app-origin viewers).
    pub accounts: Accounts,
    /// The jobs, scheduled and on request; drives `berth`.
    pub scheduler: Scheduler,
    /// The Docker engines (the one `berth` was built with).
    pub nodes: Nodes,
    /// What people did (recorded by the router's audit layer).
    pub audit: Audit,
}

impl App {
    pub fn new(store: Store, engine: Engine, config: Config, host_cpus: u32) -> App {
        App::around(Berth::new(store, engine, config, host_cpus))
    }

    /// The rest of the application around services already built.
    pub fn around(berth: Berth) -> App {
        let volumes = Volumes::new(berth.clone());
        let backups = Backups::new(volumes.clone());
        let audit = Audit::new(
            berth.core().store().clone(),
            berth.core().config().audit.clone(),
            Some(berth.core().replicas().id()),
        );
        let projects = Projects::new(
            berth.core().clone(),
            berth.types().clone(),
            berth.placement().clone(),
        );
        App {
            apps: Apps::new(berth.clone()),
            repos: Repos::new(berth.core().clone(), projects.clone(), volumes.clone()),
            projects,
            scheduler: Scheduler::new(berth.clone(), backups.clone(), audit.clone()),
            audit,
            volumes,
            backups,
            accounts: berth.core().accounts().clone(),
            nodes: berth.core().nodes().clone(),
            berth,
        }
    }
}

impl App {
    /// Joins the replicas on the database as `name` (where it serves) and
    /// takes care of what was left under way: what `berth serve` does
    /// before it serves. Refused (`Conflict`, saying what to change) when
    /// this process may not serve beside the live replicas.
    pub async fn start_replica(&self, name: &str) -> crate::service::Result<()> {
        let engine = self.berth.core().local_engine().info().await?;
        self.berth
            .core()
            .replicas()
            .register(crate::service::ReplicaStart {
                name: name.to_string(),
                engine_id: engine.id,
                archive_dir: self.backups.archive_dir_id()?,
                remote_archives: self.backups.stores_remotely(),
                instance: self.berth.core().config().instance.clone(),
            })
            .await?;
        self.scheduler.reap_at_start().await
    }
}

impl FromRef<App> for Berth {
    fn from_ref(app: &App) -> Berth {
        app.berth.clone()
    }
}

impl FromRef<App> for Scheduler {
    fn from_ref(app: &App) -> Scheduler {
        app.scheduler.clone()
    }
}

impl FromRef<App> for crate::service::Replicas {
    fn from_ref(app: &App) -> crate::service::Replicas {
        app.berth.core().replicas().clone()
    }
}

impl FromRef<App> for Repos {
    fn from_ref(app: &App) -> Repos {
        app.repos.clone()
    }
}

impl FromRef<App> for Volumes {
    fn from_ref(app: &App) -> Volumes {
        app.volumes.clone()
    }
}

impl FromRef<App> for Backups {
    fn from_ref(app: &App) -> Backups {
        app.backups.clone()
    }
}

impl FromRef<App> for Accounts {
    fn from_ref(app: &App) -> Accounts {
        app.accounts.clone()
    }
}

impl FromRef<App> for Audit {
    fn from_ref(app: &App) -> Audit {
        app.audit.clone()
    }
}

impl FromRef<App> for Nodes {
    fn from_ref(app: &App) -> Nodes {
        app.nodes.clone()
    }
}

impl FromRef<App> for Apps {
    fn from_ref(app: &App) -> Apps {
        app.apps.clone()
    }
}

impl FromRef<App> for Quotas {
    fn from_ref(app: &App) -> Quotas {
        app.berth.quotas().clone()
    }
}

impl FromRef<App> for Projects {
    fn from_ref(app: &App) -> Projects {
        app.projects.clone()
    }
}

/// The loops a serving replica runs beside its router, in the order they
/// start; [`Running::stop`] stops them in the order that loses nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loop {
    /// This replica's own heartbeat in the database (stopped last: the
    /// others must not take it for gone while its jobs finish).
    ReplicaHeartbeat,
    /// Takes over what dead replicas left under way.
    Reaper,
    /// Reconciles with each engine, then follows its events.
    Watcher,
    /// Samples running workspaces' CPU and memory.
    Sampler,
    /// Asks every node for its engine and capacity (once before serving,
    /// then on its interval).
    NodeHeartbeat,
    /// Follows node changes other replicas make.
    NodeFollower,
    /// The jobs, on their schedules (a running one finishes at shutdown).
    Scheduler,
}

impl Loop {
    /// What `berth serve` runs.
    pub const ALL: [Loop; 7] = [
        Loop::ReplicaHeartbeat,
        Loop::Reaper,
        Loop::Watcher,
        Loop::Sampler,
        Loop::NodeHeartbeat,
        Loop::NodeFollower,
        Loop::Scheduler,
    ];
}

/// The loops started by [`App::start_loops`].
pub struct Running {
    loops: Vec<(Loop, tokio::task::JoinHandle<()>)>,
    replica_stop: tokio_util::sync::CancellationToken,
    stop_jobs: tokio::sync::watch::Sender<bool>,
}

impl App {
    /// Starts `which` of the loops (in [`Loop::ALL`]'s order, whatever the
    /// order given): `berth serve` starts them all, the tests' harness the
    /// ones whose outcome a test does not drive itself.
    pub async fn start_loops(&self, which: &[Loop]) -> Running {
        let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
        let replica_stop = tokio_util::sync::CancellationToken::new();
        let core = self.berth.core();
        let mut loops = Vec::new();
        for l in Loop::ALL.into_iter().filter(|l| which.contains(l)) {
            let handle = match l {
                Loop::ReplicaHeartbeat => core.replicas().spawn_heartbeat(replica_stop.clone()),
                Loop::Reaper => self.scheduler.spawn_reaper(core.shutdown_token()),
                Loop::Watcher => self.berth.spawn_watcher(),
                Loop::Sampler => self.berth.observe().spawn_sampler(),
                Loop::NodeHeartbeat => {
                    // Every node asked once before serving, so the first
                    // answers already say which engines answer (each ask
                    // is bounded).
                    if let Err(e) = core.nodes().beat().await {
                        tracing::warn!(error = %e, "the first node heartbeat failed");
                    }
                    core.nodes().spawn_heartbeat(core.shutdown_token())
                }
                Loop::NodeFollower => core.nodes().spawn_follower(),
                Loop::Scheduler => self.scheduler.spawn(jobs_stopped.clone()),
            };
            loops.push((l, handle));
        }
        Running {
            loops,
            replica_stop,
            stop_jobs,
        }
    }
}

impl Running {
    /// Stops the loops: the readers at once; then a job that is running
    /// is let finish (at most `jobs_grace`), so no action is cut in half;
    /// the replica's own heartbeat last.
    pub async fn stop(mut self, jobs_grace: std::time::Duration) {
        let _ = self.stop_jobs.send(true);
        let (mut jobs, mut beat) = (None, None);
        for (l, handle) in std::mem::take(&mut self.loops) {
            match l {
                Loop::Scheduler => jobs = Some(handle),
                Loop::ReplicaHeartbeat => beat = Some(handle),
                _ => handle.abort(),
            }
        }
        if let Some(jobs) = jobs {
            if tokio::time::timeout(jobs_grace, jobs).await.is_err() {
                tracing::warn!(
                    "a job was still running {} s after the shutdown began; exiting anyway",
                    jobs_grace.as_secs()
                );
            }
        }
        self.replica_stop.cancel();
        if let Some(beat) = beat {
            let _ = beat.await;
        }
    }

    /// Ends one loop now (a test stopping the watcher, as if Berth were
    /// down).
    pub fn abort(&mut self, l: Loop) {
        self.loops.retain(|(x, handle)| {
            if *x == l {
                handle.abort();
            }
            *x != l
        });
    }
}

impl Drop for Running {
    /// Dropped without [`Running::stop`] (a test ending): every loop ends
    /// now.
    fn drop(&mut self) {
        self.replica_stop.cancel();
        for (_, handle) in &self.loops {
            handle.abort();
        }
    }
}

//! The application assembled: each service built once, in one place, from
//! the store, the engine and the configuration, and handed to what drives
//! it: the HTTP router (as its state; handlers extract the service they
//! use) and the background loops. The CLI's admin commands open the store
//! alone and need none of this.

use axum::extract::FromRef;

use crate::config::Config;
use crate::engine::Engine;
use crate::jobs::Scheduler;
use crate::service::{Accounts, Apps, Audit, Backups, Berth, Nodes, Projects, Quotas, Volumes};
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
        App {
            apps: Apps::new(berth.clone()),
            projects: Projects::new(
                berth.core().clone(),
                berth.types().clone(),
                berth.placement().clone(),
            ),
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

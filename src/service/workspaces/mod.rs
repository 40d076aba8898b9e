//! Workspaces: the service `Berth` is. Their records (`records`: create,
//! list, update, delete), their containers' lifecycle (`lifecycle`:
//! start, stop, restart), status and health reads (`status`), bringing
//! the records into agreement with the engines and recovering failed
//! workspaces (`reconcile`), the engine event watcher (`watcher`) and the
//! maintenance sweeps the cleanup job drives (`maintenance`). It stands on
//! the services below it (`Core`, `Types`, `Quotas`, `Placement`,
//! `Observe`) and is driven by those above (`Apps`, `Volumes`, `Backups`,
//! the jobs), never the other way round.

mod lifecycle;
pub mod maintenance;
pub mod reconcile;
mod records;
pub mod status;
mod watcher;

pub use records::{CreateWorkspace, UpdateWorkspace, WorkspaceStats};

use std::sync::Arc;

use uuid::Uuid;

use crate::config::Config;
use crate::engine::Engine;
use crate::service::{Core, Observe, Placement, Quotas, Types, View};
use crate::store::Store;

/// The running application: a cheap-to-clone handle shared by every request.
#[derive(Clone)]
pub struct Berth {
    inner: Arc<Inner>,
}

struct Inner {
    /// The store, config, engines, shared locks and accounts.
    core: Core,
    /// Wakes this replica's recovery timer (a restart was scheduled).
    recovery_wake: tokio::sync::Notify,
    /// Workspaces the engine just said something about (their health may
    /// have changed): what live status streams look at again.
    changes: tokio::sync::broadcast::Sender<Uuid>,
    /// The type catalogue and its images.
    types: Types,
    /// Users' limits and usage, checked where a resource is taken.
    quotas: Quotas,
    /// Where workspaces go and whether their node has room.
    placement: Placement,
    /// Figures, logs, and the engine view they read.
    observe: Observe,
}

impl Berth {
    pub fn new(store: Store, engine: Engine, config: Config, host_cpus: u32) -> Berth {
        Berth::on(Core::new(store, engine, config, host_cpus))
    }

    /// The workspaces service on a core already built.
    pub fn on(core: Core) -> Berth {
        let types = Types::new(core.clone());
        let quotas = Quotas::new(core.clone(), types.clone());
        let placement = Placement::new(core.clone(), types.clone());
        let observe = Observe::new(core.clone(), View::new(core.clone()));
        Berth {
            inner: Arc::new(Inner {
                types,
                quotas,
                placement,
                observe,
                core,
                recovery_wake: tokio::sync::Notify::new(),
                changes: tokio::sync::broadcast::channel(1024).0,
            }),
        }
    }

    /// The store, config, engines and shared locks this service stands on.
    pub fn core(&self) -> &Core {
        &self.inner.core
    }

    /// The workspace types and their images.
    pub fn types(&self) -> &Types {
        &self.inner.types
    }

    /// Users' limits and usage.
    pub fn quotas(&self) -> &Quotas {
        &self.inner.quotas
    }

    /// Where workspaces go and whether their node has room.
    pub fn placement(&self) -> &Placement {
        &self.inner.placement
    }

    /// Figures, logs, and the engine view they read.
    pub fn observe(&self) -> &Observe {
        &self.inner.observe
    }

    /// Workspaces the engine reported changes of, as they come.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<Uuid> {
        self.inner.changes.subscribe()
    }
}

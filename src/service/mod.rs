//! The application: what Berth does with a request once the HTTP layer has
//! parsed it. It joins the store and the engine, checks ownership and input,
//! and serialises lifecycle operations per workspace. It knows nothing of
//! HTTP; the CLI's admin commands and the tests call it directly.

mod accounts;
pub mod apps;
mod audit;
mod auth;
pub mod backups;
mod images;
mod lifecycle;
pub mod logs;
pub mod maintenance;
pub mod nodes;
mod offsite;
mod placement;
mod projects;
pub mod proxy;
mod quotas;
pub mod reconcile;
mod replicas;
pub mod stats;
mod status;
mod view;
mod volume_io;
pub mod volumes;
mod watcher;
mod workspaces;

pub use accounts::Accounts;
pub use audit::Audit;
pub use auth::{AuthSession, NewUser};
pub use backups::Backups;
pub use nodes::{NewNode, NodeChange, NodeView, Nodes};
pub use placement::{NodeReport, PlacementPlan};
pub use quotas::{QuotaHold, QuotaReport};
pub use replicas::{ReplicaStart, Replicas};
pub use stats::{HistoryPoint, StatsView};
pub use status::{HealthSummary, ResourceUse, StatusReport};
pub use view::ViewState;
pub use workspaces::{CreateWorkspace, TypeInfo, UpdateWorkspace, WorkspaceStats};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use crate::config::Config;
use crate::engine::{Engine, EngineError};
use crate::store::{Store, StoreError};

/// Why a request could not be carried out. The HTTP layer maps each variant
/// to a status code in one place (`http::error`).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The resource does not exist or belongs to someone else (never tell
    /// which: ids must not leak).
    #[error("{0}")]
    NotFound(String),
    /// The input breaks a rule; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the resource's current state.
    #[error("{0}")]
    Conflict(String),
    /// The action would take more than the user's quota (or the site's
    /// caps) allow; the message says what is used, what it needs and the
    /// limit.
    #[error("{0}")]
    Quota(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials, but the action needs another role.
    #[error("{0}")]
    Forbidden(String),
    /// The input is well-formed but what it names cannot be used (a damaged
    /// or unsafe archive).
    #[error("{0}")]
    Refused(String),
    /// Volume data cannot be reached from where Berth runs (not root on the
    /// engine's host); the operation needs it.
    #[error("{0}")]
    VolumeAccess(String),
    /// The request body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// Not enough free space to do it.
    #[error("{0}")]
    InsufficientStorage(String),
    /// Reading or writing volume data or archives failed; the message says
    /// what and where (relative to the volume).
    #[error("{0}")]
    Storage(String),
    /// Too many failed attempts: try again after this many seconds.
    #[error("{message}")]
    Throttled { message: String, retry_after_s: u64 },
    /// The workspace cannot serve right now (error, archived, not
    /// startable); the message says why.
    #[error("{0}")]
    NotReady(String),
    /// The engine is unreachable; try again later.
    #[error("{0}")]
    Unavailable(String),
    /// The remote backup store failed or could not be reached.
    #[error("{0}")]
    Remote(String),
    /// An image registry failed or could not be reached.
    #[error("{0}")]
    Registry(String),
    /// The engine failed to do what was asked.
    #[error(transparent)]
    Engine(EngineError),
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
    /// Something that should not happen (a bug or a broken host).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            other => ServiceError::Store(other),
        }
    }
}

impl From<EngineError> for ServiceError {
    fn from(e: EngineError) -> Self {
        let kind = match &e {
            EngineError::NotFound(_) => "not_found",
            EngineError::Conflict(_) => "conflict",
            EngineError::Unavailable(_) => "unavailable",
            EngineError::Rejected(_) => "rejected",
            EngineError::Failed(_) => "failed",
        };
        metrics::counter!("berth_engine_errors_total", "kind" => kind).increment(1);
        match e {
            EngineError::Unavailable(m) => {
                ServiceError::Unavailable(format!("Docker engine unreachable: {m}"))
            }
            other => ServiceError::Engine(other),
        }
    }
}

impl ServiceError {
    /// What failed, as a metric label: where the fault lies, not the text.
    pub fn kind(&self) -> &'static str {
        match self {
            ServiceError::Unavailable(_) | ServiceError::Engine(EngineError::Unavailable(_)) => {
                "engine_unavailable"
            }
            ServiceError::Engine(_) => "engine",
            ServiceError::Store(_) => "store",
            ServiceError::Remote(_) => "remote",
            ServiceError::Registry(_) => "registry",
            ServiceError::Storage(_)
            | ServiceError::VolumeAccess(_)
            | ServiceError::InsufficientStorage(_) => "storage",
            ServiceError::Internal(_) => "internal",
            _ => "request",
        }
    }
}

pub type Result<T> = std::result::Result<T, ServiceError>;

/// The running application: a cheap-to-clone handle shared by every request.
#[derive(Clone)]
pub struct Berth {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engine: Engine,
    config: Config,
    host_cpus: u32,
    /// One lock per workspace: lifecycle operations on one workspace run one
    /// at a time, different workspaces in parallel (across replicas too:
    /// see [`Berth::lock_workspace`]).
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    /// This process among the others on the database: shared locks and
    /// notices.
    replicas: Replicas,
    /// Wakes this replica's recovery timer (a restart was scheduled).
    recovery_wake: tokio::sync::Notify,
    /// Per running container: pid, last sample and history (see `stats`).
    tracked: Mutex<HashMap<String, stats::Tracked>>,
    /// When proxy traffic last recorded activity, per workspace.
    proxy_touched: Mutex<HashMap<Uuid, std::time::Instant>>,
    /// Log and stats streams open right now.
    log_streams: Arc<std::sync::atomic::AtomicUsize>,
    /// Where workspace apps are served.
    app_urls: apps::AppUrls,
    /// Users, sessions and tokens.
    accounts: Accounts,
    /// The Docker engines workspaces run on.
    nodes: Nodes,
    /// What `/metrics` asks for; `None`: open (`metrics.public`).
    metrics_token: Option<String>,
    /// Cancelled when the server shuts down: open streams and tunnels end.
    shutdown: tokio_util::sync::CancellationToken,
    /// Workspaces the engine just said something about (their health may
    /// have changed): what live status streams look at again.
    changes: tokio::sync::broadcast::Sender<Uuid>,
    /// Image pulls under way or done, by image.
    pulls: images::Pulls,
    /// What each node's engine last said about each workspace container.
    view: view::EngineView,
}

/// A workspace's lock, both parts: released shared first, so the next
/// holder here asks for it after it is free.
pub(crate) struct WorkspaceLock {
    _shared: crate::store::HeldLock,
    _local: OwnedMutexGuard<()>,
}

/// The metrics token: configured, or generated once and kept in
/// `<data_dir>/metrics-token` (0600); `None` with `metrics.public`.
fn metrics_token(config: &Config) -> Option<String> {
    if config.metrics.public {
        return None;
    }
    if let Some(t) = &config.metrics.token {
        return Some(t.expose().to_string());
    }
    let file = config.data_dir.join("metrics-token");
    if let Ok(t) = std::fs::read_to_string(&file) {
        if !t.trim().is_empty() {
            return Some(t.trim().to_string());
        }
    }
    let token = {
        use base64::Engine as _;
        use rand::RngCore;
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        format!(
            "berthm_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        )
    };
    let written = (|| -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(&config.data_dir)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)?;
        f.write_all(format!("{token}\n").as_bytes())
    })();
    match written {
        Ok(()) => {
            tracing::info!(file = %file.display(), "generated the metrics token (scrape with 'Authorization: Bearer <it>')");
            Some(token)
        }
        // Another process made it meanwhile: theirs.
        Err(_) => std::fs::read_to_string(&file)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .or(Some(token)),
    }
}

impl Berth {
    pub fn new(store: Store, engine: Engine, config: Config, host_cpus: u32) -> Berth {
        // Install the metrics recorder before anything records.
        let _ = crate::metrics::handle();
        let replicas = Replicas::new(store.clone(), config.replicas);
        let accounts = Accounts::new(store.clone(), config.auth.clone());
        let nodes = Nodes::new(
            store.clone(),
            engine.clone(),
            &config.data_dir,
            config.nodes.clone(),
            config
                .types
                .iter()
                .map(|(name, t)| (name.clone(), t.image.clone()))
                .collect(),
        );
        Berth {
            inner: Arc::new(Inner {
                store,
                engine,
                host_cpus,
                locks: Mutex::new(HashMap::new()),
                replicas,
                recovery_wake: tokio::sync::Notify::new(),
                tracked: Mutex::new(HashMap::new()),
                proxy_touched: Mutex::new(HashMap::new()),
                log_streams: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
                app_urls: apps::AppUrls::new(&config),
                accounts,
                nodes,
                metrics_token: metrics_token(&config),
                shutdown: tokio_util::sync::CancellationToken::new(),
                changes: tokio::sync::broadcast::channel(1024).0,
                pulls: Mutex::new(HashMap::new()),
                view: Default::default(),
                config,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Users, roles, passwords, sessions and tokens (the same code the
    /// CLI's admin commands run on the data directory): built with this
    /// service, which authenticates app-origin viewers with it.
    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// The Docker engines workspaces run on (the one Berth started with is
    /// the node `local`).
    pub fn nodes(&self) -> &Nodes {
        &self.inner.nodes
    }

    /// This replica and the others on the database.
    pub fn replicas(&self) -> &Replicas {
        &self.inner.replicas
    }

    /// The engine Berth started with (node `local`). What a workspace or
    /// a project does goes to its node's engine instead: [`Berth::engine_of`],
    /// [`Berth::engine_on`].
    pub fn local_engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The engine of the node a workspace's container lives on; a node that
    /// does not answer is `Unavailable`, saying since when.
    pub async fn engine_of(&self, ws: &crate::domain::Workspace) -> Result<Engine> {
        self.inner.nodes.engine(&ws.node).await
    }

    /// The engine of the node `node`.
    pub async fn engine_on(&self, node: &str) -> Result<Engine> {
        self.inner.nodes.engine(node).await
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Cancelled once the server begins to shut down: what streams (logs,
    /// stats, tunnels) ends then, so the process exits in bounded time.
    pub fn shutdown_token(&self) -> tokio_util::sync::CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Workspaces the engine reported changes of, as they come.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<Uuid> {
        self.inner.changes.subscribe()
    }

    /// Ends every open stream and tunnel (at SIGTERM).
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// The token `/metrics` needs ("" when it is open).
    pub fn metrics_token(&self) -> &str {
        self.inner.metrics_token.as_deref().unwrap_or("")
    }

    /// Whether `/metrics` is open to anyone (`metrics.public`).
    pub fn metrics_public(&self) -> bool {
        self.inner.metrics_token.is_none()
    }

    pub fn host_cpus(&self) -> u32 {
        self.inner.host_cpus
    }

    /// Takes the lock of one workspace (or project), waiting for any
    /// operation under way: first this process's, then the one shared
    /// with the other replicas (a PostgreSQL advisory lock; on SQLite
    /// there are no others). Fails only when the database does not answer.
    async fn lock_workspace(&self, id: Uuid) -> Result<WorkspaceLock> {
        self.lock_key(id, crate::store::LockKey::Workspace(id))
            .await
    }

    /// This process's lock `local` (in the map workspaces' locks are in:
    /// distinct ids never meet), then the one shared with the replicas.
    async fn lock_key(&self, local: Uuid, shared: crate::store::LockKey) -> Result<WorkspaceLock> {
        let m = {
            let mut locks = self.inner.locks.lock().expect("lock map poisoned");
            locks.entry(local).or_default().clone()
        };
        let local = m.lock_owned().await;
        let shared = self.inner.replicas.lock(&shared).await?;
        Ok(WorkspaceLock {
            _shared: shared,
            _local: local,
        })
    }

    fn forget_lock(&self, id: Uuid) {
        self.inner
            .locks
            .lock()
            .expect("lock map poisoned")
            .remove(&id);
    }

    /// Labels every resource of this installation carries.
    fn base_labels(&self) -> HashMap<String, String> {
        let mut l = HashMap::new();
        l.insert(crate::engine::LABEL_MANAGED.to_string(), "true".to_string());
        l.insert(
            crate::engine::LABEL_INSTANCE.to_string(),
            self.inner.config.instance.clone(),
        );
        l
    }
}

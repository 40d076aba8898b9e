//! What every service stands on: the store, the configuration, the Docker
//! engines (`Nodes`), the replicas' shared locks (`Replicas`), accounts,
//! this installation's labels and app URLs, and what every request does
//! first — find the workspace or project the caller may see — and the one
//! writer of a workspace's lifecycle fields ([`Core::transition`]). A
//! cheap-to-clone handle; each service holds one, none holds another's
//! state through it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use super::app_urls::AppUrls;
use super::{Accounts, Nodes, Replicas, Result, ServiceError};
use crate::config::Config;
use crate::domain::transition::{Note, Transition};
use crate::domain::{now_millis, Project, User, Workspace};
use crate::engine::Engine;
use crate::store::Store;

/// The base of the application (see the module's doc).
#[derive(Clone)]
pub struct Core {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engine: Engine,
    config: Config,
    host_cpus: u32,
    /// One lock per workspace (or project, node room, user quota: the ids
    /// never meet): operations on one run one at a time, different ones in
    /// parallel (across replicas too: see [`Core::lock_workspace`]).
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    /// This process among the others on the database: shared locks and
    /// notices.
    replicas: Replicas,
    /// Users, sessions and tokens.
    accounts: Accounts,
    /// The Docker engines workspaces run on.
    nodes: Nodes,
    /// Where workspace apps are served.
    app_urls: AppUrls,
    /// What `/metrics` asks for; `None`: open (`metrics.public`).
    metrics_token: Option<String>,
    /// Cancelled when the server shuts down: open streams and tunnels end.
    shutdown: tokio_util::sync::CancellationToken,
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

impl Core {
    pub fn new(store: Store, engine: Engine, config: Config, host_cpus: u32) -> Core {
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
        Core {
            inner: Arc::new(Inner {
                store,
                engine,
                host_cpus,
                locks: Mutex::new(HashMap::new()),
                replicas,
                app_urls: AppUrls::new(&config),
                accounts,
                nodes,
                metrics_token: metrics_token(&config),
                shutdown: tokio_util::sync::CancellationToken::new(),
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
    /// a project does goes to its node's engine instead: [`Core::engine_of`],
    /// [`Core::engine_on`].
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
    pub(crate) async fn lock_workspace(&self, id: Uuid) -> Result<WorkspaceLock> {
        self.lock_key(id, crate::store::LockKey::Workspace(id))
            .await
    }

    /// This process's lock `local` (in the map workspaces' locks are in:
    /// distinct ids never meet), then the one shared with the replicas.
    pub(crate) async fn lock_key(
        &self,
        local: Uuid,
        shared: crate::store::LockKey,
    ) -> Result<WorkspaceLock> {
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

    pub(crate) fn forget_lock(&self, id: Uuid) {
        self.inner
            .locks
            .lock()
            .expect("lock map poisoned")
            .remove(&id);
    }

    /// Labels every resource of this installation carries.
    pub(crate) fn base_labels(&self) -> HashMap<String, String> {
        let mut l = HashMap::new();
        l.insert(crate::engine::LABEL_MANAGED.to_string(), "true".to_string());
        l.insert(
            crate::engine::LABEL_INSTANCE.to_string(),
            self.inner.config.instance.clone(),
        );
        l
    }

    /// Where workspace apps are served (their URLs in each mode).
    pub fn app_urls(&self) -> &AppUrls {
        &self.inner.app_urls
    }

    /// A workspace record the user may see, or NotFound (never telling an
    /// id that exists from one that does not). From the database only.
    pub async fn workspace(&self, user: &User, id: Uuid) -> Result<Workspace> {
        match self.store().workspace(id).await? {
            Some(w) if user.can_access(w.owner_id) => Ok(w),
            _ => Err(ServiceError::NotFound(format!("workspace {id} not found"))),
        }
    }

    /// A project the user may see, or NotFound.
    pub async fn project(&self, user: &User, id: Uuid) -> Result<Project> {
        match self.store().project(id).await? {
            Some(p) if user.can_access(p.owner_id) => Ok(p),
            _ => Err(ServiceError::NotFound(format!("project {id} not found"))),
        }
    }

    /// Moves a workspace to its next state and saves exactly the columns
    /// that state owns. The caller holds the workspace's lock.
    pub(crate) async fn transition(&self, ws: &Workspace, t: Transition) -> Result<Workspace> {
        self.steps(ws, [t], None).await
    }

    /// [`Core::transition`], with the event that says why saved alongside.
    pub(crate) async fn transition_noting(
        &self,
        ws: &Workspace,
        t: Transition,
        note: Note,
    ) -> Result<Workspace> {
        self.steps(ws, [t], Some(note)).await
    }

    /// The one writer of a workspace's state: moves it through `steps` in
    /// order (the first illegal one refused, nothing saved), then saves the
    /// columns they own and `note`, if any, in one database transaction.
    /// No step: nothing of the record is saved, the note alone is. The
    /// caller holds the workspace's lock.
    pub(crate) async fn steps(
        &self,
        ws: &Workspace,
        steps: impl IntoIterator<Item = Transition>,
        note: Option<Note>,
    ) -> Result<Workspace> {
        let now = now_millis();
        let mut next = ws.clone();
        let mut moved = false;
        for t in steps {
            next = crate::domain::transition::transition(&next, t, now)?;
            moved = true;
        }
        if let Some(n) = &note {
            tracing::info!(workspace = %ws.id, kind = n.kind.as_str(), message = %n.message, status = %next.status, "workspace event");
        }
        if moved {
            self.store().save_status(&next, note.as_ref()).await?;
        } else if let Some(n) = &note {
            self.store().insert_event(ws.id, now, n).await?;
        }
        Ok(next)
    }

    /// Records an event that moves no state: a recovery attempt begun, a
    /// limits change, an unhealthy check while recovery is off.
    pub(crate) async fn note(&self, ws: &Workspace, note: Note) -> Result<()> {
        self.steps(ws, [], Some(note)).await.map(drop)
    }

    /// Records an event every replica may notice (an engine event each
    /// follows) once: `false` when another replica recorded `source`.
    pub(crate) async fn note_once(&self, id: Uuid, note: Note, source: &str) -> Result<bool> {
        tracing::info!(workspace = %id, kind = note.kind.as_str(), message = %note.message, "workspace event");
        Ok(self
            .store()
            .insert_event_once(id, now_millis(), &note, source)
            .await?)
    }
}

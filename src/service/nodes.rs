//! The pool of Docker engines ("nodes"): the registry an admin keeps (add,
//! change, cordon, remove), a client per engine, and the heartbeat that
//! says which answer. What a heartbeat's history means lives in
//! `domain::nodes`; this file pings and remembers.
//!
//! The node `local` is the engine Berth started with and cannot be removed.
//! A TLS node's certificates are written from the store to
//! `<data_dir>/nodes/<name>/` (0700, files 0600) when its client is built:
//! the engine client reads them at each handshake.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::NodesConfig;
use crate::domain::nodes::NodeTls;
use crate::domain::nodes::{self, Endpoint, Heartbeat, NodeState, Schedule, LOCAL};
use crate::domain::now_millis;
use crate::engine::{Engine, EngineAddress, EngineInfo};
use crate::store::{NodeRow, Store};

use super::{Result, ServiceError};

/// The pool: cheap to clone, shared by the services that place and run
/// workspaces.
#[derive(Clone)]
pub struct Nodes {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// The engine Berth started with: node `local`.
    local: Engine,
    /// Where TLS nodes' certificates are written.
    dir: PathBuf,
    config: NodesConfig,
    /// The configured types' images, by type: what each heartbeat looks for
    /// on every node.
    images: BTreeMap<String, String>,
    live: Mutex<BTreeMap<String, Live>>,
}

/// What Berth holds of one node between heartbeats.
#[derive(Clone)]
struct Live {
    /// What the client was built from (endpoint and certificate), so a node
    /// removed and added again with another endpoint gets a new client.
    built_from: String,
    /// `Err`: the client could not be built (the message says why).
    engine: std::result::Result<Engine, String>,
    /// The API version was negotiated with this engine.
    negotiated: bool,
    beat: Heartbeat,
    info: Option<EngineInfo>,
    /// The configured images the engine had at its last answer.
    images: BTreeSet<String>,
    /// Where its published ports are reached (as stored at the last sync).
    address: String,
}

/// One node as an admin sees it.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub row: NodeRow,
    pub state: NodeState,
    pub beat: Heartbeat,
    /// The engine's facts at its last answer.
    pub info: Option<EngineInfo>,
    /// Per configured type: whether its image was on the engine at the
    /// last answer (nothing is pulled to find out).
    pub types: BTreeMap<String, bool>,
    /// The configured images it had then.
    pub images: BTreeSet<String>,
    /// Projects whose volume lives here (live or awaiting removal).
    pub projects: i64,
}

/// A node to add.
#[derive(Debug, Clone)]
pub struct NewNode {
    pub name: String,
    pub endpoint: String,
    /// Where its published ports are reached from Berth; empty: the
    /// endpoint's host (a unix socket's engine: 127.0.0.1).
    pub address: String,
    pub labels: BTreeMap<String, String>,
    pub tls: Option<NodeTls>,
}

/// What an admin changes on a node (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct NodeChange {
    pub address: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub cordoned: Option<bool>,
    /// Set by a drain (which cordons the node when it ends).
    pub draining: Option<bool>,
}

fn fingerprint(row: &NodeRow) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(row.endpoint.url());
    if let Some(t) = &row.tls {
        h.update(&t.ca);
        h.update(&t.cert);
        h.update(t.key.expose());
    }
    hex::encode(h.finalize())
}

/// Writes `text` to `path`, readable by Berth alone.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Nodes {
    /// `images`: each configured type's image, by type.
    pub fn new(
        store: Store,
        local: Engine,
        data_dir: &Path,
        config: NodesConfig,
        images: BTreeMap<String, String>,
    ) -> Nodes {
        Nodes {
            inner: Arc::new(Inner {
                store,
                local,
                dir: data_dir.join("nodes"),
                config,
                images,
                live: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Live>> {
        self.inner.live.lock().expect("node map poisoned")
    }

    /// A client for the node as stored (certificates written first).
    fn build(&self, row: &NodeRow) -> std::result::Result<Engine, String> {
        let address = match (&row.endpoint, &row.tls) {
            (Endpoint::Default, _) => return Ok(self.inner.local.clone()),
            (Endpoint::Unix(path), _) => EngineAddress::Unix(path.clone()),
            (e @ Endpoint::Tcp { .. }, None) => EngineAddress::Tcp(e.url()),
            (e @ Endpoint::Tcp { .. }, Some(tls)) => {
                let dir = self.inner.dir.join(&row.name);
                let written = (|| -> std::io::Result<()> {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(&dir)?;
                    write_private(&dir.join("ca.pem"), &tls.ca)?;
                    write_private(&dir.join("cert.pem"), &tls.cert)?;
                    write_private(&dir.join("key.pem"), tls.key.expose())
                })();
                written.map_err(|e| {
                    format!(
                        "cannot write the node's certificates to {}: {e}",
                        dir.display()
                    )
                })?;
                EngineAddress::Tls {
                    url: e.url(),
                    ca: dir.join("ca.pem"),
                    cert: dir.join("cert.pem"),
                    key: dir.join("key.pem"),
                }
            }
        };
        Engine::at(&address).map_err(|e| e.to_string())
    }

    /// The stored nodes with a client each (built for new or changed
    /// rows; rows gone from the store are forgotten).
    async fn sync(&self) -> Result<Vec<NodeRow>> {
        let rows = self.inner.store.nodes().await?;
        let mut built = Vec::new();
        {
            let live = self.live();
            for row in &rows {
                let fp = fingerprint(row);
                // New, changed, or not buildable last time (the client refuses
                // a unix socket that does not exist yet): build again.
                let current = live
                    .get(&row.name)
                    .is_some_and(|l| l.built_from == fp && l.engine.is_ok());
                if !current {
                    built.push((row.clone(), fp));
                }
            }
        }
        let fresh: Vec<(String, Live)> = built
            .into_iter()
            .map(|(row, fp)| {
                let engine = self.build(&row);
                let negotiated = matches!(row.endpoint, Endpoint::Default);
                (
                    row.name.clone(),
                    Live {
                        built_from: fp,
                        engine,
                        negotiated,
                        beat: Heartbeat::default(),
                        info: None,
                        images: BTreeSet::new(),
                        address: row.address.clone(),
                    },
                )
            })
            .collect();
        let mut live = self.live();
        for (name, mut l) in fresh {
            // What the heartbeat saw so far stays (a rebuilt client of a
            // node still unreachable keeps its "since").
            if let Some(old) = live.get(&name) {
                if old.built_from == l.built_from {
                    l.beat = old.beat.clone();
                    l.info = old.info.clone();
                    l.images = old.images.clone();
                }
            }
            live.insert(name, l);
        }
        live.retain(|name, _| rows.iter().any(|r| &r.name == name));
        for row in &rows {
            if let Some(l) = live.get_mut(&row.name) {
                l.address = row.address.clone();
            }
        }
        Ok(rows)
    }

    /// Asks every node whether it answers (ping, then info), all at once,
    /// each bounded by `nodes.heartbeat_timeout_s`.
    pub async fn beat(&self) -> Result<()> {
        let rows = self.sync().await?;
        let timeout = Duration::from_secs(self.inner.config.heartbeat_timeout_s);
        let wanted: BTreeSet<String> = self
            .inner
            .images
            .values()
            .filter(|i| !i.trim().is_empty())
            .cloned()
            .collect();
        let asks = rows.iter().map(|row| {
            let (engine, negotiated) = match self.live().get(&row.name) {
                Some(l) => (l.engine.clone(), l.negotiated),
                None => (Err("not built".to_string()), false),
            };
            let name = row.name.clone();
            let wanted = &wanted;
            async move {
                let outcome = async {
                    let engine = engine?;
                    let engine = if negotiated {
                        engine
                    } else {
                        tokio::time::timeout(timeout, engine.negotiated())
                            .await
                            .map_err(|_| format!("no answer within {}s", timeout.as_secs()))?
                            .map_err(|e| e.to_string())?
                    };
                    let quick = engine.with_timeout(timeout);
                    let info = tokio::time::timeout(timeout, async {
                        quick.ping().await?;
                        let info = quick.info().await?;
                        // Which configured images it has (an inspect each;
                        // a failed one counts as absent).
                        let mut have = BTreeSet::new();
                        for image in wanted.iter() {
                            if quick.image_present(image).await.unwrap_or(false) {
                                have.insert(image.clone());
                            }
                        }
                        Ok::<_, crate::engine::EngineError>((info, have))
                    })
                    .await
                    .map_err(|_| format!("no answer within {}s", timeout.as_secs()))?
                    .map_err(|e| e.to_string())?;
                    Ok::<_, String>((engine, info))
                }
                .await;
                (name, outcome)
            }
        });
        let outcomes = futures_util::future::join_all(asks).await;
        let now = now_millis();
        let mut live = self.live();
        for (name, outcome) in outcomes {
            let Some(l) = live.get_mut(&name) else {
                continue;
            };
            match outcome {
                Ok((engine, (info, images))) => {
                    if !l.negotiated {
                        l.engine = Ok(engine);
                        l.negotiated = true;
                    }
                    l.beat = l.beat.after(now, Ok(()));
                    l.info = Some(info);
                    l.images = images;
                }
                Err(e) => {
                    if l.beat.failing_since.is_none() {
                        tracing::warn!(node = %name, error = %e, "node unreachable");
                    }
                    l.beat = l.beat.after(now, Err(e));
                }
            }
        }
        Ok(())
    }

    /// Beats every `nodes.heartbeat_s` (the first after one interval: the
    /// server beats once before it serves) until `stop` is cancelled.
    pub fn spawn_heartbeat(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let nodes = self.clone();
        let every = Duration::from_secs(self.inner.config.heartbeat_s);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(e) = nodes.beat().await {
                    tracing::warn!(error = %e, "node heartbeat failed");
                    crate::metrics::loop_failed("heartbeat", e.kind());
                }
            }
        })
    }

    /// Follows the other replicas' changes to the nodes (NOTIFY): the pool
    /// is re-read at once rather than at this replica's next heartbeat,
    /// and after the listener reconnected (a notice may have been lost).
    /// Runs until aborted.
    pub fn spawn_follower(&self) -> tokio::task::JoinHandle<()> {
        let nodes = self.clone();
        let mut notices = self.inner.store.coordinator().subscribe();
        tokio::spawn(async move {
            use crate::store::Notice;
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match notices.recv().await {
                    Ok(Notice::Nodes | Notice::Resync) | Err(RecvError::Lagged(_)) => {
                        if let Err(e) = nodes.sync().await {
                            tracing::warn!(error = %e, "re-reading the nodes failed");
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        })
    }

    /// The engine of the node `name`, for an action that needs it there.
    /// A node whose heartbeat fails answers `Unavailable` saying since
    /// when, without trying (a lost host would hold the request for the
    /// client's timeout); one not yet asked is tried.
    pub async fn engine(&self, name: &str) -> Result<Engine> {
        if name == LOCAL {
            return Ok(self.inner.local.clone());
        }
        if !self.live().contains_key(name) {
            self.sync().await?;
        }
        let live = self.live();
        let Some(l) = live.get(name) else {
            return Err(ServiceError::Unavailable(format!(
                "node {name} is not registered (removed?)"
            )));
        };
        if let Some(since) = l.beat.failing_since {
            return Err(ServiceError::Unavailable(format!(
                "node {name} is unreachable since {}: {}",
                crate::domain::rfc3339(since),
                l.beat.error.as_deref().unwrap_or("no answer")
            )));
        }
        l.engine
            .clone()
            .map_err(|e| ServiceError::Unavailable(format!("node {name} cannot be reached: {e}")))
    }

    /// Where the node's published ports are reached from Berth (the local
    /// node: 127.0.0.1).
    pub async fn address(&self, name: &str) -> Result<String> {
        if name == LOCAL {
            return Ok("127.0.0.1".to_string());
        }
        if let Some(l) = self.live().get(name) {
            return Ok(l.address.clone());
        }
        Ok(self.row(name).await?.address)
    }

    /// What Berth last saw of a node, without asking anyone: its address
    /// and since when its heartbeat fails (`None` for `local`, whose
    /// failures fail every request, and for a node not yet seen).
    pub fn seen(&self, name: &str) -> (String, Option<crate::domain::Millis>) {
        if name == LOCAL {
            return ("127.0.0.1".to_string(), None);
        }
        match self.live().get(name) {
            Some(l) => (l.address.clone(), l.beat.failing_since),
            None => (String::new(), None),
        }
    }

    /// The names of the nodes as last synced, `local` first.
    pub async fn names(&self) -> Result<Vec<String>> {
        Ok(self.sync().await?.into_iter().map(|r| r.name).collect())
    }

    fn view(&self, row: NodeRow, projects: &BTreeMap<String, i64>) -> NodeView {
        let (beat, info, images) = self
            .live()
            .get(&row.name)
            .map(|l| (l.beat.clone(), l.info.clone(), l.images.clone()))
            .unwrap_or_default();
        let types = self
            .inner
            .images
            .iter()
            .map(|(t, image)| (t.clone(), images.contains(image)))
            .collect();
        NodeView {
            state: NodeState::of(&beat, row.schedule),
            projects: projects.get(&row.name).copied().unwrap_or(0),
            beat,
            info,
            types,
            images,
            row,
        }
    }

    /// Every node, `local` first, as the last heartbeat saw it.
    pub async fn list(&self) -> Result<Vec<NodeView>> {
        let rows = self.sync().await?;
        let projects = self.inner.store.projects_per_node().await?;
        Ok(rows.into_iter().map(|r| self.view(r, &projects)).collect())
    }

    pub async fn get(&self, name: &str) -> Result<NodeView> {
        self.sync().await?;
        let row = self.row(name).await?;
        let projects = self.inner.store.projects_per_node().await?;
        Ok(self.view(row, &projects))
    }

    async fn row(&self, name: &str) -> Result<NodeRow> {
        self.inner
            .store
            .node(name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no node named {name:?}")))
    }

    /// Adds a node and asks it once, so the answer says whether it is
    /// reachable (a node that is not is added all the same: it may come up
    /// later, and the heartbeat keeps asking).
    pub async fn add(&self, new: NewNode) -> Result<NodeView> {
        let invalid = ServiceError::Invalid;
        nodes::check_name(&new.name).map_err(invalid)?;
        if new.name == LOCAL {
            return Err(ServiceError::Conflict(
                "the node 'local' is the engine Berth starts with; it always exists".into(),
            ));
        }
        let endpoint = Endpoint::parse(&new.endpoint).map_err(ServiceError::Invalid)?;
        let address = match (new.address.trim(), &endpoint) {
            ("", Endpoint::Tcp { host, .. }) => host.clone(),
            ("", _) => "127.0.0.1".to_string(),
            (a, _) => a.to_string(),
        };
        nodes::check_address(&address).map_err(ServiceError::Invalid)?;
        nodes::check_labels(&new.labels).map_err(ServiceError::Invalid)?;
        match (&endpoint, &new.tls) {
            (Endpoint::Unix(_), Some(_)) => {
                return Err(ServiceError::Invalid(
                    "TLS certificates are for tcp:// endpoints, not a unix socket".into(),
                ))
            }
            (_, Some(tls)) => check_pem(tls)?,
            _ => {}
        }
        let row = NodeRow {
            name: new.name.clone(),
            endpoint,
            address,
            labels: new.labels,
            tls: new.tls,
            schedule: Schedule::default(),
            created_at: now_millis(),
        };
        self.inner.store.insert_node(&row).await?;
        self.inner.store.notify(crate::store::Notice::Nodes).await;
        self.beat().await?;
        self.get(&new.name).await
    }

    /// Changes a node's address, labels or cordon.
    pub async fn change(&self, name: &str, change: NodeChange) -> Result<NodeView> {
        let mut row = self.row(name).await?;
        if let Some(a) = change.address {
            let a = a.trim().to_string();
            nodes::check_address(&a).map_err(ServiceError::Invalid)?;
            if name == LOCAL && a != "127.0.0.1" {
                // Berth reaches the local engine's ports on loopback only.
                return Err(ServiceError::Invalid(
                    "the local node's ports are reached on 127.0.0.1 only".into(),
                ));
            }
            row.address = a;
        }
        if let Some(l) = change.labels {
            nodes::check_labels(&l).map_err(ServiceError::Invalid)?;
            row.labels = l;
        }
        if let Some(c) = change.cordoned {
            row.schedule.cordoned = c;
            if !c {
                row.schedule.draining = false;
            }
        }
        if let Some(d) = change.draining {
            row.schedule.draining = d;
        }
        if !self.inner.store.update_node(&row).await? {
            return Err(ServiceError::NotFound(format!("no node named {name:?}")));
        }
        self.inner.store.notify(crate::store::Notice::Nodes).await;
        self.get(name).await
    }

    /// Removes a node that holds no project (its certificates go too).
    pub async fn remove(&self, name: &str) -> Result<()> {
        if name == LOCAL {
            return Err(ServiceError::Conflict(
                "the node 'local' is the engine Berth starts with; it cannot be removed (cordon it instead)".into(),
            ));
        }
        let view = self.get(name).await?;
        if !self.inner.store.delete_node_if_empty(name).await? {
            return Err(ServiceError::Conflict(format!(
                "node {name} holds {} project(s): move them to another node or delete them first",
                view.projects.max(1)
            )));
        }
        self.live().remove(name);
        let _ = std::fs::remove_dir_all(self.inner.dir.join(name));
        self.inner.store.notify(crate::store::Notice::Nodes).await;
        Ok(())
    }
}

/// The certificates look like PEM (what they certify is the engine's to
/// judge at the first handshake, whose error the node's status shows).
fn check_pem(tls: &NodeTls) -> Result<()> {
    for (what, text, marker) in [
        ("tls.ca", tls.ca.as_str(), "CERTIFICATE"),
        ("tls.cert", tls.cert.as_str(), "CERTIFICATE"),
        ("tls.key", tls.key.expose(), "PRIVATE KEY"),
    ] {
        if !(text.contains("-----BEGIN ") && text.contains(marker)) || text.len() > 64 * 1024 {
            return Err(ServiceError::Invalid(format!(
                "{what}: expected PEM text (-----BEGIN ... {marker}-----), as in the files docker uses (ca.pem, cert.pem, key.pem)"
            )));
        }
    }
    Ok(())
}

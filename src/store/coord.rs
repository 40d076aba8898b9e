//! What several Berth processes on one PostgreSQL database coordinate
//! with: advisory locks, held by a database session of this process's own,
//! and LISTEN/NOTIFY. On SQLite there is one process per database (`berth
//! serve` locks its data directory), so a lock is always granted and a
//! notice goes to this process alone.
//!
//! Locks are session-level (`pg_try_advisory_lock`) on one connection kept
//! for them, not a pooled one: an operation may hold its lock for minutes
//! (a restore), and a transaction held open that long would pin a pooled
//! connection each. Waiting is polling with backoff, so the session never
//! blocks on one key while another is asked for. If that session is lost,
//! PostgreSQL releases its locks: the session is opened again and every
//! lock still held here is taken again; one that another replica took
//! meanwhile is counted (`berth_lock_lost_total`) and logged.
//!
//! Notices are read by a `PgListener` that reconnects; after a reconnect
//! every subscriber is told to re-read ([`Notice::Resync`]), since notices
//! sent meanwhile are lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Connection;
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use super::{Result, StoreError};

/// The one channel Berth's notices travel on.
const CHANNEL: &str = "berth";

/// What a lock is for. Different keys never wait for each other (but two
/// keys may, rarely, share a hash: then they only serialise).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LockKey {
    /// A workspace's or a project's lifecycle (they share the id space).
    Workspace(Uuid),
    /// A job: one run at a time across replicas.
    Job(String),
    /// Taking care of what gone replicas left under way.
    Reaper,
    /// A node's drain.
    Drain(String),
    /// The failed-login record of one key (an email, an address).
    Login(String),
    /// A user's quota: what they take is checked and taken under it.
    Quota(Uuid),
    /// The site's caps on what all running workspaces reserve.
    Site,
    /// A node's room: what starts there reserve is checked and taken
    /// under it.
    Node(String),
}

impl LockKey {
    /// The two 32-bit halves `pg_try_advisory_lock(int, int)` takes: a
    /// class, and the key's hash within it.
    fn pair(&self) -> (i32, i32) {
        use sha2::{Digest, Sha256};
        let (class, bytes): (i32, Vec<u8>) = match self {
            LockKey::Workspace(id) => (0x6265_0001, id.as_bytes().to_vec()),
            LockKey::Job(name) => (0x6265_0002, name.as_bytes().to_vec()),
            LockKey::Reaper => (0x6265_0003, Vec::new()),
            LockKey::Drain(node) => (0x6265_0004, node.as_bytes().to_vec()),
            LockKey::Login(key) => (0x6265_0005, key.as_bytes().to_vec()),
            LockKey::Quota(id) => (0x6265_0006, id.as_bytes().to_vec()),
            LockKey::Site => (0x6265_0007, Vec::new()),
            LockKey::Node(node) => (0x6265_0008, node.as_bytes().to_vec()),
        };
        let h = Sha256::digest(&bytes);
        (class, i32::from_be_bytes([h[0], h[1], h[2], h[3]]))
    }
}

/// Something another replica (or this one) changed that a replica's
/// memory may have to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The nodes changed (added, removed, cordoned, relabelled).
    Nodes,
    /// A recovery restart was scheduled: its time may come sooner than the
    /// one waited for.
    Recovery,
    /// Notices may have been lost (the listener reconnected): re-read all.
    Resync,
}

impl Notice {
    fn encode(&self) -> &'static str {
        match self {
            Notice::Nodes => "nodes",
            Notice::Recovery => "recovery",
            Notice::Resync => "resync",
        }
    }

    fn decode(s: &str) -> Option<Notice> {
        match s {
            "nodes" => Some(Notice::Nodes),
            "recovery" => Some(Notice::Recovery),
            "resync" => Some(Notice::Resync),
            _ => None,
        }
    }
}

/// The coordination handle a store carries: cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<CoordInner>,
}

struct CoordInner {
    /// `None` on SQLite.
    url: Option<String>,
    /// The lock session's task, started at the first lock.
    session: Mutex<Option<mpsc::UnboundedSender<Ask>>>,
    notices: broadcast::Sender<Notice>,
    /// Whether the listener was started (at the first subscription).
    listening: Mutex<bool>,
}

enum Ask {
    Try((i32, i32), oneshot::Sender<Result<bool>>),
    Release((i32, i32)),
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("shared", &self.inner.url.is_some())
            .finish()
    }
}

/// A lock held until dropped.
pub struct HeldLock {
    release: Option<(mpsc::UnboundedSender<Ask>, (i32, i32))>,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Some((tx, pair)) = self.release.take() {
            // The session's task is gone only with the runtime: then so
            // is the session, and with it the lock.
            let _ = tx.send(Ask::Release(pair));
        }
    }
}

impl Coordinator {
    /// For a store at `url`: shared coordination on PostgreSQL, this
    /// process alone otherwise. Nothing is connected until it is used.
    pub(super) fn new(url: &str) -> Coordinator {
        let shared = url.starts_with("postgres:") || url.starts_with("postgresql:");
        Coordinator {
            inner: Arc::new(CoordInner {
                url: shared.then(|| url.to_string()),
                session: Mutex::new(None),
                notices: broadcast::channel(1024).0,
                listening: Mutex::new(false),
            }),
        }
    }

    /// Whether other processes may share this database (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.inner.url.is_some()
    }

    fn session(&self) -> Option<mpsc::UnboundedSender<Ask>> {
        let url = self.inner.url.clone()?;
        let mut s = self.inner.session.lock().expect("lock session poisoned");
        if s.as_ref().is_none_or(|tx| tx.is_closed()) {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(lock_session(url, rx));
            *s = Some(tx);
        }
        s.clone()
    }

    /// Takes the lock if no other process holds it.
    pub async fn try_lock(&self, key: &LockKey) -> Result<Option<HeldLock>> {
        let Some(tx) = self.session() else {
            return Ok(Some(HeldLock { release: None }));
        };
        let pair = key.pair();
        let (reply, answer) = oneshot::channel();
        tx.send(Ask::Try(pair, reply))
            .map_err(|_| StoreError::Coordination("the lock session ended".into()))?;
        let got = answer
            .await
            .map_err(|_| StoreError::Coordination("the lock session ended".into()))??;
        Ok(got.then(|| HeldLock {
            release: Some((tx, pair)),
        }))
    }

    /// Takes the lock, waiting while another process holds it (asking
    /// again every 10 ms at first, every 200 ms at most). An error when
    /// the database does not answer.
    pub async fn lock(&self, key: &LockKey) -> Result<HeldLock> {
        let mut wait = Duration::from_millis(10);
        let mut failures = 0u32;
        loop {
            match self.try_lock(key).await {
                Ok(Some(held)) => return Ok(held),
                Ok(None) => {}
                // The session reconnects by itself: a few tries before
                // the caller hears of it.
                Err(e) => {
                    failures += 1;
                    if failures >= 5 {
                        return Err(e);
                    }
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(200));
        }
    }

    /// Tells every replica (this one included) about a change. Best
    /// effort: a lost notice is made up by the re-read after a reconnect
    /// and by the periodic reads each follower also does.
    pub async fn notify(&self, pool: &sqlx::AnyPool, notice: Notice) {
        if self.inner.url.is_none() {
            let _ = self.inner.notices.send(notice);
            return;
        }
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(notice.encode())
            .execute(pool)
            .await
        {
            tracing::warn!(error = %e, ?notice, "could not notify the other replicas");
            // This replica at least.
            let _ = self.inner.notices.send(notice);
        }
    }

    /// Notices as they come (from the first call on).
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        let rx = self.inner.notices.subscribe();
        if let Some(url) = self.inner.url.clone() {
            let mut started = self.inner.listening.lock().expect("listener poisoned");
            if !*started {
                *started = true;
                tokio::spawn(listen(url, self.inner.notices.clone()));
            }
        }
        rx
    }
}

/// The lock session: one connection, asked one thing at a time.
async fn lock_session(url: String, mut asks: mpsc::UnboundedReceiver<Ask>) {
    let mut held: HashMap<(i32, i32), u32> = HashMap::new();
    let mut conn: Option<sqlx::PgConnection> = None;
    while let Some(ask) = asks.recv().await {
        let (pair, reply) = match ask {
            Ask::Release(pair) => {
                match held.get_mut(&pair) {
                    Some(n) if *n > 1 => *n -= 1,
                    Some(_) => {
                        held.remove(&pair);
                        // Without a session the lock went with it.
                        if let Some(c) = conn.as_mut() {
                            if sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                                .bind(pair.0)
                                .bind(pair.1)
                                .execute(&mut *c)
                                .await
                                .is_err()
                            {
                                conn = None;
                            }
                        }
                    }
                    None => {}
                }
                continue;
            }
            Ask::Try(pair, reply) => (pair, reply),
        };
        if conn.is_none() {
            match sqlx::PgConnection::connect(&url).await {
                Ok(mut c) => {
                    // Locks held here were released with the old session.
                    for held_pair in held.keys() {
                        match try_advisory(&mut c, *held_pair).await {
                            Ok(true) => {}
                            Ok(false) => {
                                metrics::counter!("berth_lock_lost_total").increment(1);
                                tracing::error!(
                                    key = ?held_pair,
                                    "a lock held here was taken by another replica while the database session was lost"
                                );
                            }
                            Err(e) => tracing::warn!(error = %e, "re-taking a lock failed"),
                        }
                    }
                    conn = Some(c);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the lock session");
                    let _ = reply.send(Err(StoreError::Database(e)));
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        match try_advisory(c, pair).await {
            Ok(got) => {
                if got {
                    *held.entry(pair).or_default() += 1;
                }
                let _ = reply.send(Ok(got));
            }
            Err(e) => {
                conn = None;
                let _ = reply.send(Err(StoreError::Database(e)));
            }
        }
    }
}

async fn try_advisory(
    c: &mut sqlx::PgConnection,
    pair: (i32, i32),
) -> std::result::Result<bool, sqlx::Error> {
    sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1, $2)")
        .bind(pair.0)
        .bind(pair.1)
        .fetch_one(c)
        .await
}

/// Follows the channel for as long as the process runs.
async fn listen(url: String, out: broadcast::Sender<Notice>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for the other replicas' notices");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed");
            tokio::time::sleep(backoff).await;
            continue;
        }
        // Whatever was said before this connection listened is unknown.
        let _ = out.send(Notice::Resync);
        backoff = Duration::from_millis(200);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    if let Some(notice) = Notice::decode(n.payload()) {
                        let _ = out.send(notice);
                    }
                }
                // Reconnected: notices may have been lost meanwhile.
                Ok(None) => {
                    let _ = out.send(Notice::Resync);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the notice listener failed; listening again");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_survive_the_wire() {
        for n in [Notice::Nodes, Notice::Recovery, Notice::Resync] {
            assert_eq!(Notice::decode(n.encode()), Some(n));
        }
        assert_eq!(Notice::decode("other"), None);
    }

    #[test]
    fn keys_of_different_kinds_differ() {
        let id = Uuid::new_v4();
        assert_ne!(
            LockKey::Workspace(id).pair(),
            LockKey::Job(id.to_string()).pair()
        );
        assert_eq!(LockKey::Workspace(id).pair(), LockKey::Workspace(id).pair());
        assert_ne!(
            LockKey::Job("a".into()).pair(),
            LockKey::Job("b".into()).pair()
        );
    }
}

//! The Berth processes serving from one database ("replicas"): this
//! one's identity and heartbeat, the others as the `replicas` table shows
//! them, the locks they share and the notices they send each other.
//!
//! On SQLite there is exactly one (`berth serve` locks its data
//! directory): its locks are always granted and its notices stay in the
//! process. On PostgreSQL any number serve at once; what one of them needs
//! alone — a workspace's lifecycle, a job's run, a node's drain — it holds
//! a PostgreSQL advisory lock for (`store::coord`), and what it must tell
//! the others (nodes changed, a recovery scheduled) goes by NOTIFY.
//!
//! A replica whose heartbeat stops is *gone* after `replicas.dead_after_s`
//! (`domain::replicas`); another takes care of what it left under way
//! (`jobs::Scheduler::reap`). A replica that finds its own row reaped was
//! taken for gone while it still ran (frozen, or cut off from the
//! database): its work was failed and cleaned up under it, so it stops
//! serving at once rather than carry on as if nothing happened.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use super::{Result, ServiceError};
use crate::domain::now_millis;
use crate::domain::replicas::{self, Joining, Replica, ReplicaPolicy, ReplicaState};
use crate::store::{HeldLock, LockKey, Notice, Store};

/// This replica and its view of the others: cheap to clone.
#[derive(Clone)]
pub struct Replicas {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    me: Uuid,
    policy: ReplicaPolicy,
    /// This replica's row once registered.
    row: Mutex<Option<Replica>>,
    /// Cancelled when the others took this replica for gone.
    fenced: tokio_util::sync::CancellationToken,
    /// Since when every heartbeat of this replica has been written (none
    /// since its last failure: `None`). A replica judges others gone only
    /// after beating without fail for `dead_after_s` itself: after the
    /// database was out of reach for everyone, nobody takes the others for
    /// gone before they had the time to beat again.
    beating_since: Mutex<Option<std::time::Instant>>,
}

/// What a replica brings when it registers.
#[derive(Debug, Clone)]
pub struct ReplicaStart {
    /// Where it serves, for people (`host:port`).
    pub name: String,
    /// The ID of the engine it calls `local`.
    pub engine_id: String,
    /// The id of its backup directory.
    pub archive_dir: String,
    /// Whether archives also go to remote storage.
    pub remote_archives: bool,
    /// The `berth.instance` label it manages.
    pub instance: String,
}

impl Replicas {
    pub fn new(store: Store, policy: ReplicaPolicy) -> Replicas {
        Replicas {
            inner: Arc::new(Inner {
                store,
                me: Uuid::new_v4(),
                policy,
                row: Mutex::new(None),
                fenced: Default::default(),
                beating_since: Mutex::new(None),
            }),
        }
    }

    /// This replica's id (new at every start).
    pub fn id(&self) -> Uuid {
        self.inner.me
    }

    pub fn policy(&self) -> &ReplicaPolicy {
        &self.inner.policy
    }

    /// Whether other replicas may share the database (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.inner.store.is_shared()
    }

    /// Takes a lock shared with every replica, waiting while another
    /// holds it.
    pub async fn lock(&self, key: &LockKey) -> Result<HeldLock> {
        Ok(self.inner.store.coordinator().lock(key).await?)
    }

    /// Takes a shared lock if nobody holds it.
    pub async fn try_lock(&self, key: &LockKey) -> Result<Option<HeldLock>> {
        Ok(self.inner.store.coordinator().try_lock(key).await?)
    }

    /// Tells every replica (this one too).
    pub async fn notify(&self, notice: Notice) {
        self.inner.store.notify(notice).await
    }

    /// The notices from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Notice> {
        self.inner.store.coordinator().subscribe()
    }

    /// Cancelled when the other replicas took this one for gone.
    pub fn fenced(&self) -> tokio_util::sync::CancellationToken {
        self.inner.fenced.clone()
    }

    /// Joins the replicas: refused (with what to change) when this one
    /// manages another instance than the database's, calls another engine
    /// `local` than the live replicas, or cannot reach their archives.
    pub async fn register(&self, start: ReplicaStart) -> Result<()> {
        let store = &self.inner.store;
        let instance = store.installation_fact("instance", &start.instance).await?;
        if instance != start.instance {
            return Err(ServiceError::Conflict(format!(
                "this database belongs to the instance {instance:?}, and this Berth is configured as {:?} (instance): every replica of one installation must use the same instance label, or each would take the other's containers for strangers",
                start.instance
            )));
        }
        let now = now_millis();
        let all = store.replicas().await?;
        let joining = Joining {
            archive_dir: start.archive_dir.clone(),
            engine_id: start.engine_id.clone(),
            remote_archives: start.remote_archives,
        };
        replicas::check_join(&joining, &all, self.inner.me, now, &self.inner.policy)
            .map_err(ServiceError::Conflict)?;
        let row = Replica {
            id: self.inner.me,
            name: start.name,
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: i64::from(std::process::id()),
            archive_dir: start.archive_dir,
            engine_id: start.engine_id,
            started_at: now,
            heartbeat_at: now,
            stopped_at: None,
            reaped_at: None,
            reaped_by: None,
        };
        store.insert_replica(&row).await?;
        *self.inner.row.lock().expect("replica row poisoned") = Some(row);
        // Its first heartbeat.
        *self.inner.beating_since.lock().expect("beat poisoned") = Some(std::time::Instant::now());
        Ok(())
    }

    /// Whether this replica registered (a test's Berth may not have).
    pub fn registered(&self) -> bool {
        self.inner
            .row
            .lock()
            .expect("replica row poisoned")
            .is_some()
    }

    /// Records a heartbeat; a reaped row fences this replica.
    pub async fn beat(&self) -> Result<()> {
        if !self.registered() {
            return Ok(());
        }
        let written = self
            .inner
            .store
            .replica_beat(self.inner.me, now_millis())
            .await;
        {
            let mut since = self.inner.beating_since.lock().expect("beat poisoned");
            match &written {
                Ok(true) => {
                    since.get_or_insert_with(std::time::Instant::now);
                }
                _ => *since = None,
            }
        }
        if !written? && !self.inner.fenced.is_cancelled() {
            tracing::error!(
                replica = %self.inner.me,
                "the other replicas took this one for gone (its heartbeat stopped for longer than replicas.dead_after_s) and took over its work: it stops serving"
            );
            self.inner.fenced.cancel();
        }
        Ok(())
    }

    /// Beats every `replicas.heartbeat_s` until `stop` is cancelled.
    pub fn spawn_heartbeat(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let replicas = self.clone();
        let every = Duration::from_secs(self.inner.policy.heartbeat_s.max(1));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(e) = replicas.beat().await {
                    crate::metrics::loop_failed("replica_heartbeat", e.kind());
                    tracing::warn!(error = %e, "the replica heartbeat failed");
                }
            }
        })
    }

    /// A clean stop: the others need not wait out the heartbeat.
    pub async fn stopped(&self) {
        if !self.registered() {
            return;
        }
        if let Err(e) = self
            .inner
            .store
            .replica_stopped(self.inner.me, now_millis())
            .await
        {
            tracing::warn!(error = %e, "recording this replica's stop failed");
        }
    }

    /// Every replica on record with its state, oldest first.
    pub async fn list(&self) -> Result<Vec<(Replica, ReplicaState)>> {
        let now = now_millis();
        Ok(self
            .inner
            .store
            .replicas()
            .await?
            .into_iter()
            .map(|r| {
                let state = r.state(now, &self.inner.policy);
                (r, state)
            })
            .collect())
    }

    /// The ids of the live replicas (this one included once registered).
    pub async fn live(&self) -> Result<Vec<Uuid>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|(r, s)| *s == ReplicaState::Live || r.id == self.inner.me)
            .map(|(r, _)| r.id)
            .collect())
    }

    /// The replicas whose unfinished work is to be taken care of now:
    /// none until this replica has itself been beating for
    /// `dead_after_s` (see `beating_since`).
    pub async fn to_reap(&self) -> Result<Vec<Replica>> {
        let judging = self
            .inner
            .beating_since
            .lock()
            .expect("beat poisoned")
            .is_some_and(|t| t.elapsed().as_secs() >= self.inner.policy.dead_after_s);
        if !judging {
            return Ok(Vec::new());
        }
        let all = self.inner.store.replicas().await?;
        let now = now_millis();
        let ids = replicas::to_reap(&all, self.inner.me, now, &self.inner.policy);
        for id in replicas::to_forget(&all, now) {
            self.inner.store.forget_replica(id).await?;
        }
        Ok(all.into_iter().filter(|r| ids.contains(&r.id)).collect())
    }

    /// Records that this replica took care of `id`'s unfinished work.
    pub async fn mark_reaped(&self, id: Uuid) -> Result<bool> {
        Ok(self
            .inner
            .store
            .mark_reaped(id, self.inner.me, now_millis())
            .await?)
    }
}

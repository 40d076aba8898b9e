//! What a replica left under way when it went (killed, frozen, cut off
//! from the database, or stopped while a request was still writing):
//! another replica fails the backups it was writing, removes the volumes
//! it was filling and its helper containers, marks its job runs and
//! background operations interrupted, and records that it did
//! (`replicas.reaped_at`). Every replica looks every heartbeat; one at a
//! time does it (the reaper's lock), and each step can be repeated.
//!
//! At a replica's start on SQLite, no other serves (the data directory is
//! locked), so whatever is under way is an earlier run's and is taken
//! care of at once, as a single server always did.

use std::time::Duration;

/// How often a replica sweeps its own backup directory.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

use uuid::Uuid;

use super::Scheduler;
use crate::domain::replicas::Replica;
use crate::domain::{now_millis, rfc3339};
use crate::service::backups::Reaped;
use crate::service::Result;
use crate::store::{LockKey, Whose};

impl Scheduler {
    /// Takes care of `whose` unfinished work; `live`: the replicas whose
    /// temporary files and helpers stay.
    async fn reap(&self, whose: Whose, why: &str, live: &[Uuid]) -> Result<Reaped> {
        let done = self.backups.reap(whose, why, live).await?;
        let now = now_millis();
        let store = self.berth.core().store();
        let runs = store.interrupt_job_runs(whose, now, why).await?;
        let ops = store.interrupt_progress(whose, now, why).await?;
        if done != Reaped::default() || runs > 0 || ops > 0 {
            tracing::warn!(
                ?whose,
                backups = done.backups,
                volumes = done.volumes,
                helpers = done.helpers,
                files = done.files,
                job_runs = runs,
                operations = ops,
                "took care of unfinished work: {why}"
            );
        }
        Ok(done)
    }

    /// At this replica's start (after it registered).
    pub async fn reap_at_start(&self) -> Result<()> {
        let replicas = self.berth.core().replicas();
        let me = replicas.id();
        if replicas.is_shared() {
            // Rows from before replicas were recorded; the gone are taken
            // care of now, and from then on by the reaper's loop.
            let live = replicas.live().await?;
            self.reap(
                Whose::Unowned,
                "interrupted: the server stopped before it finished",
                &live,
            )
            .await?;
            self.reap_gone().await?;
        } else {
            self.reap(
                Whose::AllBut(me),
                "interrupted: the server stopped before it finished",
                &[me],
            )
            .await?;
            for r in replicas.list().await? {
                if r.0.id != me && r.0.reaped_at.is_none() {
                    replicas.mark_reaped(r.0.id).await?;
                }
            }
        }
        Ok(())
    }

    /// Takes care of the replicas that are gone and not yet seen to;
    /// returns how many. Nothing when another replica is at it.
    pub async fn reap_gone(&self) -> Result<usize> {
        let replicas = self.berth.core().replicas();
        let gone = replicas.to_reap().await?;
        if gone.is_empty() {
            return Ok(0);
        }
        let Some(_lock) = replicas.try_lock(&LockKey::Reaper).await? else {
            return Ok(0);
        };
        let live = replicas.live().await?;
        let mut n = 0;
        for r in gone {
            self.reap(Whose::Of(r.id), &why_gone(&r), &live).await?;
            if replicas.mark_reaped(r.id).await? {
                metrics::counter!("berth_replicas_reaped_total").increment(1);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Looks for gone replicas every `replicas.heartbeat_s` until `stop`;
    /// every ten minutes, also for archives in this replica's backup
    /// directory whose backup another replica deleted, and (with
    /// `backups.remote.keep_local`) for archives to evict from it: each
    /// replica keeps its own directory, which the others may not reach.
    pub fn spawn_reaper(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let scheduler = self.clone();
        let every = Duration::from_secs(self.berth.core().replicas().policy().heartbeat_s.max(1));
        tokio::spawn(async move {
            let mut swept = std::time::Instant::now();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(e) = scheduler.reap_gone().await {
                    crate::metrics::loop_failed("reaper", e.kind());
                    tracing::warn!(error = %e, "taking care of gone replicas failed");
                }
                if swept.elapsed() >= SWEEP_EVERY {
                    swept = std::time::Instant::now();
                    let swept_now = async {
                        scheduler.backups.sweep_local_archives().await?;
                        scheduler.backups.evict_local(false).await
                    };
                    if let Err(e) = swept_now.await {
                        crate::metrics::loop_failed("reaper", e.kind());
                        tracing::warn!(error = %e, "sweeping this replica's archives failed");
                    }
                }
            }
        })
    }
}

/// What the gone replica's unfinished work is marked with.
fn why_gone(r: &Replica) -> String {
    match r.stopped_at {
        Some(at) => format!(
            "interrupted: replica {} stopped at {} before it finished",
            r.name,
            rfc3339(at)
        ),
        None => format!(
            "interrupted: replica {} stopped answering (last heartbeat at {})",
            r.name,
            rfc3339(r.heartbeat_at)
        ),
    }
}

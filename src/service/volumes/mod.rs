//! Project volumes as a whole: clone into a new volume and switch to it
//! only when complete (an interrupted one is removed at the next start:
//! `volume_ops`), measure a volume, and move a project to another node the
//! same way (its volume streamed from one engine into the other, both read
//! back and compared before the project switches), one at a time for a
//! drain. How the bytes move (the host directory or the engine) is `io`.
//! Backups and restores, which need an archive, are the `Backups` service,
//! built on this one.

mod copy;
pub(super) mod io;
mod moves;

use crate::store::VolumeOpKind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::backup::{self, ArchiveError};
use crate::config::Config;
use crate::domain::{now_millis, Project, User};
use crate::engine::Engine;
use crate::service::{Berth, Result, ServiceError};
use crate::store::{Store, VolumeOp};
use io::Access;

/// How long a volume size stays cached.
const SIZE_TTL: Duration = Duration::from_secs(10);

/// Cached volume sizes, by volume name.
#[derive(Default)]
struct SizeCache(HashMap<String, (Instant, u64)>);

/// Runs archive work on a blocking thread.
pub(in crate::service) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, ArchiveError> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Internal(format!("archive task failed: {e}")))?
        .map_err(Into::into)
}

/// Where a clone goes.
#[derive(Debug, Clone)]
pub enum CloneTarget {
    Existing(Uuid),
    /// A new project of this name, made only once the copy is complete.
    New {
        name: String,
    },
}

/// What a clone did.
#[derive(Debug, Clone)]
pub struct Cloned {
    pub project: Project,
    pub skipped: backup::Skipped,
}

/// What a move did.
#[derive(Debug, Clone)]
pub struct Moved {
    pub project: Project,
    pub from: String,
    pub previous_volume: String,
    /// Entries in the volume, and the digest both sides had.
    pub entries: u64,
    pub digest: String,
    /// Workspaces stopped for the move and started again on the target.
    pub restarted: Vec<Uuid>,
    pub seconds: f64,
}

/// Project volumes (see the module's doc).
#[derive(Clone)]
pub struct Volumes {
    inner: Arc<Inner>,
}

struct Inner {
    berth: Berth,
    /// Recently computed volume sizes.
    sizes: Mutex<SizeCache>,
}

impl Volumes {
    pub fn new(berth: Berth) -> Volumes {
        Volumes {
            inner: Arc::new(Inner {
                berth,
                sizes: Mutex::new(SizeCache::default()),
            }),
        }
    }

    pub(in crate::service) fn berth(&self) -> &Berth {
        &self.inner.berth
    }

    pub(in crate::service) fn store(&self) -> &Store {
        self.inner.berth.core().store()
    }

    /// The engine of the node `node` (a project's volume lives on one).
    pub(in crate::service) async fn engine_on(&self, node: &str) -> Result<Engine> {
        self.inner.berth.core().engine_on(node).await
    }

    pub fn config(&self) -> &Config {
        self.inner.berth.core().config()
    }

    /// The record of a `kind` operation filling `volume` on `node` for
    /// `project_id`, by this replica, starting now (what `volume_ops`
    /// holds until it completes, so an interrupted one is cleaned up).
    pub(in crate::service) fn volume_op(
        &self,
        kind: VolumeOpKind,
        project_id: Uuid,
        volume: &str,
        node: &str,
        new_project: bool,
    ) -> VolumeOp {
        VolumeOp {
            id: Uuid::new_v4(),
            kind,
            project_id,
            volume: volume.to_string(),
            node: node.to_string(),
            new_project,
            started_at: now_millis(),
            replica: Some(self.berth().core().replicas().id()),
        }
    }
}

impl Volumes {
    /// Running containers of the workspaces on a project (each on its
    /// node; a node that does not answer is `Unavailable`: what runs there
    /// cannot be known).
    pub(in crate::service) async fn running_on(
        &self,
        project: &Project,
    ) -> Result<Vec<(Uuid, String)>> {
        let mut out = Vec::new();
        for ws in self.store().workspaces_on_project(project.id).await? {
            if let Some(c) = self
                .berth()
                .core()
                .engine_of(&ws)
                .await?
                .inspect_container(&ws.container_name())
                .await?
            {
                if c.running {
                    out.push((ws.id, c.id));
                }
            }
        }
        Ok(out)
    }

    /// Points a project at another volume: containers that mount the old
    /// one are removed (they are recreated on the new one at start; the
    /// caller has stopped them), and the old volume is left for the cleanup
    /// job's retention period.
    pub(in crate::service) async fn switch_project_volume(
        &self,
        project: &Project,
        new_volume: &str,
    ) -> Result<()> {
        for ws in self.store().workspaces_on_project(project.id).await? {
            let _wg = self.berth().core().lock_workspace(ws.id).await?;
            self.berth()
                .core()
                .engine_of(&ws)
                .await?
                .remove_container(&ws.container_name())
                .await?;
        }
        self.store()
            .set_project_volume(project.id, new_volume, now_millis())
            .await?;
        self.inner
            .sizes
            .lock()
            .expect("sizes poisoned")
            .0
            .remove(&project.volume_name);
        Ok(())
    }

    /// Refuses to switch a project to the volume `op` filled when the
    /// operation is no longer recorded: the other replicas took this one
    /// for gone, and removed that volume as a partial copy.
    pub(in crate::service) async fn still_ours(&self, op: &VolumeOp) -> Result<()> {
        if self.store().volume_op_exists(op.id).await? {
            return Ok(());
        }
        Err(ServiceError::Conflict(format!(
            "the {} was interrupted: the other replicas took this one for gone and removed its partial volume",
            op.kind
        )))
    }

    /// The apparent size of a project's data (as `du -sb`), cached briefly.
    pub async fn volume_size(&self, user: &User, project_id: Uuid) -> Result<u64> {
        let project = self.berth().core().project(user, project_id).await?;
        if let Some((at, size)) = self
            .inner
            .sizes
            .lock()
            .expect("sizes poisoned")
            .0
            .get(&project.volume_name)
        {
            if at.elapsed() < SIZE_TTL {
                return Ok(*size);
            }
        }
        self.measure_project(&project).await
    }

    /// Measures a project's volume now and records the size (what storage
    /// quotas count until the next measurement).
    pub(crate) async fn measure_project(&self, project: &Project) -> Result<u64> {
        let size = match self.access(&project.node, &project.volume_name).await? {
            Access::Host(dir) => blocking(move || backup::dir_size(&dir)).await?,
            Access::Engine(e) => self.size_via_engine(&e, &project.volume_name).await?,
        };
        self.inner
            .sizes
            .lock()
            .expect("sizes poisoned")
            .0
            .insert(project.volume_name.clone(), (Instant::now(), size));
        self.store()
            .set_project_size(project.id, size, now_millis())
            .await?;
        Ok(size)
    }
}

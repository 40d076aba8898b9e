//! Recovery restarts waiting out their backoff (`recoveries`), and the
//! progress of long background operations (`progress`: a node's drain):
//! state that every replica reads, so that any of them answers for, or
//! carries on, what another began.
//!
//! A drain's and an image pull's progress are stored as row formats of
//! their own (`DrainRow`, `PullRow`, version 1), not the API's shape.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

use super::{get_uuid, Result, Store, StoreError, Whose};
use crate::domain::images::{Layer, PullProgress, PullState};
use crate::domain::nodes::DrainProgress;
use crate::domain::Millis;

/// The newest drain row this Berth reads and the one it writes.
const DRAIN_VERSION: u32 = 1;

/// `progress.body` of a drain.
#[derive(Debug, Serialize, Deserialize)]
struct DrainRow {
    v: u32,
    total: usize,
    current: Option<Uuid>,
    moved: Vec<(Uuid, String, f64)>,
    failed: Vec<(Uuid, String)>,
}

/// The newest pull row this Berth reads and the one it writes.
const PULL_VERSION: u32 = 1;

/// `progress.body` of an image pull.
#[derive(Debug, Serialize, Deserialize)]
struct PullRow {
    v: u32,
    image: String,
    state: String,
    layers: std::collections::BTreeMap<String, LayerRow>,
    status: String,
    error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LayerRow {
    status: String,
    current: u64,
    total: Option<u64>,
    done: bool,
}

fn drain_body(d: &DrainProgress) -> String {
    serde_json::to_string(&DrainRow {
        v: DRAIN_VERSION,
        total: d.total,
        current: d.current,
        moved: d.moved.clone(),
        failed: d.failed.clone(),
    })
    .expect("a drain row serialises")
}

/// A recovery restart due at `due_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryDue {
    pub workspace_id: Uuid,
    pub due_at: Millis,
    pub attempt: u32,
    /// What failed, as the events say it.
    pub failure: String,
    pub scheduled_by: Uuid,
}

/// A background operation's progress as stored: `body` is the
/// operation's own JSON (see its service).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProgressRow {
    pub kind: String,
    pub name: String,
    pub replica: Uuid,
    pub started_at: Millis,
    pub updated_at: Millis,
    pub finished_at: Option<Millis>,
    /// Why it ended unfinished.
    pub interrupted: Option<String>,
    pub body: String,
}

impl Store {
    /// Schedules (or moves) a workspace's recovery restart.
    pub async fn schedule_recovery(&self, r: &RecoveryDue) -> Result<()> {
        sqlx::query(
            "INSERT INTO recoveries (workspace_id, due_at, attempt, failure, scheduled_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (workspace_id) DO UPDATE SET \
             due_at = excluded.due_at, attempt = excluded.attempt, failure = excluded.failure, \
             scheduled_by = excluded.scheduled_by",
        )
        .bind(r.workspace_id.to_string())
        .bind(r.due_at)
        .bind(i64::from(r.attempt))
        .bind(&r.failure)
        .bind(r.scheduled_by.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The workspace's scheduled restart, if any.
    pub async fn recovery_due(&self, id: Uuid) -> Result<Option<RecoveryDue>> {
        let row = sqlx::query("SELECT * FROM recoveries WHERE workspace_id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let attempt: i64 = r.try_get("attempt")?;
            Ok(RecoveryDue {
                workspace_id: get_uuid(&r, "workspace_id")?,
                due_at: r.try_get("due_at")?,
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                failure: r.try_get("failure")?,
                scheduled_by: get_uuid(&r, "scheduled_by")?,
            })
        })
        .transpose()
    }

    /// Drops a workspace's scheduled restart (done, or no longer wanted).
    pub async fn clear_recovery(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM recoveries WHERE workspace_id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// When the next scheduled restart is due.
    pub async fn next_recovery_due(&self) -> Result<Option<Millis>> {
        let row = sqlx::query("SELECT MIN(due_at) AS due FROM recoveries")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("due")?)
    }

    /// The workspaces whose restart is due at `now`.
    pub async fn recoveries_due(&self, now: Millis) -> Result<Vec<Uuid>> {
        let rows = sqlx::query("SELECT workspace_id FROM recoveries WHERE due_at <= $1")
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| get_uuid(r, "workspace_id")).collect()
    }

    /// Records a drain as begun by `replica`, unless one of the node is
    /// under way (`false`).
    pub async fn begin_drain(&self, d: &DrainProgress, replica: Uuid) -> Result<bool> {
        self.begin_progress(&ProgressRow {
            kind: "drain".into(),
            name: d.node.clone(),
            replica,
            started_at: d.started_at,
            updated_at: d.started_at,
            finished_at: None,
            interrupted: None,
            body: drain_body(d),
        })
        .await
    }

    /// Writes how a drain goes (and its end, with `finished_at`).
    pub async fn save_drain(&self, d: &DrainProgress, now: Millis) -> Result<()> {
        self.update_progress("drain", &d.node, now, d.finished_at, &drain_body(d))
            .await
    }

    /// The last drain of a node, if any.
    pub async fn drain(&self, node: &str) -> Result<Option<DrainProgress>> {
        let Some(row) = self.progress("drain", node).await? else {
            return Ok(None);
        };
        let body: DrainRow = serde_json::from_str(&row.body)
            .map_err(|e| StoreError::Corrupt(format!("drain of {node}: {e}")))?;
        if body.v > DRAIN_VERSION {
            return Err(StoreError::Corrupt(format!(
                "the drain of {node} was written by a newer Berth (row version {})",
                body.v
            )));
        }
        Ok(Some(DrainProgress {
            node: row.name,
            started_at: row.started_at,
            finished_at: row.finished_at,
            total: body.total,
            current: body.current,
            moved: body.moved,
            failed: body.failed,
            interrupted: row.interrupted,
        }))
    }

    /// Records how a pull of an image (`key`: the image, with its node
    /// when not `local`) goes on `replica`, replacing the last one's.
    pub async fn save_pull(
        &self,
        key: &str,
        p: &PullProgress,
        replica: Uuid,
        now: Millis,
    ) -> Result<()> {
        let body = PullRow {
            v: PULL_VERSION,
            image: p.image.clone(),
            state: p.state.as_str().to_string(),
            layers: p
                .layers
                .iter()
                .map(|(id, l)| {
                    (
                        id.clone(),
                        LayerRow {
                            status: l.status.clone(),
                            current: l.current,
                            total: l.total,
                            done: l.done,
                        },
                    )
                })
                .collect(),
            status: p.status.clone(),
            error: p.error.clone(),
        };
        sqlx::query(
            "INSERT INTO progress (kind, name, replica, started_at, updated_at, finished_at, interrupted, body) \
             VALUES ('pull', $1, $2, $3, $4, $5, NULL, $6) ON CONFLICT (kind, name) DO UPDATE SET \
             replica = excluded.replica, started_at = excluded.started_at, updated_at = excluded.updated_at, \
             finished_at = excluded.finished_at, interrupted = NULL, body = excluded.body",
        )
        .bind(key)
        .bind(replica.to_string())
        .bind(p.started_at)
        .bind(now)
        .bind(p.finished_at)
        .bind(serde_json::to_string(&body).expect("a pull row serialises"))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The last pull of `key` by any replica; one whose replica went
    /// before it ended reads as failed, saying so.
    pub async fn pull(&self, key: &str) -> Result<Option<PullProgress>> {
        let Some(row) = self.progress("pull", key).await? else {
            return Ok(None);
        };
        let body: PullRow = serde_json::from_str(&row.body)
            .map_err(|e| StoreError::Corrupt(format!("pull of {key}: {e}")))?;
        if body.v > PULL_VERSION {
            return Err(StoreError::Corrupt(format!(
                "the pull of {key} was written by a newer Berth (row version {})",
                body.v
            )));
        }
        let mut state = PullState::parse(&body.state)
            .ok_or_else(|| StoreError::Corrupt(format!("pull state {:?}", body.state)))?;
        let mut error = body.error;
        if let Some(why) = row.interrupted {
            state = PullState::Failed;
            error = Some(why);
        }
        Ok(Some(PullProgress {
            image: body.image,
            state,
            layers: body
                .layers
                .into_iter()
                .map(|(id, l)| {
                    (
                        id,
                        Layer {
                            status: l.status,
                            current: l.current,
                            total: l.total,
                            done: l.done,
                        },
                    )
                })
                .collect(),
            status: body.status,
            error,
            started_at: row.started_at,
            finished_at: row.finished_at,
        }))
    }

    /// Begins an operation's progress, unless one of the same kind and
    /// name is still under way (`false`).
    async fn begin_progress(&self, p: &ProgressRow) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO progress (kind, name, replica, started_at, updated_at, finished_at, interrupted, body) \
             VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6) ON CONFLICT (kind, name) DO UPDATE SET \
             replica = excluded.replica, started_at = excluded.started_at, updated_at = excluded.updated_at, \
             finished_at = NULL, interrupted = NULL, body = excluded.body \
             WHERE progress.finished_at IS NOT NULL",
        )
        .bind(&p.kind)
        .bind(&p.name)
        .bind(p.replica.to_string())
        .bind(p.started_at)
        .bind(p.updated_at)
        .bind(&p.body)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes an operation's progress (and its end, with `finished_at`).
    async fn update_progress(
        &self,
        kind: &str,
        name: &str,
        now: Millis,
        finished_at: Option<Millis>,
        body: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE progress SET updated_at = $1, finished_at = $2, body = $3 \
             WHERE kind = $4 AND name = $5 AND finished_at IS NULL",
        )
        .bind(now)
        .bind(finished_at)
        .bind(body)
        .bind(kind)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn progress(&self, kind: &str, name: &str) -> Result<Option<ProgressRow>> {
        let row = sqlx::query("SELECT * FROM progress WHERE kind = $1 AND name = $2")
            .bind(kind)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(ProgressRow {
                kind: r.try_get("kind")?,
                name: r.try_get("name")?,
                replica: get_uuid(&r, "replica")?,
                started_at: r.try_get("started_at")?,
                updated_at: r.try_get("updated_at")?,
                finished_at: r.try_get("finished_at")?,
                interrupted: r.try_get("interrupted")?,
                body: r.try_get("body")?,
            })
        })
        .transpose()
    }

    /// Ends, as interrupted, the operations `whose` left under way.
    pub async fn interrupt_progress(&self, whose: Whose, now: Millis, why: &str) -> Result<u64> {
        let done = sqlx::query(&format!(
            "UPDATE progress SET finished_at = $1, interrupted = $2 WHERE finished_at IS NULL AND {}",
            whose.condition(3)
        ))
        .bind(now)
        .bind(why)
        .bind(whose.value())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

//! The backup catalogue's records.

use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{get_uuid, Result, Store, StoreError};
use crate::domain::backups::PolicySettings;
use crate::domain::backups::{Backup, BackupOrigin, RemoteCopy, RemoteState};
use crate::domain::Millis;

pub(super) fn backup_from_row(r: &AnyRow) -> Result<Backup> {
    let state: String = r.try_get("state")?;
    let compression: String = r.try_get("compression")?;
    let size: Option<i64> = r.try_get("size_bytes")?;
    let crash: i64 = r.try_get("crash_consistent")?;
    let remote_state: Option<String> = r.try_get("remote_state")?;
    let remote = match remote_state {
        Some(st) => Some(RemoteCopy {
            state: st.parse().map_err(StoreError::Corrupt)?,
            at: r.try_get("remote_at")?,
            error: r.try_get("remote_error")?,
        }),
        None => None,
    };
    let content: Option<i64> = r.try_get("content_bytes")?;
    let origin: Option<String> = r.try_get("origin")?;
    let skipped: Option<i64> = r.try_get("skipped_count")?;
    let sample: Option<String> = r.try_get("skipped_sample")?;
    Ok(Backup {
        content_bytes: content.map(|c| c.max(0) as u64),
        origin: BackupOrigin::parse(origin.as_deref()).map_err(StoreError::Corrupt)?,
        skipped_count: skipped.unwrap_or(0).max(0) as u64,
        skipped_sample: sample
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("skipped_sample: {e}")))?
            .unwrap_or_default(),
        id: get_uuid(r, "id")?,
        project_id: get_uuid(r, "project_id")?,
        owner_id: get_uuid(r, "owner_id")?,
        created_at: r.try_get("created_at")?,
        completed_at: r.try_get("completed_at")?,
        state: state.parse().map_err(StoreError::Corrupt)?,
        compression: compression.parse().map_err(StoreError::Corrupt)?,
        size_bytes: size.map(|s| s.max(0) as u64),
        sha256: r.try_get("sha256")?,
        crash_consistent: crash != 0,
        error: r.try_get("error")?,
        remote,
        replica: super::get_opt_uuid(r, "replica")?,
    })
}

fn skipped_json(b: &Backup) -> String {
    serde_json::to_string(&b.skipped_sample).expect("strings serialise")
}

impl Store {
    pub async fn insert_backup(&self, b: &Backup) -> Result<()> {
        sqlx::query(
            "INSERT INTO backups (id, project_id, owner_id, created_at, completed_at, state, \
             compression, size_bytes, sha256, crash_consistent, error, content_bytes, origin, \
             skipped_count, skipped_sample, replica) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(b.id.to_string())
        .bind(b.project_id.to_string())
        .bind(b.owner_id.to_string())
        .bind(b.created_at)
        .bind(b.completed_at)
        .bind(b.state.as_str())
        .bind(b.compression.as_str())
        .bind(b.size_bytes.map(|s| s as i64))
        .bind(b.sha256.clone())
        .bind(i64::from(b.crash_consistent))
        .bind(b.error.clone())
        .bind(b.content_bytes.map(|c| c as i64))
        .bind(b.origin.as_str())
        .bind(b.skipped_count as i64)
        .bind(skipped_json(b))
        .bind(b.replica.map(|r| r.to_string()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes the outcome of a backup still being written; `false` when
    /// it no longer is (its replica was taken for gone and it was failed).
    pub async fn finish_backup(&self, b: &Backup) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE backups SET state = $1, completed_at = $2, size_bytes = $3, sha256 = $4, \
             error = $5, content_bytes = $6, skipped_count = $7, skipped_sample = $8 \
             WHERE id = $9 AND state = 'in_progress'",
        )
        .bind(b.state.as_str())
        .bind(b.completed_at)
        .bind(b.size_bytes.map(|s| s as i64))
        .bind(b.sha256.clone())
        .bind(b.error.clone())
        .bind(b.content_bytes.map(|c| c as i64))
        .bind(b.skipped_count as i64)
        .bind(skipped_json(b))
        .bind(b.id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records where a backup's remote copy stands.
    pub async fn set_backup_remote(&self, id: Uuid, remote: &RemoteCopy) -> Result<()> {
        sqlx::query(
            "UPDATE backups SET remote_state = $1, remote_at = $2, remote_error = $3 WHERE id = $4",
        )
        .bind(remote.state.as_str())
        .bind(remote.at)
        .bind(remote.error.clone())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Complete backups whose remote copy is not stored: pending, failed,
    /// or never tried (made while remote copies were off), oldest first.
    pub async fn backups_to_send(&self) -> Result<Vec<Backup>> {
        let rows = sqlx::query(
            "SELECT * FROM backups WHERE state = 'complete' \
             AND (remote_state IS NULL OR remote_state <> $1) ORDER BY created_at",
        )
        .bind(RemoteState::Stored.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(backup_from_row).collect()
    }

    pub async fn backup(&self, id: Uuid) -> Result<Option<Backup>> {
        let row = sqlx::query("SELECT * FROM backups WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(backup_from_row).transpose()
    }

    /// A project's backups, newest first.
    pub async fn backups_of(&self, project_id: Uuid) -> Result<Vec<Backup>> {
        let rows =
            sqlx::query("SELECT * FROM backups WHERE project_id = $1 ORDER BY created_at DESC, id")
                .bind(project_id.to_string())
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(backup_from_row).collect()
    }

    pub async fn delete_backup(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM backups WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Points a project at another volume (after a restore).
    /// Points a project at a volume on another node (a move's switch: both
    /// in one statement, so a project is never half moved).
    pub async fn set_project_node_volume(
        &self,
        id: Uuid,
        node: &str,
        volume: &str,
        now: Millis,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE projects SET node = $1, volume_name = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(node)
        .bind(volume)
        .bind(now)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn set_project_volume(&self, id: Uuid, volume: &str, now: Millis) -> Result<()> {
        sqlx::query("UPDATE projects SET volume_name = $1, updated_at = $2 WHERE id = $3")
            .bind(volume)
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Store {
    pub async fn backup_policy(&self, project_id: Uuid) -> Result<PolicySettings> {
        let row = sqlx::query("SELECT * FROM backup_policies WHERE project_id = $1")
            .bind(project_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else {
            return Ok(PolicySettings::default());
        };
        let n = |c: &str| -> Result<Option<u32>> {
            let v: Option<i64> = r.try_get(c)?;
            Ok(v.map(|v| v.clamp(0, u32::MAX as i64) as u32))
        };
        Ok(PolicySettings {
            schedule: r.try_get("schedule")?,
            keep_last: n("keep_last")?,
            keep_daily: n("keep_daily")?,
            keep_weekly: n("keep_weekly")?,
        })
    }

    /// Every project's own policy, by project (projects without one use
    /// the default): one query for the backup schedule's sweep.
    pub async fn backup_policies(&self) -> Result<std::collections::HashMap<Uuid, PolicySettings>> {
        let rows = sqlx::query("SELECT * FROM backup_policies")
            .fetch_all(&self.pool)
            .await?;
        let mut out = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            let n = |c: &str| -> Result<Option<u32>> {
                let v: Option<i64> = r.try_get(c)?;
                Ok(v.map(|v| v.clamp(0, u32::MAX as i64) as u32))
            };
            out.insert(
                super::get_uuid(r, "project_id")?,
                PolicySettings {
                    schedule: r.try_get("schedule")?,
                    keep_last: n("keep_last")?,
                    keep_daily: n("keep_daily")?,
                    keep_weekly: n("keep_weekly")?,
                },
            );
        }
        Ok(out)
    }

    /// When each project's newest backup was made (any state), by project:
    /// one grouped query over the (project_id, created_at) index.
    pub async fn newest_backup_times(&self) -> Result<std::collections::HashMap<Uuid, Millis>> {
        let rows = sqlx::query(
            "SELECT project_id, MAX(created_at) AS newest FROM backups GROUP BY project_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((super::get_uuid(r, "project_id")?, r.try_get("newest")?)))
            .collect()
    }

    pub async fn set_backup_policy(&self, project_id: Uuid, p: &PolicySettings) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM backup_policies WHERE project_id = $1")
            .bind(project_id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO backup_policies (project_id, schedule, keep_last, keep_daily, keep_weekly) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(project_id.to_string())
        .bind(p.schedule.clone())
        .bind(p.keep_last.map(i64::from))
        .bind(p.keep_daily.map(i64::from))
        .bind(p.keep_weekly.map(i64::from))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

crate::domain::spelled_enum! {
    /// What a volume operation fills a new volume for.
    pub enum VolumeOpKind("volume operation") {
        /// A clone of a project, into a new project or over one.
        Clone = "clone",
        /// A backup unpacked into a project's next volume.
        Restore = "restore",
        /// A project's volume copied to another node.
        Move = "move",
        /// A project made anew on another node from its newest backup.
        Recover = "recover",
    }
}

/// A volume operation under way (see the `volume_ops` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeOp {
    pub id: Uuid,
    pub kind: VolumeOpKind,
    pub project_id: Uuid,
    /// The volume being filled.
    pub volume: String,
    /// The node it is filled on.
    pub node: String,
    /// The project record is made only when the copy is complete.
    pub new_project: bool,
    pub started_at: Millis,
    /// The replica filling it.
    pub replica: Option<Uuid>,
}

impl Store {
    pub async fn insert_volume_op(&self, op: &VolumeOp) -> Result<()> {
        sqlx::query(
            "INSERT INTO volume_ops (id, kind, project_id, volume, new_project, started_at, node, replica) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(op.id.to_string())
        .bind(op.kind.as_str())
        .bind(op.project_id.to_string())
        .bind(&op.volume)
        .bind(i64::from(op.new_project))
        .bind(op.started_at)
        .bind(&op.node)
        .bind(op.replica.map(|r| r.to_string()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_volume_op(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM volume_ops WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether a volume operation is still recorded (a gone replica's is
    /// removed with its partial volume: then it must not switch anything).
    pub async fn volume_op_exists(&self, id: Uuid) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM volume_ops WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n > 0)
    }

    /// The volume operations `whose` left under way, oldest first.
    pub async fn volume_ops_of(&self, whose: super::Whose) -> Result<Vec<VolumeOp>> {
        let rows = sqlx::query(&format!(
            "SELECT * FROM volume_ops WHERE {} ORDER BY started_at",
            whose.condition(1)
        ))
        .bind(whose.value())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let new_project: i64 = r.try_get("new_project")?;
                Ok(VolumeOp {
                    id: get_uuid(r, "id")?,
                    kind: r
                        .try_get::<String, _>("kind")?
                        .parse()
                        .map_err(StoreError::Corrupt)?,
                    project_id: get_uuid(r, "project_id")?,
                    volume: r.try_get("volume")?,
                    node: r.try_get("node")?,
                    new_project: new_project != 0,
                    started_at: r.try_get("started_at")?,
                    replica: super::get_opt_uuid(r, "replica")?,
                })
            })
            .collect()
    }
}

//! The replicas table, the installation's shared facts, and what a gone
//! replica left under way (backups being written, volumes being filled,
//! job runs, background operations), found by whose it is.

use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::backups::backup_from_row;
use super::{get_opt_uuid, get_uuid, Result, Store};
use crate::domain::backups::Backup;
use crate::domain::replicas::Replica;
use crate::domain::Millis;

/// Whose unfinished work a query is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// One replica's (gone).
    Of(Uuid),
    /// Everyone's but this replica's, rows from before replicas included:
    /// what a SQLite server finds at its start, since it is the only one.
    AllBut(Uuid),
    /// Rows written before replicas were recorded (by an older Berth).
    Unowned,
}

impl Whose {
    /// The condition on a `replica` column, with its parameter as `$n`.
    pub(super) fn condition(self, n: usize) -> String {
        match self {
            Whose::Of(_) => format!("replica = ${n}"),
            Whose::AllBut(_) => format!("(replica IS NULL OR replica <> ${n})"),
            // Compared with a value no replica has, so every variant binds
            // one parameter.
            Whose::Unowned => format!("(replica IS NULL AND ${n} = ${n})"),
        }
    }

    pub(super) fn value(self) -> String {
        match self {
            Whose::Of(id) | Whose::AllBut(id) => id.to_string(),
            Whose::Unowned => String::new(),
        }
    }
}

fn replica_from_row(r: &AnyRow) -> Result<Replica> {
    Ok(Replica {
        id: get_uuid(r, "id")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        pid: r.try_get("pid")?,
        archive_dir: r.try_get("archive_dir")?,
        engine_id: r.try_get("engine_id")?,
        started_at: r.try_get("started_at")?,
        heartbeat_at: r.try_get("heartbeat_at")?,
        stopped_at: r.try_get("stopped_at")?,
        reaped_at: r.try_get("reaped_at")?,
        reaped_by: get_opt_uuid(r, "reaped_by")?,
    })
}

impl Store {
    pub async fn insert_replica(&self, r: &Replica) -> Result<()> {
        sqlx::query(
            "INSERT INTO replicas (id, name, version, pid, archive_dir, engine_id, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(r.id.to_string())
        .bind(&r.name)
        .bind(&r.version)
        .bind(r.pid)
        .bind(&r.archive_dir)
        .bind(&r.engine_id)
        .bind(r.started_at)
        .bind(r.heartbeat_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a heartbeat. `false`: the row was reaped (the others took
    /// this replica for gone) or is missing.
    pub async fn replica_beat(&self, id: Uuid, now: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE replicas SET heartbeat_at = $1 WHERE id = $2 AND reaped_at IS NULL AND stopped_at IS NULL",
        )
        .bind(now)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A clean stop.
    pub async fn replica_stopped(&self, id: Uuid, now: Millis) -> Result<()> {
        sqlx::query("UPDATE replicas SET stopped_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every replica on record, oldest first.
    pub async fn replicas(&self) -> Result<Vec<Replica>> {
        let rows = sqlx::query("SELECT * FROM replicas ORDER BY started_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(replica_from_row).collect()
    }

    /// Records that `by` took care of `id`'s unfinished work.
    pub async fn mark_reaped(&self, id: Uuid, by: Uuid, now: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE replicas SET reaped_at = $1, reaped_by = $2 WHERE id = $3 AND reaped_at IS NULL",
        )
        .bind(now)
        .bind(by.to_string())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn forget_replica(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM replicas WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The installation's fact `name`, set to `value` if it had none;
    /// returns what it is now.
    pub async fn installation_fact(&self, name: &str, value: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO installation (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT value FROM installation WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }

    /// Fails the backups `whose` left being written; returns them.
    pub async fn fail_backups_of(
        &self,
        whose: Whose,
        now: Millis,
        why: &str,
    ) -> Result<Vec<Backup>> {
        let rows = sqlx::query(&format!(
            "SELECT * FROM backups WHERE state = 'in_progress' AND {}",
            whose.condition(1)
        ))
        .bind(whose.value())
        .fetch_all(&self.pool)
        .await?;
        let list: Vec<Backup> = rows.iter().map(backup_from_row).collect::<Result<_>>()?;
        for b in &list {
            sqlx::query(
                "UPDATE backups SET state = 'failed', completed_at = $1, error = $2 \
                 WHERE id = $3 AND state = 'in_progress'",
            )
            .bind(now)
            .bind(why)
            .bind(b.id.to_string())
            .execute(&self.pool)
            .await?;
        }
        Ok(list)
    }

    /// Marks the job runs `whose` left running as interrupted; returns how
    /// many.
    pub async fn interrupt_job_runs(&self, whose: Whose, now: Millis, why: &str) -> Result<u64> {
        let done = sqlx::query(&format!(
            "UPDATE job_runs SET outcome = 'interrupted', finished_at = $1, error = $2 \
             WHERE outcome = 'running' AND {}",
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

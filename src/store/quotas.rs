//! What quotas count: a user's overrides (`user_quotas`: per limit NULL
//! for the role's default, -1 for none, else the limit; CPUs in
//! thousandths), their workspaces, those that reserve resources (running
//! or starting), and their storage (project volumes as last measured,
//! complete backups).

use std::collections::HashMap;

use sqlx::Row;
use uuid::Uuid;

use super::workspaces::workspace_from_row;
use super::{get_uuid, Result, Store};
use crate::domain::quota::{Overrides, Setting};
use crate::domain::{Millis, Workspace};

fn setting(v: Option<i64>) -> Setting<u64> {
    match v {
        None => Setting::Role,
        Some(n) if n < 0 => Setting::Unlimited,
        Some(n) => Setting::Limit(n as u64),
    }
}

fn stored(s: Setting<u64>) -> Option<i64> {
    match s {
        Setting::Role => None,
        Setting::Unlimited => Some(-1),
        Setting::Limit(n) => Some(i64::try_from(n).unwrap_or(i64::MAX)),
    }
}

/// A user's storage as counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Storage {
    pub volume_bytes: u64,
    pub backup_bytes: u64,
    /// The oldest volume measurement counted.
    pub measured_at: Option<Millis>,
}

impl Store {
    pub async fn quota_overrides(&self, user: Uuid) -> Result<Overrides> {
        let row = sqlx::query("SELECT * FROM user_quotas WHERE user_id = $1")
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else {
            return Ok(Overrides::default());
        };
        let cpus: Option<i64> = r.try_get("cpus_milli")?;
        Ok(Overrides {
            workspaces: setting(r.try_get("workspaces")?),
            running: setting(r.try_get("running")?),
            cpus: match setting(cpus) {
                Setting::Role => Setting::Role,
                Setting::Unlimited => Setting::Unlimited,
                Setting::Limit(m) => Setting::Limit(m as f64 / 1000.0),
            },
            memory_mb: setting(r.try_get("memory_mb")?),
            storage_mb: setting(r.try_get("storage_mb")?),
        })
    }

    /// Every user's overrides that differ from their role's.
    pub async fn all_quota_overrides(&self) -> Result<HashMap<Uuid, Overrides>> {
        let ids: Vec<Uuid> = sqlx::query("SELECT user_id FROM user_quotas")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| get_uuid(r, "user_id"))
            .collect::<Result<_>>()?;
        let mut out = HashMap::new();
        for id in ids {
            out.insert(id, self.quota_overrides(id).await?);
        }
        Ok(out)
    }

    pub async fn set_quota_overrides(&self, user: Uuid, o: &Overrides) -> Result<()> {
        let cpus = match o.cpus {
            Setting::Role => None,
            Setting::Unlimited => Some(-1),
            Setting::Limit(c) => Some((c * 1000.0).round() as i64),
        };
        sqlx::query(
            "INSERT INTO user_quotas (user_id, workspaces, running, cpus_milli, memory_mb, storage_mb) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id) DO UPDATE SET \
             workspaces = excluded.workspaces, running = excluded.running, cpus_milli = excluded.cpus_milli, \
             memory_mb = excluded.memory_mb, storage_mb = excluded.storage_mb",
        )
        .bind(user.to_string())
        .bind(stored(o.workspaces))
        .bind(stored(o.running))
        .bind(cpus)
        .bind(stored(o.memory_mb))
        .bind(stored(o.storage_mb))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many workspaces `owner` has.
    pub async fn count_workspaces_of(&self, owner: Uuid) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM workspaces WHERE owner_id = $1")
            .bind(owner.to_string())
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n.max(0) as u64)
    }

    /// The workspaces that reserve resources (running or starting), of one
    /// owner or of everyone.
    pub async fn reserving_workspaces(&self, owner: Option<Uuid>) -> Result<Vec<Workspace>> {
        let rows = match owner {
            Some(o) => sqlx::query(
                "SELECT * FROM workspaces WHERE owner_id = $1 AND status IN ('running', 'starting')",
            )
            .bind(o.to_string())
            .fetch_all(&self.pool)
            .await?,
            None => sqlx::query("SELECT * FROM workspaces WHERE status IN ('running', 'starting')")
                .fetch_all(&self.pool)
                .await?,
        };
        rows.iter().map(workspace_from_row).collect()
    }

    /// A user's storage: their live projects' volumes as last measured
    /// and their complete backups.
    pub async fn storage_of(&self, owner: Uuid) -> Result<Storage> {
        let v = sqlx::query(
            "SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) AS n, MIN(size_at) AS at FROM projects \
             WHERE owner_id = $1 AND deleted_at IS NULL",
        )
        .bind(owner.to_string())
        .fetch_one(&self.pool)
        .await?;
        let b = sqlx::query(
            "SELECT CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) AS n FROM backups WHERE owner_id = $1 AND state = 'complete'",
        )
        .bind(owner.to_string())
        .fetch_one(&self.pool)
        .await?;
        let vn: i64 = v.try_get("n")?;
        let bn: i64 = b.try_get("n")?;
        Ok(Storage {
            volume_bytes: vn.max(0) as u64,
            backup_bytes: bn.max(0) as u64,
            measured_at: v.try_get("at")?,
        })
    }

    /// How many workspaces each owner has.
    pub async fn workspace_counts(&self) -> Result<HashMap<Uuid, u64>> {
        let rows = sqlx::query("SELECT owner_id, COUNT(*) AS n FROM workspaces GROUP BY owner_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get("n")?;
                Ok((get_uuid(r, "owner_id")?, n.max(0) as u64))
            })
            .collect()
    }

    /// Every owner's storage, as [`Store::storage_of`] counts it.
    pub async fn storage_by_owner(&self) -> Result<HashMap<Uuid, Storage>> {
        let mut out: HashMap<Uuid, Storage> = HashMap::new();
        for r in sqlx::query(
            "SELECT owner_id, CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) AS n, MIN(size_at) AS at FROM projects \
             WHERE deleted_at IS NULL GROUP BY owner_id",
        )
        .fetch_all(&self.pool)
        .await?
        {
            let n: i64 = r.try_get("n")?;
            let e = out.entry(get_uuid(&r, "owner_id")?).or_default();
            e.volume_bytes = n.max(0) as u64;
            e.measured_at = r.try_get("at")?;
        }
        for r in sqlx::query(
            "SELECT owner_id, CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT) AS n FROM backups \
             WHERE state = 'complete' GROUP BY owner_id",
        )
        .fetch_all(&self.pool)
        .await?
        {
            let n: i64 = r.try_get("n")?;
            out.entry(get_uuid(&r, "owner_id")?)
                .or_default()
                .backup_bytes = n.max(0) as u64;
        }
        Ok(out)
    }

    /// Records a project volume's measured size.
    pub async fn set_project_size(&self, id: Uuid, bytes: u64, at: Millis) -> Result<()> {
        sqlx::query("UPDATE projects SET size_bytes = $1, size_at = $2 WHERE id = $3")
            .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
            .bind(at)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A project volume's last measured size.
    pub async fn project_size(&self, id: Uuid) -> Result<Option<u64>> {
        let row = sqlx::query("SELECT size_bytes FROM projects WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let n: Option<i64> = match row {
            Some(r) => r.try_get("size_bytes")?,
            None => None,
        };
        Ok(n.map(|n| n.max(0) as u64))
    }
}

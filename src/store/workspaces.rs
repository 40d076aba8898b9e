//! Workspace records.

use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{get_opt_uuid, get_uuid, Result, Store, StoreError};
use crate::domain::transition::Note;
use crate::domain::{Millis, Workspace};

pub(super) fn workspace_from_row(row: &AnyRow) -> Result<Workspace> {
    let status: String = row.try_get("status")?;
    let settings: String = row.try_get("settings")?;
    let port: Option<i64> = row.try_get("host_port")?;
    let is_default: i64 = row.try_get("is_default")?;
    Ok(Workspace {
        id: get_uuid(row, "id")?,
        owner_id: get_uuid(row, "owner_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        type_name: row.try_get("type_name")?,
        project_id: get_opt_uuid(row, "project_id")?,
        node: row.try_get("node")?,
        is_default: is_default != 0,
        settings: super::settings::decode(&settings)?,
        status: status.parse().map_err(StoreError::Corrupt)?,
        status_reason: row.try_get("status_reason")?,
        container_id: row.try_get("container_id")?,
        host_port: port.and_then(|p| u16::try_from(p).ok()),
        last_activity_at: row.try_get("last_activity_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn settings_json(w: &Workspace) -> String {
    super::settings::encode(&w.settings)
}

/// The columns a status transition owns, as `$1`..`$6` (and the id as
/// `$7`) of [`bind_status`]: one spelling of "activity only moves forward"
/// for both writers of a workspace row.
macro_rules! status_columns {
    () => {
        "status = $1, status_reason = $2, container_id = $3, host_port = $4, \
         last_activity_at = CASE \
             WHEN CAST($5 AS BIGINT) IS NULL THEN last_activity_at \
             WHEN last_activity_at IS NULL OR last_activity_at < CAST($5 AS BIGINT) \
                 THEN CAST($5 AS BIGINT) \
             ELSE last_activity_at END, \
         updated_at = $6"
    };
}

/// Binds `$1`..`$7` of [`status_columns`] and the row's id.
fn bind_status<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    w: &Workspace,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(w.status.as_str())
        .bind(w.status_reason.clone())
        .bind(w.container_id.clone())
        .bind(w.host_port.map(i64::from))
        .bind(w.last_activity_at)
        .bind(w.updated_at)
        .bind(w.id.to_string())
}

impl Store {
    pub async fn insert_workspace(&self, w: &Workspace) -> Result<()> {
        sqlx::query(
            "INSERT INTO workspaces (id, owner_id, name, description, type_name, project_id, \
             is_default, settings, status, status_reason, container_id, host_port, \
             last_activity_at, created_at, updated_at, node) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(w.id.to_string())
        .bind(w.owner_id.to_string())
        .bind(&w.name)
        .bind(&w.description)
        .bind(&w.type_name)
        .bind(w.project_id.map(|u| u.to_string()))
        .bind(i64::from(w.is_default))
        .bind(settings_json(w))
        .bind(w.status.as_str())
        .bind(w.status_reason.clone())
        .bind(w.container_id.clone())
        .bind(w.host_port.map(i64::from))
        .bind(w.last_activity_at)
        .bind(w.created_at)
        .bind(w.updated_at)
        .bind(&w.node)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes the record's fields back, except two that have writers of
    /// their own, which do not take the workspace's lock: `is_default`
    /// ([`Store::set_default_workspace`]) is never written here, and
    /// `last_activity_at` ([`Store::touch_activity`]) only moves forward.
    /// So a record read before one of those writes and saved after it
    /// loses neither.
    pub async fn save_workspace(&self, w: &Workspace) -> Result<()> {
        bind_status(
            sqlx::query(concat!(
                "UPDATE workspaces SET ",
                status_columns!(),
                ", name = $8, description = $9, project_id = $10, settings = $11, node = $12 \
                 WHERE id = $7"
            )),
            w,
        )
        .bind(&w.name)
        .bind(&w.description)
        .bind(w.project_id.map(|u| u.to_string()))
        .bind(settings_json(w))
        .bind(&w.node)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Writes the columns a status transition owns
    /// (`domain::transition`): status, its reason, the container and its
    /// port, the time; activity only forward. Nothing else of the record.
    /// With `note`, its event is written in the same transaction, so a
    /// reader never sees the one without the other.
    pub async fn save_status(&self, w: &Workspace, note: Option<&Note>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        bind_status(
            sqlx::query(concat!(
                "UPDATE workspaces SET ",
                status_columns!(),
                " WHERE id = $7"
            )),
            w,
        )
        .execute(&mut *tx)
        .await?;
        if let Some(n) = note {
            super::events::insert_event_query(w.id, w.updated_at, n)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn workspace(&self, id: Uuid) -> Result<Option<Workspace>> {
        let row = sqlx::query("SELECT * FROM workspaces WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    /// Workspaces, default first, then newest; all owners when `owner` is `None`.
    pub async fn workspaces(&self, owner: Option<Uuid>) -> Result<Vec<Workspace>> {
        const ORDER: &str = "ORDER BY is_default DESC, created_at DESC, id";
        let rows = match owner {
            Some(o) => {
                sqlx::query(&format!(
                    "SELECT * FROM workspaces WHERE owner_id = $1 {ORDER}"
                ))
                .bind(o.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT * FROM workspaces {ORDER}"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(workspace_from_row).collect()
    }

    /// The workspaces on `node`, of one status when `status` is given:
    /// what the cleanup jobs and the activity probe read (an index on
    /// (node, status) serves it), rather than every record.
    pub async fn workspaces_on(
        &self,
        node: &str,
        status: Option<crate::domain::WorkspaceStatus>,
    ) -> Result<Vec<Workspace>> {
        let rows = match status {
            Some(s) => {
                sqlx::query("SELECT * FROM workspaces WHERE node = $1 AND status = $2")
                    .bind(node)
                    .bind(s.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM workspaces WHERE node = $1")
                    .bind(node)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(workspace_from_row).collect()
    }

    /// Running workspaces, of one owner when `owner` is given (the fleet
    /// figures): an index on status serves it.
    pub async fn running_workspaces(&self, owner: Option<Uuid>) -> Result<Vec<Workspace>> {
        let running = crate::domain::WorkspaceStatus::Running.as_str();
        let rows = match owner {
            Some(o) => {
                sqlx::query("SELECT * FROM workspaces WHERE owner_id = $1 AND status = $2")
                    .bind(o.to_string())
                    .bind(running)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM workspaces WHERE status = $1")
                    .bind(running)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(workspace_from_row).collect()
    }

    /// The ids of the workspaces on `node`.
    pub async fn workspace_ids_on(&self, node: &str) -> Result<Vec<Uuid>> {
        let rows = sqlx::query("SELECT id FROM workspaces WHERE node = $1")
            .bind(node)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| super::get_uuid(r, "id")).collect()
    }

    /// Workspaces whose current project is `project_id`.
    pub async fn workspaces_on_project(&self, project_id: Uuid) -> Result<Vec<Workspace>> {
        let rows = sqlx::query("SELECT * FROM workspaces WHERE project_id = $1")
            .bind(project_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(workspace_from_row).collect()
    }

    pub async fn delete_workspace(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM workspaces WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Makes `id` its owner's only default workspace, atomically.
    pub async fn set_default_workspace(&self, owner: Uuid, id: Uuid, now: Millis) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE workspaces SET is_default = 0, updated_at = $1 WHERE owner_id = $2 AND is_default = 1",
        )
        .bind(now)
        .bind(owner.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE workspaces SET is_default = 1, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

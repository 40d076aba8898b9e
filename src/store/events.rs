//! The workspace event log: what happened to a workspace, when and why.

use sqlx::Row;
use uuid::Uuid;

use super::{get_uuid, Result, Store, StoreError};
use crate::domain::transition::Note;
use crate::domain::{EventKind, Millis, WorkspaceEvent};

/// The statement that records `note` for a workspace at `at`, for a
/// transaction of its own or one that saves a status with it.
pub(super) fn insert_event_query<'q>(
    workspace_id: Uuid,
    at: Millis,
    note: &'q Note,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(
        "INSERT INTO workspace_events (id, workspace_id, at, kind, message) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(workspace_id.to_string())
    .bind(at)
    .bind(note.kind.as_str())
    .bind(note.message.as_str())
}

impl Store {
    /// Records an event that moves no state (an attempt, a limits change).
    pub async fn insert_event(&self, workspace_id: Uuid, at: Millis, note: &Note) -> Result<()> {
        insert_event_query(workspace_id, at, note)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records an event that every replica may notice (an engine event
    /// each follows): the first to record `source` writes it. `false`:
    /// another did.
    pub async fn insert_event_once(
        &self,
        workspace_id: Uuid,
        at: Millis,
        note: &Note,
        source: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO workspace_events (id, workspace_id, at, kind, message, source) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(workspace_id.to_string())
        .bind(at)
        .bind(note.kind.as_str())
        .bind(note.message.as_str())
        .bind(source)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The newest `limit` events of a workspace, newest first.
    pub async fn events(&self, workspace_id: Uuid, limit: i64) -> Result<Vec<WorkspaceEvent>> {
        let rows = sqlx::query(
            "SELECT * FROM workspace_events WHERE workspace_id = $1 ORDER BY at DESC, id LIMIT $2",
        )
        .bind(workspace_id.to_string())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// When events of one kind happened since `since`.
    pub async fn event_times(
        &self,
        workspace_id: Uuid,
        kind: EventKind,
        since: Millis,
    ) -> Result<Vec<Millis>> {
        let rows = sqlx::query(
            "SELECT at FROM workspace_events WHERE workspace_id = $1 AND kind = $2 AND at >= $3",
        )
        .bind(workspace_id.to_string())
        .bind(kind.as_str())
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("at")?)).collect()
    }

    /// The time of the newest event of one kind.
    pub async fn last_event_time(
        &self,
        workspace_id: Uuid,
        kind: EventKind,
    ) -> Result<Option<Millis>> {
        let row = sqlx::query(
            "SELECT MAX(at) AS at FROM workspace_events WHERE workspace_id = $1 AND kind = $2",
        )
        .bind(workspace_id.to_string())
        .bind(kind.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("at")?)
    }

    pub async fn delete_events(&self, workspace_id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM workspace_events WHERE workspace_id = $1")
            .bind(workspace_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

pub(super) fn event_from_row(r: &sqlx::any::AnyRow) -> Result<WorkspaceEvent> {
    Ok(WorkspaceEvent {
        id: get_uuid(r, "id")?,
        workspace_id: get_uuid(r, "workspace_id")?,
        at: r.try_get("at")?,
        kind: r
            .try_get::<String, _>("kind")?
            .parse()
            .map_err(StoreError::Corrupt)?,
        message: r.try_get("message")?,
    })
}

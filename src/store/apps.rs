//! Workspace apps: the login handoff's codes, app sessions, and shares.
//! Codes and app-session tokens are stored as SHA-256 hashes, like tokens.
//! App sessions live in a table of their own, so no query of the API's
//! authentication can ever find one.

use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{get_uuid, Result, Store, StoreError};
use crate::domain::apps::{AppShare, ShareLevel};
use crate::domain::{Millis, Workspace};

/// What a redeemed handoff code was issued for.
#[derive(Debug, Clone)]
pub struct AppCode {
    pub user_id: Uuid,
    pub parent_token_id: Uuid,
    pub workspace_id: Uuid,
    pub port: u16,
    pub expires_at: Millis,
}

fn port_of(row: &AnyRow) -> Result<u16> {
    let p: i64 = row.try_get("port")?;
    u16::try_from(p).map_err(|_| StoreError::Corrupt(format!("port {p}")))
}

fn share_from_row(row: &AnyRow) -> Result<AppShare> {
    let level: String = row.try_get("level")?;
    Ok(AppShare {
        workspace_id: get_uuid(row, "workspace_id")?,
        port: port_of(row)?,
        level: ShareLevel::parse(&level)
            .ok_or_else(|| StoreError::Corrupt(format!("share level {level:?}")))?,
        created_by: get_uuid(row, "created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Workspaces whose id starts with `short` (hex digits of an app label).
    pub async fn workspaces_by_short_id(&self, short: &str) -> Result<Vec<Workspace>> {
        // A range on the primary key (ids are lowercase hyphenated UUIDs,
        // the short id their first characters): the index serves it.
        let rows = sqlx::query("SELECT * FROM workspaces WHERE id >= $1 AND id < $2")
            .bind(short.to_string())
            .bind(format!("{short}g"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(super::workspaces::workspace_from_row)
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_app_code(
        &self,
        code_hash: &str,
        user_id: Uuid,
        parent_token_id: Uuid,
        workspace_id: Uuid,
        port: u16,
        now: Millis,
        expires_at: Millis,
    ) -> Result<()> {
        // Codes nobody redeemed: gone once expired.
        sqlx::query("DELETE FROM app_codes WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO app_codes (code_hash, user_id, parent_token_id, workspace_id, port, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(code_hash)
        .bind(user_id.to_string())
        .bind(parent_token_id.to_string())
        .bind(workspace_id.to_string())
        .bind(i64::from(port))
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes a code out of the store (so it can be used once): what it was
    /// issued for, expired or not, or `None` if there is no such code.
    pub async fn take_app_code(&self, code_hash: &str) -> Result<Option<AppCode>> {
        let row = sqlx::query("DELETE FROM app_codes WHERE code_hash = $1 RETURNING *")
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(AppCode {
                user_id: get_uuid(&r, "user_id")?,
                parent_token_id: get_uuid(&r, "parent_token_id")?,
                workspace_id: get_uuid(&r, "workspace_id")?,
                port: port_of(&r)?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Starts an app session for one app origin; it ends with its parent
    /// token (the Berth login it came from).
    pub async fn insert_app_session(
        &self,
        token_hash: &str,
        code: &AppCode,
        now: Millis,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO app_sessions (id, token_hash, user_id, parent_token_id, workspace_id, port, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(token_hash)
        .bind(code.user_id.to_string())
        .bind(code.parent_token_id.to_string())
        .bind(code.workspace_id.to_string())
        .bind(i64::from(code.port))
        .bind(now)
        .bind(code.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user a live app session of this workspace and port belongs to.
    pub async fn app_session_user(
        &self,
        token_hash: &str,
        workspace_id: Uuid,
        port: u16,
        now: Millis,
    ) -> Result<Option<crate::domain::User>> {
        let row = sqlx::query(
            "SELECT u.* FROM app_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.workspace_id = $2 AND s.port = $3 AND s.expires_at > $4",
        )
        .bind(token_hash)
        .bind(workspace_id.to_string())
        .bind(i64::from(port))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(super::users::user_from_row).transpose()
    }

    /// Ends every app session of a user (a password change); returns how many.
    pub async fn delete_app_sessions_of(&self, user_id: Uuid) -> Result<u64> {
        let r = sqlx::query("DELETE FROM app_sessions WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Live app sessions (for tests and figures).
    pub async fn app_session_count(&self, user_id: Uuid, now: Millis) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM app_sessions WHERE user_id = $1 AND expires_at > $2",
        )
        .bind(user_id.to_string())
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn share(&self, workspace_id: Uuid, port: u16) -> Result<Option<AppShare>> {
        let row = sqlx::query("SELECT * FROM app_shares WHERE workspace_id = $1 AND port = $2")
            .bind(workspace_id.to_string())
            .bind(i64::from(port))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(share_from_row).transpose()
    }

    /// The shares of one workspace, or of all when `None`, by workspace and port.
    pub async fn shares(&self, workspace_id: Option<Uuid>) -> Result<Vec<AppShare>> {
        let rows = match workspace_id {
            Some(id) => {
                sqlx::query("SELECT * FROM app_shares WHERE workspace_id = $1 ORDER BY port")
                    .bind(id.to_string())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM app_shares ORDER BY created_at DESC, workspace_id, port")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(share_from_row).collect()
    }

    /// Sets a port's share (replacing any).
    pub async fn put_share(&self, share: &AppShare) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM app_shares WHERE workspace_id = $1 AND port = $2")
            .bind(share.workspace_id.to_string())
            .bind(i64::from(share.port))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO app_shares (workspace_id, port, level, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(share.workspace_id.to_string())
        .bind(i64::from(share.port))
        .bind(share.level.as_str())
        .bind(share.created_by.to_string())
        .bind(share.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a port's share; false if it had none.
    pub async fn delete_share(&self, workspace_id: Uuid, port: u16) -> Result<bool> {
        let r = sqlx::query("DELETE FROM app_shares WHERE workspace_id = $1 AND port = $2")
            .bind(workspace_id.to_string())
            .bind(i64::from(port))
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }
}

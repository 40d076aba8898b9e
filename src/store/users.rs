//! Users and their tokens. Tokens are stored as SHA-256 hashes only: a
//! database dump gives no usable credential.

use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{conflict_on_unique, get_uuid, Result, Store, StoreError};
use crate::domain::{Millis, Role, User};

/// What a token was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Made by `berth token create`; does not expire.
    Api,
    /// Made by a login; expires and is revoked by logout.
    Session,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Api => "api",
            TokenKind::Session => "session",
        }
    }
}

fn user_from_row(row: &AnyRow) -> Result<User> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: get_uuid(row, "id")?,
        email: row.try_get("email")?,
        role: role.parse().map_err(StoreError::Corrupt)?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    pub async fn insert_user(
        &self,
        email: &str,
        password_hash: &str,
        role: Role,
        now: Millis,
    ) -> Result<User> {
        let user = User {
            id: Uuid::new_v4(),
            email: email.to_string(),
            role,
            created_at: now,
        };
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.id.to_string())
        .bind(email)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, &format!("a user with email {email} already exists")))?;
        Ok(user)
    }

    /// How many users there are (a fresh installation has none).
    pub async fn user_count(&self) -> Result<i64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// The user with this email and their password hash.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    pub async fn update_password(&self, user_id: Uuid, password_hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn insert_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        kind: TokenKind,
        name: &str,
        now: Millis,
        expires_at: Option<Millis>,
    ) -> Result<Uuid> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO tokens (id, user_id, token_hash, kind, name, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.to_string())
        .bind(user_id.to_string())
        .bind(token_hash)
        .bind(kind.as_str())
        .bind(name)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// The user a live (unexpired) token belongs to, with the token's id.
    pub async fn user_by_token_hash(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<Option<(User, Uuid)>> {
        let row = sqlx::query(
            "SELECT u.*, t.id AS token_id FROM tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from_row(&r)?, get_uuid(&r, "token_id")?)))
            .transpose()
    }

    pub async fn delete_token(&self, token_id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM tokens WHERE id = $1")
            .bind(token_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes expired session tokens; returns how many.
    pub async fn delete_expired_tokens(&self, now: Millis) -> Result<u64> {
        let r = sqlx::query("DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}

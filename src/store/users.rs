//! Users and their tokens. Tokens are stored as SHA-256 hashes only: a
//! database dump gives no usable credential.

use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{conflict_on_unique, get_uuid, Result, Store, StoreError};
use crate::domain::accounts::Holdings;
use crate::domain::accounts::{TokenInfo, TokenKind};
use crate::domain::{Millis, Role, User};

/// The token a request presented, as authentication found it.
#[derive(Debug, Clone)]
pub struct TokenUse {
    pub user: User,
    pub token_id: Uuid,
    pub last_used_at: Option<Millis>,
    /// A login's session, or an API token.
    pub kind: TokenKind,
    /// The token's name (a session's: `login`).
    pub name: String,
}

pub(super) fn user_from_row(row: &AnyRow) -> Result<User> {
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

    /// The user a live (unexpired) token belongs to, with the token's id and
    /// when it was last used.
    pub async fn user_by_token_hash(
        &self,
        token_hash: &str,
        now: Millis,
    ) -> Result<Option<TokenUse>> {
        let row = sqlx::query(
            "SELECT u.*, t.id AS token_id, t.last_used_at AS token_last_used_at, \
             t.kind AS token_kind, t.name AS token_name \
             FROM tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let kind: String = r.try_get("token_kind")?;
            Ok(TokenUse {
                user: user_from_row(&r)?,
                token_id: get_uuid(&r, "token_id")?,
                last_used_at: r.try_get("token_last_used_at")?,
                kind: TokenKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("token kind {kind:?}")))?,
                name: r.try_get("token_name")?,
            })
        })
        .transpose()
    }

    /// Records that a token was used at `now`.
    pub async fn touch_token(&self, token_id: Uuid, now: Millis) -> Result<()> {
        sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(token_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every user, oldest first.
    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY created_at, email")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn admin_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = $1")
            .bind(Role::Admin.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The live projects and the workspaces a user owns.
    pub async fn holdings(&self, user_id: Uuid) -> Result<Holdings> {
        let projects: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM projects WHERE owner_id = $1 AND deleted_at IS NULL",
        )
        .bind(user_id.to_string())
        .fetch_one(&self.pool)
        .await?;
        let workspaces: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM workspaces WHERE owner_id = $1")
                .bind(user_id.to_string())
                .fetch_one(&self.pool)
                .await?;
        Ok(Holdings {
            projects: u64::try_from(projects).unwrap_or(0),
            workspaces: u64::try_from(workspaces).unwrap_or(0),
        })
    }

    /// [`Store::holdings`] of several users in two grouped queries (a page
    /// of the users list), by user; users owning nothing are absent.
    pub async fn holdings_of(
        &self,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, Holdings>> {
        let mut out: std::collections::HashMap<Uuid, Holdings> = Default::default();
        if ids.is_empty() {
            return Ok(out);
        }
        let marks = (1..=ids.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        for (sql, projects) in [
            (
                format!("SELECT owner_id, COUNT(*) AS n FROM projects WHERE deleted_at IS NULL AND owner_id IN ({marks}) GROUP BY owner_id"),
                true,
            ),
            (
                format!("SELECT owner_id, COUNT(*) AS n FROM workspaces WHERE owner_id IN ({marks}) GROUP BY owner_id"),
                false,
            ),
        ] {
            let mut q = sqlx::query(&sql);
            for id in ids {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&self.pool).await? {
                let n = u64::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0);
                let h = out.entry(super::get_uuid(&r, "owner_id")?).or_default();
                if projects {
                    h.projects = n;
                } else {
                    h.workspaces = n;
                }
            }
        }
        Ok(out)
    }

    pub async fn set_role(&self, user_id: Uuid, role: Role) -> Result<()> {
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes a user in one transaction: everything they own (projects,
    /// deleted ones awaiting volume removal included, workspaces, backup
    /// records) passes to `heir`, their tokens go with them. The handed-over
    /// workspaces lose their "default" mark: the heir has their own.
    pub async fn delete_user(&self, user_id: Uuid, heir: Uuid) -> Result<()> {
        let (from, to) = (user_id.to_string(), heir.to_string());
        let mut tx = self.pool.begin().await?;
        for sql in [
            "UPDATE projects SET owner_id = $1 WHERE owner_id = $2",
            "UPDATE workspaces SET owner_id = $1, is_default = 0 WHERE owner_id = $2",
            "UPDATE backups SET owner_id = $1 WHERE owner_id = $2",
        ] {
            sqlx::query(sql)
                .bind(&to)
                .bind(&from)
                .execute(&mut *tx)
                .await?;
        }
        for sql in [
            "DELETE FROM tokens WHERE user_id = $1",
            // Credentials are the person's own: not handed to the heir.
            "DELETE FROM git_credentials WHERE user_id = $1",
        ] {
            sqlx::query(sql).bind(&from).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(&from)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A user's tokens, newest first.
    pub async fn tokens_of(&self, user_id: Uuid, now: Millis) -> Result<Vec<TokenInfo>> {
        let rows = sqlx::query(
            "SELECT * FROM tokens WHERE user_id = $1 AND (expires_at IS NULL OR expires_at > $2) \
             ORDER BY created_at DESC, id",
        )
        .bind(user_id.to_string())
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(TokenInfo {
                    id: get_uuid(r, "id")?,
                    kind: kind.parse().map_err(StoreError::Corrupt)?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                })
            })
            .collect()
    }

    /// Revokes one of a user's tokens; false if they have no such token.
    pub async fn delete_token_of(&self, user_id: Uuid, token_id: Uuid) -> Result<bool> {
        let r = sqlx::query("DELETE FROM tokens WHERE id = $1 AND user_id = $2")
            .bind(token_id.to_string())
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Ends a user's login sessions (not their API tokens), except `keep`;
    /// returns how many.
    pub async fn delete_sessions_of(&self, user_id: Uuid, keep: Option<Uuid>) -> Result<u64> {
        let keep = keep.map(|k| k.to_string()).unwrap_or_default();
        let r = sqlx::query("DELETE FROM tokens WHERE user_id = $1 AND kind = $2 AND id <> $3")
            .bind(user_id.to_string())
            .bind(TokenKind::Session.as_str())
            .bind(keep)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
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

impl Store {
    /// The failed logins recorded for a key (an account, an address).
    pub async fn login_attempts(
        &self,
        key: &str,
    ) -> Result<Option<crate::domain::throttle::Attempts>> {
        let row = sqlx::query("SELECT * FROM login_attempts WHERE name = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let failures: i64 = r.try_get("failures")?;
            Ok(crate::domain::throttle::Attempts {
                failures: u32::try_from(failures).unwrap_or(u32::MAX),
                last_failure: r.try_get("last_failure")?,
                locked_until: r.try_get("locked_until")?,
            })
        })
        .transpose()
    }

    pub async fn save_login_attempts(
        &self,
        key: &str,
        a: &crate::domain::throttle::Attempts,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO login_attempts (name, failures, last_failure, locked_until) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET \
             failures = excluded.failures, last_failure = excluded.last_failure, \
             locked_until = excluded.locked_until",
        )
        .bind(key)
        .bind(i64::from(a.failures))
        .bind(a.last_failure)
        .bind(a.locked_until)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn forget_login_attempts(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_attempts WHERE name = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets keys no longer locked whose last failure is older than
    /// `before`.
    pub async fn forget_login_attempts_before(&self, now: Millis, before: Millis) -> Result<()> {
        sqlx::query("DELETE FROM login_attempts WHERE locked_until <= $1 AND last_failure < $2")
            .bind(now)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

//! Users' git credentials: per host, a username and a token (a `Secret`,
//! read back only to hand to git).

use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{conflict_on_unique, get_uuid, Result, Store};
use crate::domain::git::GitCredential;
use crate::secret::Secret;

fn credential_from_row(r: &AnyRow) -> Result<GitCredential> {
    Ok(GitCredential {
        id: get_uuid(r, "id")?,
        user_id: get_uuid(r, "user_id")?,
        host: r.try_get("host")?,
        username: r.try_get("username")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Stores a credential; a second one for the same host of the same
    /// user is a conflict.
    pub async fn insert_git_credential(&self, c: &GitCredential, secret: &Secret) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO git_credentials (id, user_id, host, username, secret, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.id.to_string())
        .bind(c.user_id.to_string())
        .bind(&c.host)
        .bind(&c.username)
        .bind(secret.expose())
        .bind(c.created_at)
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) => Err(conflict_on_unique(
                e,
                &format!(
                    "a credential for {} is stored already: remove it first",
                    c.host
                ),
            )),
        }
    }

    /// A user's credentials, by host (never their secrets).
    pub async fn git_credentials(&self, user_id: Uuid) -> Result<Vec<GitCredential>> {
        let rows = sqlx::query(
            "SELECT id, user_id, host, username, created_at FROM git_credentials \
             WHERE user_id = $1 ORDER BY host",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credential_from_row).collect()
    }

    /// The user's credential for `host`, with its secret.
    pub async fn git_credential_for(
        &self,
        user_id: Uuid,
        host: &str,
    ) -> Result<Option<(GitCredential, Secret)>> {
        let row = sqlx::query("SELECT * FROM git_credentials WHERE user_id = $1 AND host = $2")
            .bind(user_id.to_string())
            .bind(host)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let secret: String = r.try_get("secret")?;
            Ok((credential_from_row(&r)?, Secret::new(secret)))
        })
        .transpose()
    }

    /// Removes one of the user's credentials; `false`: none with that id.
    pub async fn delete_git_credential(&self, user_id: Uuid, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM git_credentials WHERE id = $1 AND user_id = $2")
            .bind(id.to_string())
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

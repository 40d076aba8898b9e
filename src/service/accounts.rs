//! Accounts: users, their roles and passwords, and API tokens, with the
//! rules of `domain::accounts`. Written against the store alone, so the
//! CLI's admin commands (on the data directory, with or without a running
//! server, `docs/original-api.md` §4) and the API run the same code; logging in and
//! authenticating requests are in `auth`.

use std::sync::Arc;

use uuid::Uuid;

use super::auth::{check_email, hash_password, hash_token, new_token};
use super::{NewUser, Result, ServiceError};
use crate::config::AuthConfig;
use crate::domain::accounts::{check_password, check_removal, check_role_change, Holdings};
use crate::domain::accounts::{TokenInfo, TokenKind};
use crate::domain::{now_millis, Role, User};
use crate::store::Store;

/// Accounts over one store: management, logging in, authenticating.
/// Cheap to clone. Failed logins are counted in the store, so every
/// replica (and a restarted server) applies the same throttle.
#[derive(Clone, Debug)]
pub struct Accounts {
    pub(super) store: Store,
    pub(super) auth: Arc<AuthConfig>,
    /// One failed login recorded at a time in this process (the shared
    /// lock of each key orders them across replicas).
    pub(super) recording: Arc<tokio::sync::Mutex<()>>,
}

impl Accounts {
    pub fn new(store: Store, auth: AuthConfig) -> Accounts {
        Accounts {
            store,
            auth: Arc::new(auth),
            recording: Arc::default(),
        }
    }

    /// Sessions and login throttling, as configured.
    pub fn auth_config(&self) -> &AuthConfig {
        &self.auth
    }

    /// A user's tokens that have not expired, for listing (never the
    /// secrets: only their hashes are stored).
    pub async fn tokens_of(&self, user: &User) -> Result<Vec<TokenInfo>> {
        Ok(self.store.tokens_of(user.id, now_millis()).await?)
    }
}

impl Accounts {
    pub async fn add_user(&self, new: NewUser) -> Result<User> {
        let email = check_email(&new.email)?;
        check_password(&new.password).map_err(ServiceError::Invalid)?;
        let hash = hash_password(new.password).await?;
        Ok(self
            .store
            .insert_user(&email, &hash, new.role, now_millis())
            .await?)
    }

    /// Issues a non-expiring API token for `email`; returns the token itself
    /// (shown once, never stored).
    pub async fn create_api_token(&self, email: &str, name: &str) -> Result<String> {
        let user = self.find_user(email).await?;
        Ok(self.issue_api_token(&user, name).await?.1)
    }

    /// Issues a non-expiring API token; returns its id and the token itself
    /// (shown once, never stored).
    pub async fn issue_api_token(&self, user: &User, name: &str) -> Result<(TokenInfo, String)> {
        let name =
            crate::domain::validate_name("a token's name", name).map_err(ServiceError::Invalid)?;
        let name = name.as_str();
        let token = new_token();
        let now = now_millis();
        let id = self
            .store
            .insert_token(
                user.id,
                &hash_token(&token),
                TokenKind::Api,
                name,
                now,
                None,
            )
            .await?;
        let info = TokenInfo {
            id,
            kind: TokenKind::Api,
            name: name.to_string(),
            created_at: now,
            expires_at: None,
            last_used_at: None,
        };
        Ok((info, token))
    }

    /// The user with this email or id (the CLI names users either way).
    pub async fn find_user(&self, key: &str) -> Result<User> {
        if let Ok(id) = Uuid::parse_str(key.trim()) {
            return self
                .store
                .user(id)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("no user with id {id}")));
        }
        let email = check_email(key)?;
        Ok(self
            .store
            .user_by_email(&email)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no user with email {email}")))?
            .0)
    }

    /// Every user with what they own.
    pub async fn user_summaries(&self) -> Result<Vec<(User, Holdings)>> {
        let mut out = Vec::new();
        for user in self.store.users().await? {
            let holdings = self.store.holdings(user.id).await?;
            out.push((user, holdings));
        }
        Ok(out)
    }

    /// Gives `target` a role, unless that leaves no admin.
    pub async fn change_role(&self, target: &User, role: Role) -> Result<User> {
        check_role_change(target, role, self.store.admin_count().await?)
            .map_err(ServiceError::Conflict)?;
        self.store.set_role(target.id, role).await?;
        // Two admins demoting each other at once both pass the check above;
        // the one that finds no admin left puts its target back.
        if self.store.admin_count().await? == 0 {
            self.store.set_role(target.id, Role::Admin).await?;
            return Err(ServiceError::Conflict(format!(
                "{} is the only admin; make another user admin first",
                target.email
            )));
        }
        Ok(User {
            role,
            ..target.clone()
        })
    }

    /// Sets a user's password (an admin's reset, or the CLI) and ends their
    /// login sessions, except `keep`; returns how many ended. API tokens are
    /// separate credentials and stay.
    pub async fn set_password(
        &self,
        target: &User,
        password: String,
        keep: Option<Uuid>,
    ) -> Result<u64> {
        check_password(&password).map_err(ServiceError::Invalid)?;
        let hash = hash_password(password).await?;
        self.store.update_password(target.id, &hash).await?;
        // App cookies end too, the asking session's included: they were
        // handed out under the old password.
        self.store.delete_app_sessions_of(target.id).await?;
        Ok(self.store.delete_sessions_of(target.id, keep).await?)
    }

    /// Removes `target` (`actor`: the admin asking, `None` from the CLI).
    /// What they own passes to `heir`; without one they must own no live
    /// project or workspace, and their deleted projects still awaiting
    /// volume removal pass to the actor (or, from the CLI, the oldest
    /// admin) so that cleanup still finds them.
    pub async fn remove_user(
        &self,
        actor: Option<&User>,
        target: &User,
        heir: Option<&User>,
    ) -> Result<()> {
        let holdings = self.store.holdings(target.id).await?;
        check_removal(
            actor.map(|a| a.id),
            target,
            self.store.admin_count().await?,
            holdings,
            heir,
        )
        .map_err(ServiceError::Conflict)?;
        let heir_id = match (heir, actor) {
            (Some(h), _) => h.id,
            (None, Some(a)) => a.id,
            (None, None) => {
                let users = self.store.users().await?;
                users
                    .iter()
                    .find(|u| u.is_admin() && u.id != target.id)
                    .or_else(|| users.iter().find(|u| u.id != target.id))
                    .map(|u| u.id)
                    // The only user: nothing of theirs can be live (checked
                    // above), so deleted projects have nobody to go to.
                    .unwrap_or(target.id)
            }
        };
        if heir_id == target.id {
            return Err(ServiceError::Conflict(format!(
                "{} is the only user; add another before removing it",
                target.email
            )));
        }
        self.store.delete_user(target.id, heir_id).await?;
        Ok(())
    }

    /// Revokes one of `user`'s tokens (404 if they have no such token).
    pub async fn revoke_token(&self, user: &User, token_id: Uuid) -> Result<()> {
        if self.store.delete_token_of(user.id, token_id).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!(
                "no token with id {token_id}"
            )))
        }
    }
}

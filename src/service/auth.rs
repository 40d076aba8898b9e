//! Passwords (argon2id) and tokens (random, stored as SHA-256): logging in
//! (throttled), authenticating a request, and the API's account operations
//! with their permission checks, on top of the account management in
//! `accounts` (the code the CLI's admin commands run).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Accounts, Result, ServiceError};
use crate::domain::accounts::{check_password, check_role_change, Holdings};
use crate::domain::accounts::{TokenInfo, TokenKind};
use crate::domain::{now_millis, Millis, Role, User};

/// How stale a token's "last used" may get before a request refreshes it:
/// recording every request would put a database write on every read.
const TOUCH_EVERY_MS: Millis = 60_000;

/// Prefix of every token Berth issues, so secret scanners can spot a leak.
const TOKEN_PREFIX: &str = "berth_";

/// A user to create from the CLI.
pub struct NewUser {
    pub email: String,
    pub password: String,
    pub role: Role,
}

/// What a successful login gives.
pub struct AuthSession {
    pub token: String,
    /// The session's id (as its tokens are listed).
    pub token_id: Uuid,
    pub expires_at: Millis,
    pub user: User,
}

pub(super) fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub(super) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

pub(super) async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Internal(format!("hashing password: {e}")))
    })
    .await
    .map_err(|e| ServiceError::Internal(e.to_string()))?
}

async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// The keys a login is throttled by: ("account", …) and maybe ("address", …).
fn throttle_keys(email: &str, client: Option<std::net::IpAddr>) -> Vec<(&'static str, String)> {
    let mut keys = vec![("account", format!("account:{email}"))];
    if let Some(ip) = client {
        keys.push(("address", format!("address:{ip}")));
    }
    keys
}

impl Accounts {
    fn login_policy(&self, by: &str) -> crate::domain::throttle::ThrottlePolicy {
        self.auth.throttle(by == "address")
    }

    /// The first lock among `keys`, and for how many seconds more.
    async fn login_locked(
        &self,
        keys: &[(&'static str, String)],
        now: Millis,
    ) -> Result<Option<(&'static str, u64)>> {
        for (by, k) in keys {
            if let Some(secs) = self
                .store
                .login_attempts(k)
                .await?
                .and_then(|a| a.locked_for(now))
            {
                return Ok(Some((*by, secs)));
            }
        }
        Ok(None)
    }

    /// Counts a failure against every key, each under its lock shared
    /// with the other replicas, so that concurrent failures all count.
    async fn login_failed(&self, keys: &[(&'static str, String)], now: Millis) -> Result<()> {
        let _one = self.recording.lock().await;
        for (by, k) in keys {
            let p = self.login_policy(by);
            let _held = self
                .store
                .coordinator()
                .lock(&crate::store::LockKey::Login(k.clone()))
                .await?;
            let mut a = self.store.login_attempts(k).await?.unwrap_or_default();
            if let Some(secs) = a.fail(now, &p) {
                tracing::warn!(key = %k, lock_s = secs, "failed logins: locked");
            }
            self.store.save_login_attempts(k, &a).await?;
        }
        // What no policy remembers any more (the longest window).
        let window_ms = (self.auth.login_window_s as i64).saturating_mul(1000);
        self.store
            .forget_login_attempts_before(now, now.saturating_sub(window_ms))
            .await?;
        Ok(())
    }
}

/// A hash of no one's password, verified when the email is unknown so that
/// a login takes as long whether or not the account exists.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3bUJgc1cD2QMfe00PPiqrQKv3ZkCgYorM3UB29r4Tl0";

pub(super) fn check_email(email: &str) -> Result<String> {
    crate::domain::text::check("email", email, crate::domain::text::Shape::Line, 254)
        .map_err(ServiceError::Invalid)?;
    let email = email.trim().to_ascii_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(ServiceError::Invalid(format!(
            "{email:?} is not an email address"
        )));
    }
    Ok(email)
}

impl Accounts {
    /// Checks email and password and opens a session.
    pub async fn login(&self, email: &str, password: &str) -> Result<AuthSession> {
        self.login_from(email, password, None).await
    }

    /// [`Accounts::login`] from a client address, throttled: an account (known
    /// or not, answered alike) and an address are locked for a while after
    /// too many failures (`auth.login_*`), with a 429 that says when to try
    /// again. A lock on one account does not touch another.
    pub async fn login_from(
        &self,
        email: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<AuthSession> {
        let denied = || ServiceError::Unauthorized("invalid email or password".into());
        let email = email.trim().to_ascii_lowercase();
        let keys = throttle_keys(&email, client);
        let now = now_millis();
        if let Some((by, secs)) = self.login_locked(&keys, now).await? {
            metrics::counter!("berth_login_throttled_total", "by" => by).increment(1);
            return Err(ServiceError::Throttled {
                message: format!(
                    "too many failed logins for this {}; try again in {secs} s",
                    if by == "account" {
                        "account"
                    } else {
                        "address"
                    }
                ),
                retry_after_s: secs,
            });
        }
        let found = self.store.user_by_email(&email).await?;
        let ok = match found {
            Some((user, hash)) => verify_password(password.to_string(), hash)
                .await
                .then_some(user),
            None => {
                verify_password(password.to_string(), DECOY_HASH.to_string()).await;
                None
            }
        };
        let Some(user) = ok else {
            metrics::counter!("berth_login_failures_total").increment(1);
            self.login_failed(&keys, now_millis()).await?;
            return Err(denied());
        };
        // The account starts afresh; the address does not (an attacker
        // with one account of their own must not reset it).
        self.store.forget_login_attempts(&keys[0].1).await?;
        let now = now_millis();
        let ttl_ms = i64::try_from(self.auth.session_ttl_h)
            .unwrap_or(i64::MAX / 3_600_000)
            .saturating_mul(3_600_000);
        let expires_at = now.saturating_add(ttl_ms);
        let token = new_token();
        let token_id = self
            .store
            .insert_token(
                user.id,
                &hash_token(&token),
                TokenKind::Session,
                "login",
                now,
                Some(expires_at),
            )
            .await?;
        // Opportunistic housekeeping: sessions that ran out.
        self.store.delete_expired_tokens(now).await?;
        Ok(AuthSession {
            token,
            token_id,
            expires_at,
            user,
        })
    }

    /// The user a token belongs to, with the token's id (for logout).
    pub async fn authenticate(&self, token: &str) -> Result<(User, Uuid)> {
        let used = self.authenticate_use(token).await?;
        Ok((used.user, used.token_id))
    }

    /// As [`Accounts::authenticate`], with the token's kind and name (what
    /// the audit log says the actor used).
    pub async fn authenticate_use(&self, token: &str) -> Result<crate::store::TokenUse> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(ServiceError::Unauthorized(
                "invalid or expired token".into(),
            ));
        }
        let now = now_millis();
        let found = self
            .store
            .user_by_token_hash(&hash_token(token), now)
            .await?
            .ok_or_else(|| ServiceError::Unauthorized("invalid or expired token".into()))?;
        if found
            .last_used_at
            .is_none_or(|t| now.saturating_sub(t) >= TOUCH_EVERY_MS)
        {
            self.store.touch_token(found.token_id, now).await?;
        }
        Ok(found)
    }

    /// Every user with what they own (admins only, checked by the caller).
    pub async fn list_accounts(&self) -> Result<Vec<(User, Holdings)>> {
        self.user_summaries().await
    }

    /// A page of users, oldest first, with what they own (counted for the
    /// page's users only).
    pub async fn accounts_page(
        &self,
        page: &crate::domain::page::PageRequest,
    ) -> Result<crate::domain::page::Page<(User, Holdings)>> {
        let users = self.store.users_page(page).await?;
        let ids: Vec<Uuid> = users.items.iter().map(|u| u.id).collect();
        let held = self.store.holdings_of(&ids).await?;
        let items = users
            .items
            .iter()
            .map(|u| (u.clone(), held.get(&u.id).copied().unwrap_or_default()))
            .collect();
        Ok(crate::domain::page::Page {
            items,
            next: users.next,
            total: users.total,
            limit: users.limit,
        })
    }

    /// One user with what they own.
    pub async fn account(&self, id: Uuid) -> Result<(User, Holdings)> {
        let user = self
            .store
            .user(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no user with id {id}")))?;
        let holdings = self.store.holdings(id).await?;
        Ok((user, holdings))
    }

    /// An admin's change to a user: a role, a password reset, or both. Both
    /// are checked before either is written, so a refused request changes
    /// nothing. Returns the user as changed and what was done, in words.
    pub async fn update_account(
        &self,
        actor: &User,
        actor_token: Uuid,
        id: Uuid,
        role: Option<Role>,
        password: Option<String>,
    ) -> Result<(User, Holdings, Vec<String>)> {
        if role.is_none() && password.is_none() {
            return Err(ServiceError::Invalid(
                "nothing to change: give role and/or password".into(),
            ));
        }
        let (mut user, holdings) = self.account(id).await?;
        if let Some(p) = &password {
            check_password(p).map_err(ServiceError::Invalid)?;
        }
        if let Some(r) = role {
            check_role_change(&user, r, self.store.admin_count().await?)
                .map_err(ServiceError::Conflict)?;
        }
        let mut done = Vec::new();
        if let Some(p) = password {
            // An admin resetting their own password keeps the session asking.
            let keep = (user.id == actor.id).then_some(actor_token);
            let ended = self.set_password(&user, p, keep).await?;
            done.push(format!("password set; {ended} login session(s) ended"));
        }
        if let Some(r) = role.filter(|r| *r != user.role) {
            user = self.change_role(&user, r).await?;
            done.push(format!("role is now {}", r.as_str()));
        }
        Ok((user, holdings, done))
    }

    /// An admin removes a user, handing what they own to `transfer_to`.
    /// Returns the removed user and the heir.
    pub async fn remove_account(
        &self,
        actor: &User,
        id: Uuid,
        transfer_to: Option<Uuid>,
    ) -> Result<(User, Option<User>)> {
        let (user, _) = self.account(id).await?;
        let heir = match transfer_to {
            Some(h) => Some(self.store.user(h).await?.ok_or_else(|| {
                ServiceError::Invalid(format!("transferTo: no user with id {h}"))
            })?),
            None => None,
        };
        self.remove_user(Some(actor), &user, heir.as_ref()).await?;
        Ok((user, heir))
    }

    /// Makes an API token for the caller.
    pub async fn create_token(&self, user: &User, name: &str) -> Result<(TokenInfo, String)> {
        self.issue_api_token(user, name).await
    }

    /// Revokes one of the caller's tokens, never the one in use (that is a
    /// logout, and a client that revokes it by accident locks itself out).
    pub async fn revoke_own_token(&self, user: &User, current: Uuid, id: Uuid) -> Result<()> {
        if id == current {
            return Err(ServiceError::Conflict(
                "this request was made with that token; use POST /api/auth/logout to end it".into(),
            ));
        }
        self.revoke_token(user, id).await
    }

    /// Adds a user (admins only, checked by the caller).
    pub async fn add_account(&self, new: NewUser) -> Result<(User, Holdings)> {
        let user = self.add_user(new).await?;
        Ok((user, Holdings::default()))
    }

    /// Changes the caller's own password, given the current one, and ends
    /// their other login sessions (the one asking stays); returns how many
    /// ended.
    pub async fn change_own_password(
        &self,
        user: &User,
        token_id: Uuid,
        current: &str,
        new: String,
    ) -> Result<u64> {
        let (_, hash) = self
            .store
            .user_by_email(&user.email)
            .await?
            .ok_or_else(|| ServiceError::Unauthorized("invalid or expired token".into()))?;
        if !verify_password(current.to_string(), hash).await {
            // Not 401: the caller is authenticated; what they typed is wrong.
            return Err(ServiceError::Invalid(
                "currentPassword is not your current password".into(),
            ));
        }
        if current == new {
            return Err(ServiceError::Invalid(
                "newPassword must differ from the current one".into(),
            ));
        }
        self.set_password(user, new, Some(token_id)).await
    }

    /// Revokes one token.
    pub async fn logout(&self, token_id: Uuid) -> Result<()> {
        Ok(self.store.delete_token(token_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let a = new_token();
        let b = new_token();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_ne!(a, b);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), hash_token(&b));
    }

    #[tokio::test]
    async fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(verify_password("correct horse".into(), h.clone()).await);
        assert!(!verify_password("wrong".into(), h).await);
        assert!(!verify_password("x".into(), "not a hash".into()).await);
        // The decoy is a well-formed hash, so the unknown-user path does the
        // same work as a real check.
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(check_email(" A@B.io ").unwrap(), "a@b.io");
        assert!(check_email("nope").is_err());
        assert!(check_email("@x").is_err());
        assert!(check_email("a b@x").is_err());
    }
}

//! Users, passwords (argon2id) and tokens (random, stored as SHA-256).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Berth, Result, ServiceError};
use crate::domain::{now_millis, Millis, Role, User};
use crate::store::{Store, TokenKind};

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
    pub expires_at: Millis,
    pub user: User,
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

async fn hash_password(password: String) -> Result<String> {
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

/// A hash of no one's password, verified when the email is unknown so that
/// a login takes as long whether or not the account exists.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3bUJgc1cD2QMfe00PPiqrQKv3ZkCgYorM3UB29r4Tl0";

fn check_email(email: &str) -> Result<String> {
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

/// Admin commands that work on the data directory directly (SPEC §4), with
/// or without a running server.
impl Store {
    pub async fn add_user(&self, new: NewUser) -> Result<User> {
        let email = check_email(&new.email)?;
        if new.password.chars().count() < 8 {
            return Err(ServiceError::Invalid(
                "password must be at least 8 characters".into(),
            ));
        }
        let hash = hash_password(new.password).await?;
        Ok(self
            .insert_user(&email, &hash, new.role, now_millis())
            .await?)
    }

    /// Issues a non-expiring API token for `email`; returns the token itself
    /// (shown once, never stored).
    pub async fn create_api_token(&self, email: &str, name: &str) -> Result<String> {
        let email = check_email(email)?;
        let (user, _) = self
            .user_by_email(&email)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no user with email {email}")))?;
        let token = new_token();
        self.insert_token(
            user.id,
            &hash_token(&token),
            TokenKind::Api,
            name,
            now_millis(),
            None,
        )
        .await?;
        Ok(token)
    }
}

impl Berth {
    /// Checks email and password and opens a session.
    pub async fn login(&self, email: &str, password: &str) -> Result<AuthSession> {
        let denied = || ServiceError::Unauthorized("invalid email or password".into());
        let email = email.trim().to_ascii_lowercase();
        let found = self.store().user_by_email(&email).await?;
        let (user, hash) = match found {
            Some(f) => f,
            None => {
                verify_password(password.to_string(), DECOY_HASH.to_string()).await;
                return Err(denied());
            }
        };
        if !verify_password(password.to_string(), hash).await {
            return Err(denied());
        }
        let now = now_millis();
        let ttl_ms = i64::try_from(self.config().auth.session_ttl_h)
            .unwrap_or(i64::MAX / 3_600_000)
            .saturating_mul(3_600_000);
        let expires_at = now.saturating_add(ttl_ms);
        let token = new_token();
        self.store()
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
        self.store().delete_expired_tokens(now).await?;
        Ok(AuthSession {
            token,
            expires_at,
            user,
        })
    }

    /// The user a token belongs to, with the token's id (for logout).
    pub async fn authenticate(&self, token: &str) -> Result<(User, Uuid)> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Err(ServiceError::Unauthorized(
                "invalid or expired token".into(),
            ));
        }
        self.store()
            .user_by_token_hash(&hash_token(token), now_millis())
            .await?
            .ok_or_else(|| ServiceError::Unauthorized("invalid or expired token".into()))
    }

    /// Revokes one token.
    pub async fn logout(&self, token_id: Uuid) -> Result<()> {
        Ok(self.store().delete_token(token_id).await?)
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

//! Accounts on the wire: login, the caller, passwords, tokens, and the
//! admins' user management.

use super::*;

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    #[schemars(length(max = 254))]
    pub email: String,
    #[schemars(length(max = 1024))]
    pub password: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoggedOutDto {
    pub logged_out: bool,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    pub id: Uuid,
    pub email: String,
    #[schemars(with = "crate::domain::Role")]
    pub role: String,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
}

impl From<&User> for UserDto {
    fn from(u: &User) -> Self {
        UserDto {
            id: u.id,
            email: u.email.clone(),
            role: u.role.as_str().to_string(),
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    pub access_token: String,
    #[schemars(extend("const" = "Bearer"))]
    pub token_type: String,
    #[schemars(with = "Timestamp")]
    pub expires_at: String,
    pub user: UserDto,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schemars(length(max = 1024))]
    pub current_password: String,
    #[schemars(length(min = 8, max = 1024))]
    pub new_password: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordChangedDto {
    /// Login sessions ended by the change (API tokens stay).
    pub ended_sessions: u64,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// A label to recognise the token by.
    #[schemars(with = "Name")]
    pub name: String,
}

/// A token for one git host, stored once (`POST /api/auth/me/git-credentials`).
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitCredentialRequest {
    /// The host it is for (`git.example.com`: no scheme, port or path).
    #[schemars(length(max = 255))]
    pub host: String,
    /// The username sent with it (`git` when left out; most hosts accept
    /// any with a token).
    #[schemars(length(max = 255))]
    pub username: Option<String>,
    /// The token (or password): sent by HTTP basic authentication to that
    /// host when it asks, never shown again.
    #[schemars(length(max = 4096))]
    pub token: String,
}

/// A stored git credential: never its token.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitCredentialDto {
    pub id: Uuid,
    pub host: String,
    pub username: String,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
}

impl From<&crate::domain::git::GitCredential> for GitCredentialDto {
    fn from(c: &crate::domain::git::GitCredential) -> Self {
        GitCredentialDto {
            id: c.id,
            host: c.host.clone(),
            username: c.username.clone(),
            created_at: rfc3339(c.created_at),
        }
    }
}

/// A token as its owner sees it listed: never the secret itself.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenDto {
    pub id: Uuid,
    pub name: String,
    /// `api`: made for scripts, does not expire; `session`: a login.
    #[schemars(with = "TokenKindName")]
    pub kind: String,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
    #[schemars(with = "Option<Timestamp>")]
    pub expires_at: Option<String>,
    /// To the minute: refreshed at most once a minute.
    #[schemars(with = "Option<Timestamp>")]
    pub last_used_at: Option<String>,
    /// Whether this request was made with it.
    pub current: bool,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum TokenKindName {
    Api,
    Session,
}

impl TokenDto {
    pub fn new(t: &TokenInfo, current: Uuid) -> Self {
        TokenDto {
            id: t.id,
            name: t.name.clone(),
            kind: t.kind.as_str().to_string(),
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            last_used_at: t.last_used_at.map(rfc3339),
            current: t.id == current,
        }
    }
}

/// A new API token: the only time the secret is shown.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTokenDto {
    pub id: Uuid,
    pub name: String,
    /// Send as `Authorization: Bearer <token>`. Not shown again.
    pub token: String,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schemars(length(min = 3, max = 254))]
    pub email: String,
    #[schemars(length(min = 8, max = 1024))]
    pub password: String,
    /// `member` unless given.
    pub role: Option<Role>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub role: Option<Role>,
    /// A new password; ends the user's login sessions.
    #[schemars(length(min = 8, max = 1024))]
    pub password: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteUserQuery {
    /// The user who receives the removed user's projects, workspaces and
    /// backups. Needed when they own any.
    pub transfer_to: Option<Uuid>,
}

/// A user as an admin sees them: with what they own.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountDto {
    pub id: Uuid,
    pub email: String,
    #[schemars(with = "crate::domain::Role")]
    pub role: String,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
    /// Projects not deleted.
    pub projects: u64,
    pub workspaces: u64,
}

impl AccountDto {
    pub fn new(u: &User, h: Holdings) -> Self {
        AccountDto {
            id: u.id,
            email: u.email.clone(),
            role: u.role.as_str().to_string(),
            created_at: rfc3339(u.created_at),
            projects: h.projects,
            workspaces: h.workspaces,
        }
    }
}

/// `DELETE /api/users/:id`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDeletedDto {
    pub id: Uuid,
    /// Who received what the user owned.
    pub transferred_to: Option<Uuid>,
}

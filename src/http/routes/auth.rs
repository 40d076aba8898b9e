//! `/api/auth`: login (token + session cookie), logout, me, and what a user
//! manages of their own account: their password and their tokens.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, Caller, ClientAddr, IdPath, SESSION_COOKIE};
use crate::http::wire::{
    ok, ok_with, rfc3339, ChangePasswordRequest, CreateTokenRequest, CreatedTokenDto, DeletedDto,
    LoggedOutDto, LoginRequest, LoginResponse, PasswordChangedDto, TokenDto, UserDto,
};
use crate::http::wire::{GitCredentialDto, GitCredentialRequest};
use crate::service::{Accounts, Repos};

fn cookie(accounts: &Accounts, value: &str, max_age_s: u64) -> HeaderValue {
    let secure = if accounts.auth_config().cookie_secure {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .expect("cookie is ASCII")
}

pub async fn login(
    State(accounts): State<Accounts>,
    ClientAddr(client): ClientAddr,
    audit: Option<axum::Extension<crate::http::audit::AuditSlot>>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let session = accounts
        .login_from(&req.email, &req.password, client)
        .await?;
    if let Some(axum::Extension(slot)) = audit {
        slot.set(
            &session.user,
            crate::domain::audit::Credential::Session,
            session.token_id,
            "login",
        );
    }
    let max_age = accounts.auth_config().session_ttl_h.saturating_mul(3600);
    let set_cookie = cookie(&accounts, &session.token, max_age);
    let body = LoginResponse {
        access_token: session.token,
        token_type: "Bearer".to_string(),
        expires_at: rfc3339(session.expires_at),
        user: (&session.user).into(),
    };
    let mut resp = ok(body);
    resp.headers_mut().insert(SET_COOKIE, set_cookie);
    Ok(resp)
}

pub async fn logout(State(accounts): State<Accounts>, caller: Caller) -> ApiResult<Response> {
    accounts.logout(caller.token_id).await?;
    let mut resp = ok(LoggedOutDto { logged_out: true });
    resp.headers_mut()
        .insert(SET_COOKIE, cookie(&accounts, "", 0));
    Ok(resp.into_response())
}

pub async fn me(caller: Caller) -> Response {
    ok(UserDto::from(&caller.user))
}

pub async fn change_password(
    State(accounts): State<Accounts>,
    caller: Caller,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult<Response> {
    let ended = accounts
        .change_own_password(
            &caller.user,
            caller.token_id,
            &req.current_password,
            req.new_password,
        )
        .await?;
    Ok(ok_with(
        PasswordChangedDto {
            ended_sessions: ended,
        },
        format!("password changed; {ended} other login session(s) ended"),
    ))
}

pub async fn tokens(State(accounts): State<Accounts>, caller: Caller) -> ApiResult<Response> {
    let tokens = accounts.tokens_of(&caller.user).await?;
    Ok(ok(tokens
        .iter()
        .map(|t| TokenDto::new(t, caller.token_id))
        .collect::<Vec<_>>()))
}

pub async fn create_token(
    State(accounts): State<Accounts>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<Response> {
    let (info, token) = accounts.create_token(&caller.user, &req.name).await?;
    let body = CreatedTokenDto {
        id: info.id,
        name: info.name,
        token,
        created_at: rfc3339(info.created_at),
    };
    Ok((
        StatusCode::CREATED,
        ok_with(body, "keep the token now: it is not shown again"),
    )
        .into_response())
}

pub async fn revoke_token(
    State(accounts): State<Accounts>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    accounts
        .revoke_own_token(&caller.user, caller.token_id, id)
        .await?;
    Ok(ok(DeletedDto { id }))
}

/// The caller's stored git credentials (never their tokens).
pub async fn git_credentials(State(repos): State<Repos>, caller: Caller) -> ApiResult<Response> {
    let list = repos.git_credentials(&caller.user).await?;
    Ok(ok(list
        .iter()
        .map(GitCredentialDto::from)
        .collect::<Vec<_>>()))
}

pub async fn add_git_credential(
    State(repos): State<Repos>,
    caller: Caller,
    ApiJson(req): ApiJson<GitCredentialRequest>,
) -> ApiResult<Response> {
    let c = repos
        .add_git_credential(
            &caller.user,
            &req.host,
            req.username.as_deref().unwrap_or("git"),
            crate::secret::Secret::new(req.token),
        )
        .await?;
    Ok((StatusCode::CREATED, ok(GitCredentialDto::from(&c))).into_response())
}

pub async fn remove_git_credential(
    State(repos): State<Repos>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    repos.remove_git_credential(&caller.user, id).await?;
    Ok(ok(DeletedDto { id }))
}

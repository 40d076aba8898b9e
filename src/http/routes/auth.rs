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
use crate::service::Berth;

fn cookie(berth: &Berth, value: &str, max_age_s: u64) -> HeaderValue {
    let secure = if berth.config().auth.cookie_secure {
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
    State(berth): State<Berth>,
    ClientAddr(client): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let session = berth.login_from(&req.email, &req.password, client).await?;
    let max_age = berth.config().auth.session_ttl_h.saturating_mul(3600);
    let set_cookie = cookie(&berth, &session.token, max_age);
    let body = LoginResponse {
        access_token: session.token,
        token_type: "Bearer",
        expires_at: rfc3339(session.expires_at),
        user: (&session.user).into(),
    };
    let mut resp = ok(body);
    resp.headers_mut().insert(SET_COOKIE, set_cookie);
    Ok(resp)
}

pub async fn logout(State(berth): State<Berth>, caller: Caller) -> ApiResult<Response> {
    berth.logout(caller.token_id).await?;
    let mut resp = ok(LoggedOutDto { logged_out: true });
    resp.headers_mut().insert(SET_COOKIE, cookie(&berth, "", 0));
    Ok(resp.into_response())
}

pub async fn me(caller: Caller) -> Response {
    ok(UserDto::from(&caller.user))
}

pub async fn change_password(
    State(berth): State<Berth>,
    caller: Caller,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult<Response> {
    let ended = berth
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

pub async fn tokens(State(berth): State<Berth>, caller: Caller) -> ApiResult<Response> {
    let tokens = berth.tokens(&caller.user).await?;
    Ok(ok(tokens
        .iter()
        .map(|t| TokenDto::new(t, caller.token_id))
        .collect::<Vec<_>>()))
}

pub async fn create_token(
    State(berth): State<Berth>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateTokenRequest>,
) -> ApiResult<Response> {
    let (info, token) = berth.create_token(&caller.user, &req.name).await?;
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
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    berth
        .revoke_token(&caller.user, caller.token_id, id)
        .await?;
    Ok(ok(DeletedDto { id }))
}

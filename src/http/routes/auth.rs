//! `/api/auth`: login (token + session cookie), logout, me.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, Caller, SESSION_COOKIE};
use crate::http::wire::{ok, rfc3339, LoggedOutDto, LoginRequest, LoginResponse, UserDto};
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
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let session = berth.login(&req.email, &req.password).await?;
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

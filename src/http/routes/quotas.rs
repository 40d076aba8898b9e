//! Quotas: your own (`GET /api/auth/me/quota`), everyone's
//! (`GET /api/quotas`, admins), and one user's, read and set by admins
//! (`/api/users/{id}/quota`).

use axum::extract::State;
use axum::response::Response;

use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, Caller, IdPath};
use crate::http::wire::{ok, QuotaDto, SetQuotaRequest};
use crate::service::Quotas;

/// `GET /api/auth/me/quota`.
pub async fn mine(State(quotas): State<Quotas>, caller: Caller) -> ApiResult<Response> {
    Ok(ok(QuotaDto::from(&quotas.quota(&caller.user).await?)))
}

/// `GET /api/quotas`.
pub async fn all(State(quotas): State<Quotas>, caller: Caller) -> ApiResult<Response> {
    let list = quotas.quotas(&caller.user).await?;
    Ok(ok(list.iter().map(QuotaDto::from).collect::<Vec<_>>()))
}

/// `GET /api/users/{id}/quota`.
pub async fn of_user(
    State(quotas): State<Quotas>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    Ok(ok(QuotaDto::from(
        &quotas.quota_of(&caller.user, id).await?,
    )))
}

/// `PUT /api/users/{id}/quota`.
pub async fn set(
    State(quotas): State<Quotas>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<SetQuotaRequest>,
) -> ApiResult<Response> {
    let report = quotas.set_quota(&caller.user, id, req.overrides()).await?;
    Ok(ok(QuotaDto::from(&report)))
}

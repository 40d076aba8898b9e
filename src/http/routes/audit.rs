//! The audit log (`GET /api/audit`, admins) and quotas: your own
//! (`GET /api/auth/me/quota`), everyone's (`GET /api/quotas`, admins), and
//! one user's, read and set by admins (`/api/users/{id}/quota`).

use axum::extract::State;
use axum::response::Response;

use crate::domain::audit::AuditFilter;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery, Caller, IdPath};
use crate::http::wire::{ok, ok_page, AuditDto, AuditQuery, QuotaDto, SetQuotaRequest};
use crate::service::{Audit, Berth};

fn time(field: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    v.as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "{field}: {e}; give a time like 2026-12-06T15:00:00Z"
                    ))
                })
        })
        .transpose()
}

/// `GET /api/audit`.
pub async fn log(
    State(audit): State<Audit>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Response> {
    let filter = AuditFilter {
        actor: q.user,
        resource: q.resource.clone(),
        action: q.action.clone(),
        since: time("since", &q.since)?,
        until: time("until", &q.until)?,
    };
    let page =
        crate::domain::page::PageRequest::parse(Some(q.limit.unwrap_or(100)), q.cursor.as_deref())
            .map_err(ApiError::bad_request)?;
    let records = audit.page(&caller.user, &filter, &page).await?;
    Ok(ok_page(records, |r| AuditDto::from(&r)))
}

/// `GET /api/auth/me/quota`.
pub async fn mine(State(berth): State<Berth>, caller: Caller) -> ApiResult<Response> {
    Ok(ok(QuotaDto::from(
        &berth.quotas().quota(&caller.user).await?,
    )))
}

/// `GET /api/quotas`.
pub async fn all(State(berth): State<Berth>, caller: Caller) -> ApiResult<Response> {
    let list = berth.quotas().quotas(&caller.user).await?;
    Ok(ok(list.iter().map(QuotaDto::from).collect::<Vec<_>>()))
}

/// `GET /api/users/{id}/quota`.
pub async fn of_user(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    Ok(ok(QuotaDto::from(
        &berth.quotas().quota_of(&caller.user, id).await?,
    )))
}

/// `PUT /api/users/{id}/quota`.
pub async fn set(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<SetQuotaRequest>,
) -> ApiResult<Response> {
    let report = berth
        .quotas()
        .set_quota(&caller.user, id, req.overrides())
        .await?;
    Ok(ok(QuotaDto::from(&report)))
}

//! The audit log (`GET /api/audit`, admins).

use axum::extract::State;
use axum::response::Response;

use crate::domain::audit::AuditFilter;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiQuery, Caller};
use crate::http::wire::{ok_page, AuditDto, AuditQuery};
use crate::service::Audit;

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

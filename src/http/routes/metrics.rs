//! `GET /metrics`: Prometheus text. Optionally behind `metrics.token`.

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::domain::WorkspaceStatus;
use crate::http::error::{ApiError, ApiResult};
use crate::service::Berth;

pub async fn render(State(berth): State<Berth>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(want) = &berth.config().metrics.token {
        let got = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if got != Some(want.as_str()) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "metrics need 'Authorization: Bearer <metrics.token>'",
            ));
        }
    }
    // Fleet gauges from the store: every type × status, zeros included, so
    // a series that drops to zero says so instead of vanishing.
    let all = berth
        .store()
        .workspaces(None)
        .await
        .map_err(crate::service::ServiceError::from)?;
    for t in berth.config().types.keys() {
        for st in WorkspaceStatus::ALL {
            let n = all
                .iter()
                .filter(|w| &w.type_name == t && w.status == st)
                .count();
            metrics::gauge!("berth_workspaces", "type" => t.clone(), "status" => st.as_str())
                .set(n as f64);
        }
    }
    let mut resp = crate::metrics::handle().render().into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}

//! The one place where errors become HTTP responses: the envelope
//! `{"success": false, "error": {"code", "message"}}` and a status code per
//! error kind. Internal details are logged, never shown to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::engine::EngineError;
use crate::service::ServiceError;

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Sent as `Retry-After` (a throttled login).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use ServiceError as S;
        match e {
            S::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            S::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m),
            S::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            S::Quota(m) => ApiError::new(StatusCode::CONFLICT, "quota_exceeded", m),
            S::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m),
            S::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            S::Refused(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", m),
            S::VolumeAccess(m) => {
                tracing::warn!(error = %m, "volume data not reachable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "volume_access_unavailable",
                    m,
                )
            }
            S::NotReady(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "workspace_unavailable", m)
            }
            S::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", m),
            S::InsufficientStorage(m) => {
                tracing::warn!(error = %m, "not enough free space");
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage", m)
            }
            // Volume data failed to read or write: the reason is the
            // user's own data's (paths relative to their volume), shown.
            S::Storage(m) => {
                tracing::error!(error = %m, "volume storage failed");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_error", m)
            }
            S::Throttled {
                message,
                retry_after_s,
            } => ApiError {
                retry_after_s: Some(retry_after_s),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
            },
            S::Remote(m) => {
                tracing::warn!(error = %m, "remote backup store failed");
                ApiError::new(StatusCode::BAD_GATEWAY, "remote_storage_error", m)
            }
            S::Registry(m) => {
                tracing::warn!(error = %m, "image registry failed");
                ApiError::new(StatusCode::BAD_GATEWAY, "registry_error", m)
            }
            S::Unavailable(m) => {
                tracing::warn!(error = %m, "engine unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "engine_unavailable", m)
            }
            S::Engine(e) => {
                tracing::error!(error = %e, "engine call failed");
                match e {
                    // The engine's own words help the operator here (a port
                    // taken, a limit the kernel refuses) and reveal nothing
                    // about other users.
                    EngineError::Conflict(m) => {
                        ApiError::new(StatusCode::CONFLICT, "engine_conflict", m)
                    }
                    other => ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "engine_error",
                        format!("the Docker engine failed: {other}"),
                    ),
                }
            }
            S::Store(e) => {
                tracing::error!(error = %e, "store failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error (logged on the server)",
                )
            }
            S::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error (logged on the server)",
                )
            }
        }
    }
}

/// The error envelope every failure answers with (described in the API
/// document as `Error`).
#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[schemars(rename = "Error")]
pub struct ErrorEnvelope {
    #[schemars(extend("const" = false))]
    pub success: bool,
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_request`, `unauthorized`,
    /// `forbidden`, `not_found`, `conflict`, `refused`, `payload_too_large`,
    /// `engine_unavailable`, `workspace_unavailable`, … (see the status).
    pub code: String,
    /// For people: what went wrong and what to change.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope {
            success: false,
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        // What the audit log records of a refusal, without reading the body.
        resp.extensions_mut().insert(ErrorCode(self.code));
        if let Some(s) = self.retry_after_s {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(s.max(1)),
            );
        }
        resp
    }
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// The code of the error a response carries (a response extension).
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

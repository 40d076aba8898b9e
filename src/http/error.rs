//! The one place where errors become HTTP responses: the envelope
//! `{"success": false, "error": {"code", "message"}}` and a status code per
//! error kind. Internal details are logged, never shown to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::engine::EngineError;
use crate::service::ServiceError;

crate::domain::spelled_enum! {
    /// The stable, machine-readable `error.code` of an answer; each has
    /// one HTTP status ([`ErrorCode::status`]). Also a response extension:
    /// what the audit log records of a refusal, without reading the body.
    pub enum ErrorCode("error code") {
        /// The input is wrong; the message says what to fix.
        InvalidRequest = "invalid_request",
        /// No valid credentials.
        Unauthorized = "unauthorized",
        /// Signed in, but not allowed.
        Forbidden = "forbidden",
        /// A cookie-authenticated change from another origin.
        CrossOrigin = "cross_origin",
        /// Path mode serves a workspace's app to its owner only.
        PathAppRefused = "path_app_refused",
        /// No such thing (or not yours).
        NotFound = "not_found",
        /// The path exists, not with this method.
        MethodNotAllowed = "method_not_allowed",
        /// The state does not allow it now; the message says what to do first.
        Conflict = "conflict",
        /// It would take the owner over a quota.
        QuotaExceeded = "quota_exceeded",
        /// The engine refused it for its state (a port taken).
        EngineConflict = "engine_conflict",
        /// The body is larger than allowed.
        PayloadTooLarge = "payload_too_large",
        /// A JSON body without its content type.
        UnsupportedMediaType = "unsupported_media_type",
        /// Understood, and refused (a backup that does not verify).
        Refused = "refused",
        /// Throttled; `Retry-After` says when to try again.
        TooManyAttempts = "too_many_attempts",
        /// A fault of Berth's, logged on the server.
        Internal = "internal",
        /// Reading or writing volume data failed.
        StorageError = "storage_error",
        /// The Docker engine failed.
        EngineError = "engine_error",
        /// The workspace's app failed to answer.
        UpstreamError = "upstream_error",
        /// The workspace did not accept the connection.
        UpstreamUnreachable = "upstream_unreachable",
        /// Nothing listens on that port in the workspace.
        PortNotListening = "port_not_listening",
        /// The remote backup store failed.
        RemoteStorageError = "remote_storage_error",
        /// The image registry failed.
        RegistryError = "registry_error",
        /// A git server did not answer, or git failed (its words follow).
        GitFailed = "git_failed",
        /// Volume data cannot be reached now.
        VolumeAccessUnavailable = "volume_access_unavailable",
        /// The workspace is not running or not ready.
        WorkspaceUnavailable = "workspace_unavailable",
        /// The Docker engine cannot be reached.
        EngineUnavailable = "engine_unavailable",
        /// The workspace is still starting; try again.
        WorkspaceStarting = "workspace_starting",
        /// The workspace's app took too long to answer.
        UpstreamTimeout = "upstream_timeout",
        /// Not enough free space for it.
        InsufficientStorage = "insufficient_storage",
    }
}

impl ErrorCode {
    /// The HTTP status every answer with this code has.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::CrossOrigin => StatusCode::FORBIDDEN,
            Self::PathAppRefused => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::QuotaExceeded => StatusCode::CONFLICT,
            Self::EngineConflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Refused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::StorageError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::EngineError => StatusCode::BAD_GATEWAY,
            Self::UpstreamError => StatusCode::BAD_GATEWAY,
            Self::UpstreamUnreachable => StatusCode::BAD_GATEWAY,
            Self::PortNotListening => StatusCode::BAD_GATEWAY,
            Self::RemoteStorageError => StatusCode::BAD_GATEWAY,
            Self::RegistryError => StatusCode::BAD_GATEWAY,
            Self::GitFailed => StatusCode::BAD_GATEWAY,
            Self::VolumeAccessUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::WorkspaceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::EngineUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::WorkspaceStarting => StatusCode::GATEWAY_TIMEOUT,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        }
    }
}

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Sent as `Retry-After` (a throttled login).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// The HTTP status it answers with (its code's).
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidRequest, message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use ServiceError as S;
        match e {
            S::NotFound(m) => ApiError::new(ErrorCode::NotFound, m),
            S::Invalid(m) => ApiError::new(ErrorCode::InvalidRequest, m),
            S::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            S::Quota(m) => ApiError::new(ErrorCode::QuotaExceeded, m),
            S::Unauthorized(m) => ApiError::new(ErrorCode::Unauthorized, m),
            S::Forbidden(m) => ApiError::new(ErrorCode::Forbidden, m),
            S::Refused(m) => ApiError::new(ErrorCode::Refused, m),
            S::VolumeAccess(m) => {
                tracing::warn!(error = %m, "volume data not reachable");
                ApiError::new(ErrorCode::VolumeAccessUnavailable, m)
            }
            S::NotReady(m) => ApiError::new(ErrorCode::WorkspaceUnavailable, m),
            S::TooLarge(m) => ApiError::new(ErrorCode::PayloadTooLarge, m),
            S::InsufficientStorage(m) => {
                tracing::warn!(error = %m, "not enough free space");
                ApiError::new(ErrorCode::InsufficientStorage, m)
            }
            // Volume data failed to read or write: the reason is the
            // user's own data's (paths relative to their volume), shown.
            S::Storage(m) => {
                tracing::error!(error = %m, "volume storage failed");
                ApiError::new(ErrorCode::StorageError, m)
            }
            S::Throttled {
                message,
                retry_after_s,
            } => ApiError {
                retry_after_s: Some(retry_after_s),
                ..ApiError::new(ErrorCode::TooManyAttempts, message)
            },
            S::Remote(m) => {
                tracing::warn!(error = %m, "remote backup store failed");
                ApiError::new(ErrorCode::RemoteStorageError, m)
            }
            S::Git(m) => {
                tracing::warn!(error = %m, "git failed");
                ApiError::new(ErrorCode::GitFailed, m)
            }
            S::Registry(m) => {
                tracing::warn!(error = %m, "image registry failed");
                ApiError::new(ErrorCode::RegistryError, m)
            }
            S::Unavailable(m) => {
                tracing::warn!(error = %m, "engine unavailable");
                ApiError::new(ErrorCode::EngineUnavailable, m)
            }
            S::Engine(e) => {
                tracing::error!(error = %e, "engine call failed");
                match e {
                    // The engine's own words help the operator here (a port
                    // taken, a limit the kernel refuses) and reveal nothing
                    // about other users.
                    EngineError::Conflict(m) => ApiError::new(ErrorCode::EngineConflict, m),
                    other => ApiError::new(
                        ErrorCode::EngineError,
                        format!("the Docker engine failed: {other}"),
                    ),
                }
            }
            S::Store(e) => {
                tracing::error!(error = %e, "store failed");
                ApiError::new(ErrorCode::Internal, "internal error (logged on the server)")
            }
            S::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                ApiError::new(ErrorCode::Internal, "internal error (logged on the server)")
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
                code: self.code.as_str().to_string(),
                message: self.message,
            },
        };
        let mut resp = (self.code.status(), Json(body)).into_response();
        // What the audit log records of a refusal, without reading the body.
        resp.extensions_mut().insert(self.code);
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

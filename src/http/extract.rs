//! Extractors that turn every kind of bad input into a clear 4xx in the
//! error envelope: the caller (bearer token or session cookie), JSON bodies,
//! UUID path segments and query strings.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::ApiError;
use crate::domain::User;
use crate::service::Berth;

/// Name of the session cookie set by login.
pub const SESSION_COOKIE: &str = "berth_session";

/// The authenticated caller, and the id of the token that authenticated it.
pub struct Caller {
    pub user: User,
    pub token_id: Uuid,
}

fn token_from(parts: &Parts) -> Option<String> {
    // Another scheme (Basic, say) is meant for a workspace's own app behind
    // the proxy; the session cookie may still authenticate the request.
    let bearer = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string());
    if bearer.is_some() {
        return bearer;
    }
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

impl FromRequestParts<Berth> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, berth: &Berth) -> Result<Self, Self::Rejection> {
        let token = token_from(parts).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "authentication required: send 'Authorization: Bearer <token>' or log in",
            )
        })?;
        let (user, token_id) = berth.authenticate(&token).await?;
        Ok(Caller { user, token_id })
    }
}

/// A JSON body whose every rejection is an [`ApiError`]: 400 for malformed
/// JSON or wrong fields, 413 past the size limit, 415 without a JSON
/// content type.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    match &rej {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with 'Content-Type: application/json'",
        ),
        JsonRejection::JsonDataError(e) => {
            ApiError::bad_request(format!("invalid request body: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request(format!("malformed JSON: {}", e.body_text()))
        }
        _ if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is too large",
        ),
        _ => ApiError::bad_request(rej.body_text()),
    }
}

/// A single UUID path segment; anything else is a 400 naming the value.
pub struct IdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        Uuid::parse_str(&raw)
            .map(IdPath)
            .map_err(|_| ApiError::bad_request(format!("invalid id {raw:?}: expected a UUID")))
    }
}

/// Parses a UUID given in a body or query, naming the field when it is not one.
pub fn parse_uuid(field: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::bad_request(format!("{field} {raw:?} is not a valid UUID")))
}

/// A query string whose rejection is a 400 that says what is wrong.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| {
                ApiError::bad_request(format!("invalid query string: {}", e.body_text()))
            })
    }
}

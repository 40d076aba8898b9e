//! Extractors that turn every kind of bad input into a clear 4xx in the
//! error envelope: the caller (bearer token or session cookie), JSON bodies,
//! UUID path segments and query strings.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use uuid::Uuid;

use super::error::{ApiError, ErrorCode};
use crate::domain::{text, User};
use crate::service::{Accounts, Berth};

/// Name of the session cookie set by login.
pub const SESSION_COOKIE: &str = "berth_session";

/// The authenticated caller, and the id of the token that authenticated it.
#[derive(Clone)]
pub struct Caller {
    pub user: User,
    pub token_id: Uuid,
}

impl Caller {
    /// Refuses with 403 unless the caller is an admin; `what` ends the
    /// message "only an admin may …".
    pub fn require_admin(&self, what: &str) -> Result<(), ApiError> {
        if self.user.is_admin() {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("only an admin may {what}"),
            ))
        }
    }
}

/// The token a request carries, and whether it came from the session
/// cookie (rather than an `Authorization: Bearer` header).
fn token_from(parts: &Parts) -> Option<(String, bool)> {
    // Another scheme (Basic, say) is meant for a workspace's own app behind
    // the proxy; the session cookie may still authenticate the request.
    let bearer = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string());
    if let Some(b) = bearer {
        return Some((b, false));
    }
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| (v.to_string(), true))
}

/// Whether a request that the session cookie authenticates may change
/// anything (or open a WebSocket): only when it comes from Berth's own pages. SameSite=Strict
/// keeps other sites out, but not other origins of the same site (a
/// workspace's published port on this host, a sibling subdomain), so the
/// browser's `Origin` must be this very origin — the `Host` asked for, or
/// `public_url` behind a reverse proxy that rewrites `Host` — (or, without
/// one, `Sec-Fetch-Site: same-origin`). Bearer tokens are not sent by
/// browsers on their own and need no such check.
fn cookie_request_allowed(parts: &Parts, public_origin: &str) -> bool {
    use axum::http::Method;
    // A WebSocket handshake is a GET, but what it opens (a terminal, an
    // editor's channel) acts: it is held to the same rule.
    let upgrade = parts.headers.contains_key(axum::http::header::UPGRADE);
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) && !upgrade {
        return true;
    }
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    match header("origin") {
        Some(origin) => {
            let host = header("host").unwrap_or_default();
            origin.eq_ignore_ascii_case(public_origin)
                || origin
                    .split_once("://")
                    .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
        }
        None => header("sec-fetch-site") == Some("same-origin"),
    }
}

impl<S> FromRequestParts<S> for Caller
where
    Berth: FromRef<S>,
    Accounts: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let berth = &Berth::from_ref(state);
        // Already authenticated by the operation's own check.
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let (token, from_cookie) = token_from(parts).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "authentication required: send 'Authorization: Bearer <token>' or log in",
            )
        })?;
        if from_cookie && !cookie_request_allowed(parts, &berth.core().app_urls().public_base()) {
            return Err(ApiError::new(ErrorCode::CrossOrigin, "a request that changes something with the session cookie must come from Berth's own pages (same Origin); scripts send 'Authorization: Bearer <token>'",
            ));
        }
        let used = Accounts::from_ref(state).authenticate_use(&token).await?;
        if let Some(slot) = parts.extensions.get::<crate::http::audit::AuditSlot>() {
            let credential = match used.kind {
                crate::domain::accounts::TokenKind::Session => {
                    crate::domain::audit::Credential::Session
                }
                crate::domain::accounts::TokenKind::Api => crate::domain::audit::Credential::Token,
            };
            slot.set(&used.user, credential, used.token_id, &used.name);
        }
        Ok(Caller {
            user: used.user,
            token_id: used.token_id,
        })
    }
}

/// The client's address, when the server knows it (a socket: yes; the
/// router driven in-process: no). Behind a reverse proxy it is the proxy's.
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// A JSON body whose every rejection is an [`ApiError`]: 400 for malformed
/// JSON or wrong fields, 413 past the size limit, 415 without a JSON
/// content type.
///
/// serde's derived structs also accept a JSON array, field by field in
/// declaration order (`[2, 512]` as `{"cpus": 2, "memory": 512}`): a silent
/// trap for a client, so an array where the type's schema has an object is
/// refused, naming where.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned + JsonSchema + 'static,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(json_rejection(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
            } else {
                ApiError::bad_request(e.body_text())
            }
        })?;
        parse_json_body(&bytes).map(ApiJson)
    }
}

/// Parses a request body as `T` with [`ApiJson`]'s rules (also for
/// handlers that take an optional body).
pub fn parse_json_body<T: DeserializeOwned + JsonSchema + 'static>(
    bytes: &[u8],
) -> Result<T, ApiError> {
    let axum::Json(v) = axum::Json::<T>::from_bytes(bytes).map_err(json_rejection)?;
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if let Some(at) = array_for_object::<T>(&value) {
        return Err(ApiError::bad_request(format!(
            "invalid request body: {at} must be an object with named fields, not an array"
        )));
    }
    check_body_texts::<T>(&value)?;
    Ok(v)
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// `T`'s schema as a request body or query is read (the deserialize
/// contract), with its definitions; made once per type.
fn request_schema<T: JsonSchema + 'static>() -> Arc<(serde_json::Value, serde_json::Value)> {
    use std::any::TypeId;
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Schemas = HashMap<TypeId, Arc<(serde_json::Value, serde_json::Value)>>;
    static CACHE: OnceLock<Mutex<Schemas>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .expect("schema cache");
    cache
        .entry(TypeId::of::<T>())
        .or_insert_with(|| {
            let mut g = schemars::generate::SchemaSettings::draft2020_12()
                .for_deserialize()
                .into_generator();
            let root = g.subschema_for::<T>().to_value();
            let defs = serde_json::Value::Object(g.take_definitions(false));
            Arc::new((root, defs))
        })
        .clone()
}

/// Where `value` has an array at a place `T`'s schema describes an object
/// (`body` for the whole, else the field path), if anywhere.
fn array_for_object<T: JsonSchema + 'static>(value: &serde_json::Value) -> Option<String> {
    let entry = request_schema::<T>();
    let (root, defs) = &*entry;
    find_array_for_object(value, root, defs, "body")
}

/// Follows `$ref`s to the schema they name.
fn deref<'a>(
    mut schema: &'a serde_json::Value,
    defs: &'a serde_json::Value,
) -> &'a serde_json::Value {
    while let Some(r) = schema.get("$ref").and_then(serde_json::Value::as_str) {
        match defs.get(r.rsplit('/').next().unwrap_or("")) {
            Some(s) => schema = s,
            None => break,
        }
    }
    schema
}

/// The text rule's shape and bound for a string `schema` declares
/// (`x-berth-text`, `maxLength`; else one line of [`text::DEFAULT_MAX`]).
fn text_rule(schema: &serde_json::Value, defs: &serde_json::Value) -> (text::Shape, usize) {
    let schema = deref(schema, defs);
    // `Option<String>` and the like: the branch that is not null.
    let schema = ["anyOf", "oneOf"]
        .iter()
        .find_map(|k| schema.get(*k).and_then(serde_json::Value::as_array))
        .and_then(|branches| {
            branches
                .iter()
                .map(|b| deref(b, defs))
                .find(|b| b.get("type") != Some(&serde_json::Value::from("null")))
        })
        .unwrap_or(schema);
    let shape = schema
        .get(text::Shape::SCHEMA_KEY)
        .and_then(serde_json::Value::as_str)
        .and_then(text::Shape::parse)
        .unwrap_or(text::Shape::Line);
    let max = schema
        .get("maxLength")
        .and_then(serde_json::Value::as_u64)
        .map_or(text::DEFAULT_MAX, |m| m as usize);
    (shape, max)
}

/// The schema of `value`'s field `key` under `schema` (its properties,
/// else its `additionalProperties`; an `Option`'s branch that is not null).
fn field_schema<'a>(
    schema: &'a serde_json::Value,
    defs: &'a serde_json::Value,
    key: &str,
) -> Option<&'a serde_json::Value> {
    let schema = deref(schema, defs);
    if let Some(s) = schema.get("properties").and_then(|p| p.get(key)) {
        return Some(s);
    }
    if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object()) {
        return Some(s);
    }
    ["anyOf", "oneOf", "allOf"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(serde_json::Value::as_array))
        .flatten()
        .find_map(|b| field_schema(b, defs, key))
}

fn items_schema<'a>(
    schema: &'a serde_json::Value,
    defs: &'a serde_json::Value,
) -> Option<&'a serde_json::Value> {
    let schema = deref(schema, defs);
    if let Some(s) = schema.get("items") {
        return Some(s);
    }
    ["anyOf", "oneOf"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(serde_json::Value::as_array))
        .flatten()
        .find_map(|b| items_schema(b, defs))
}

/// Applies the text rule to every string in `value` (and every key of its
/// objects), each under the shape and bound its schema declares; the error
/// names the field (`tls.ca`, `labels.team`, `command[2]`).
fn check_texts(
    value: &serde_json::Value,
    schema: Option<&serde_json::Value>,
    defs: &serde_json::Value,
    at: &str,
) -> Result<(), String> {
    use serde_json::Value;
    let null = Value::Null;
    let schema = schema.unwrap_or(&null);
    let join = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match value {
        Value::String(s) => {
            let (shape, max) = text_rule(schema, defs);
            text::check(if at.is_empty() { "body" } else { at }, s, shape, max)
        }
        Value::Array(items) => {
            let sub = items_schema(schema, defs);
            for (i, v) in items.iter().enumerate() {
                check_texts(v, sub, defs, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        Value::Object(fields) => {
            for (k, v) in fields {
                let field = join(k);
                text::check(
                    &format!("{field} (a key)"),
                    k,
                    text::Shape::Line,
                    text::DEFAULT_MAX,
                )?;
                check_texts(v, field_schema(schema, defs, k), defs, &field)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Applies the text rule to a request body read as `T`.
fn check_body_texts<T: JsonSchema + 'static>(value: &serde_json::Value) -> Result<(), ApiError> {
    let entry = request_schema::<T>();
    let (root, defs) = &*entry;
    check_texts(value, Some(root), defs, "").map_err(ApiError::bad_request)
}

/// Applies the text rule to every parameter of a query string read as `T`.
fn check_query_texts<T: JsonSchema + 'static>(query: &str) -> Result<(), ApiError> {
    let entry = request_schema::<T>();
    let (root, defs) = &*entry;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        text::check(
            &format!("query parameter {k} (its name)"),
            &k,
            text::Shape::Line,
            text::DEFAULT_MAX,
        )
        .map_err(ApiError::bad_request)?;
        let (shape, max) = field_schema(root, defs, &k)
            .map_or((text::Shape::Line, text::DEFAULT_MAX), |s| {
                text_rule(s, defs)
            });
        text::check(&format!("query parameter {k}"), &v, shape, max)
            .map_err(ApiError::bad_request)?;
    }
    Ok(())
}

fn find_array_for_object(
    value: &serde_json::Value,
    schema: &serde_json::Value,
    defs: &serde_json::Value,
    at: &str,
) -> Option<String> {
    use serde_json::Value;
    // Follow `$ref` into the definitions.
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or("");
        return find_array_for_object(value, defs.get(name)?, defs, at);
    }
    // `Option<Struct>`: the branch that is not null.
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            return branches
                .iter()
                .filter(|b| b.get("type") != Some(&Value::from("null")))
                .find_map(|b| find_array_for_object(value, b, defs, at));
        }
    }
    let props = schema.get("properties").and_then(Value::as_object)?;
    match value {
        Value::Array(_) => Some(at.to_string()),
        Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            let sub = props.get(k)?;
            let path = if at == "body" {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            find_array_for_object(v, sub, defs, &path)
        }),
        _ => None,
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    match &rej {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON with 'Content-Type: application/json'",
        ),
        JsonRejection::JsonDataError(e) => {
            ApiError::bad_request(format!("invalid request body: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request(format!("malformed JSON: {}", e.body_text()))
        }
        _ if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(ErrorCode::PayloadTooLarge, "request body is too large")
        }
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

/// A single string path segment (a node's, a job's or a type's name)
/// under the text rule: one line of at most [`text::DEFAULT_MAX`]
/// characters, a 400 naming the parameter otherwise.
pub struct TextPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for TextPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let mut found = None;
        for (name, value) in &params {
            text::check(
                &format!("path parameter {name}"),
                value,
                text::Shape::Line,
                text::DEFAULT_MAX,
            )
            .map_err(ApiError::bad_request)?;
            found = Some(value.to_string());
        }
        found
            .map(TextPath)
            .ok_or_else(|| ApiError::bad_request("a path parameter is missing"))
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
    T: DeserializeOwned + JsonSchema + 'static,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        check_query_texts::<T>(parts.uri.query().unwrap_or(""))?;
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| {
                ApiError::bad_request(format!("invalid query string: {}", e.body_text()))
            })
    }
}

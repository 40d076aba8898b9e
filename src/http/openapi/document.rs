//! The OpenAPI document written from the operation table: paths and their
//! parameters, request and response schemas in the envelope, the error
//! responses each operation's shape implies, and the shared components.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::{openapi_path, path_params, Auth, Input, Op, Output};
use crate::http::error::ErrorEnvelope;

fn reason(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => (
            "BadRequest",
            "The request is invalid; the message says what to fix.",
        ),
        401 => (
            "Unauthorized",
            "No valid token or session: log in, or send `Authorization: Bearer <token>`.",
        ),
        403 => ("Forbidden", "Signed in, but not allowed (admins only)."),
        404 => (
            "NotFound",
            "No such resource, or it belongs to another user.",
        ),
        409 => (
            "Conflict",
            "The resource's state does not allow this now (or the engine refused: a port taken).",
        ),
        413 => (
            "PayloadTooLarge",
            "The body is larger than the configured limit.",
        ),
        415 => (
            "UnsupportedMediaType",
            "The body must be `application/json`.",
        ),
        422 => (
            "Refused",
            "Understood, but refused: e.g. an archive that fails its checksum, a volume in use.",
        ),
        500 => (
            "Internal",
            "An internal error; the details are in the server's log.",
        ),
        502 => (
            "BadGateway",
            "The Docker engine (or, behind the proxy, the workspace) failed to answer.",
        ),
        503 => (
            "Unavailable",
            "The Docker engine, the volume data or the workspace is not available now.",
        ),
        504 => (
            "Timeout",
            "The workspace did not become ready, or did not answer, in time.",
        ),
        _ => ("Error", "An error."),
    }
}

/// The 503 of the proxy, which may be an HTML page.
const STARTING: &str = "UnavailableOrStarting";

fn envelope(data: Schema) -> Value {
    json!({
        "type": "object",
        "required": ["success", "data"],
        "properties": {
            "success": { "const": true },
            "data": data,
            "message": { "type": "string", "description": "A short human summary of what happened." },
            "page": {
                "type": "object",
                "description": "Where a page of a list stands: present when the list was asked for with `limit`.",
                "required": ["limit"],
                "properties": {
                    "limit": { "type": "integer", "minimum": 1, "description": "The page size asked for." },
                    "nextCursor": { "type": "string", "description": "Pass as `cursor` (with the same `limit`) for the next page; absent on the last page." },
                    "total": { "type": "integer", "minimum": 0, "description": "Items in the whole list, all pages." }
                }
            }
        }
    })
}

fn generator(contract_serialize: bool) -> SchemaGenerator {
    let s = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas/".into();
        s.meta_schema = None;
    });
    if contract_serialize {
        s.for_serialize().into_generator()
    } else {
        s.for_deserialize().into_generator()
    }
}

/// Renames `$ref`s to `from` into `to`, everywhere under `v`.
fn rename_refs(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                if r == from {
                    *r = to.to_string();
                }
            }
            m.values_mut().for_each(|x| rename_refs(x, from, to));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rename_refs(x, from, to)),
        _ => {}
    }
}

/// The OpenAPI document of `ops`.
pub fn document_of(ops: &[Op]) -> Value {
    let mut requests = generator(false);
    let mut responses = generator(true);
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    // Request-side schemas, kept apart until names are reconciled.
    let mut request_values: Vec<(String, String, Value)> = Vec::new();
    let mut used_errors: Vec<u16> = Vec::new();
    let mut starting_page_used = false;

    for op in ops {
        let path = openapi_path(op.path);
        let mut params = Vec::new();
        for (name, rest) in path_params(op.path) {
            let (schema, description) = match (name.as_str(), rest) {
                (_, true) => (
                    json!({ "type": "string" }),
                    "The rest of the path, forwarded to the workspace as is (may contain `/`).",
                ),
                ("id", _) => (
                    json!({ "type": "string", "format": "uuid" }),
                    "An id (UUID).",
                ),
                ("type", _) => (json!({ "type": "string" }), "A workspace type's name."),
                ("name", _) => (json!({ "type": "string" }), "A job's name."),
                ("node", _) => (json!({ "type": "string" }), "A node's name."),
                _ => (json!({ "type": "string" }), ""),
            };
            let mut param =
                json!({ "name": name, "in": "path", "required": true, "schema": schema });
            if !description.is_empty() {
                param["description"] = description.into();
            }
            params.push(param);
        }
        if let Some(q) = op.query {
            // Query types are flat structs: one parameter per property.
            let mut inline = SchemaSettings::draft2020_12()
                .with(|s| {
                    s.inline_subschemas = true;
                    s.meta_schema = None;
                })
                .for_deserialize()
                .into_generator();
            let root = q(&mut inline).to_value();
            let required: Vec<&str> = root["required"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = root["properties"].as_object() {
                for (name, schema) in props {
                    let mut schema = schema.clone();
                    let mut param = json!({
                        "name": name, "in": "query",
                        "required": required.contains(&name.as_str()),
                    });
                    if let Some(m) = schema.as_object_mut() {
                        if let Some(d) = m.remove("description") {
                            param["description"] = d;
                        }
                        // A query parameter is left out, never null.
                        if let Some(Value::Array(values)) = m.get_mut("enum") {
                            values.retain(|v| !v.is_null());
                        }
                        if let Some(Value::Array(types)) = m.get("type") {
                            let types: Vec<Value> =
                                types.iter().filter(|t| *t != "null").cloned().collect();
                            m.insert(
                                "type".into(),
                                match types.as_slice() {
                                    [one] => one.clone(),
                                    _ => Value::Array(types),
                                },
                            );
                        }
                    }
                    param["schema"] = schema;
                    params.push(param);
                }
            }
        }
        for (name, description, pattern) in &op.headers {
            let mut schema = json!({ "type": "string" });
            if let Some(p) = pattern {
                schema["pattern"] = json!(p);
            }
            params.push(json!({
                "name": name, "in": "header", "required": false,
                "description": description, "schema": schema
            }));
        }

        let mut resp = Map::new();
        for (status, out) in &op.outputs {
            let (key, value) = match out {
                Output::Json(f) => (
                    status.to_string(),
                    json!({
                        "description": "Success.",
                        "content": { "application/json": { "schema": envelope(f(&mut responses)) } }
                    }),
                ),
                Output::Raw {
                    content_types,
                    description,
                } => (
                    status.to_string(),
                    json!({
                        "description": description,
                        "content": content_types.iter()
                            .map(|c| {
                                let schema = if *c == "application/json" {
                                    json!({ "type": "object" })
                                } else {
                                    json!({ "type": "string" })
                                };
                                (c.to_string(), json!({ "schema": schema }))
                            })
                            .collect::<Map<_, _>>()
                    }),
                ),
                Output::Redirect(d) => (
                    status.to_string(),
                    json!({
                        "description": d,
                        "headers": { "Location": { "schema": { "type": "string" } } }
                    }),
                ),
                Output::Passthrough(d) => ("default".to_string(), json!({ "description": d })),
            };
            resp.insert(key, value);
        }
        for status in op.error_statuses() {
            let name = if status == 503 && op.starting_page {
                starting_page_used = true;
                STARTING
            } else {
                used_errors.push(status);
                reason(status).0
            };
            resp.insert(
                status.to_string(),
                json!({ "$ref": format!("#/components/responses/{name}") }),
            );
        }

        let body = op.input.as_ref().map(|input| match input {
            Input::Json(f) | Input::OptionalJson(f) => {
                let schema = f(&mut requests).to_value();
                json!({
                    "required": matches!(input, Input::Json(_)),
                    "content": { "application/json": { "schema": schema } }
                })
            }
            Input::Raw {
                content_type,
                description,
            } => json!({
                "required": true,
                "description": description,
                "content": { *content_type: { "schema": { "type": "string", "contentMediaType": content_type } } }
            }),
        });

        let security = match op.auth {
            Auth::Public => json!([]),
            Auth::User | Auth::Admin => json!([{ "bearerAuth": [] }, { "sessionCookie": [] }]),
            Auth::Metrics => json!([{ "metricsToken": [] }, {}]),
        };
        let many = op.methods.len() > 1;
        for m in &op.methods {
            let mut o = Map::new();
            let id = if many {
                let lower = m.as_str().to_ascii_lowercase();
                format!(
                    "{}{}{}",
                    op.id,
                    lower[..1].to_ascii_uppercase(),
                    &lower[1..]
                )
            } else {
                op.id.to_string()
            };
            o.insert("operationId".into(), Value::String(id));
            o.insert("summary".into(), Value::String(op.summary.into()));
            match (op.alias_of(), op.description) {
                (Some((path, id)), d) => {
                    let said = format!(
                        "The original API's path, kept: the same operation as `{} {path}` (`{id}`), answering alike.",
                        m.as_str()
                    );
                    let text = match d {
                        Some(d) => format!("{said} {d}"),
                        None => said,
                    };
                    o.insert("description".into(), Value::String(text));
                    o.insert("x-berth-alias-of".into(), Value::String(id.into()));
                }
                (None, Some(d)) => {
                    o.insert("description".into(), Value::String(d.into()));
                }
                (None, None) => {}
            }
            o.insert("tags".into(), json!([op.tag]));
            o.insert("security".into(), security.clone());
            if op.auth == Auth::Admin {
                // For admins only: the router enforces it from this table.
                o.insert("x-berth-admin".into(), Value::Bool(true));
            }
            if !params.is_empty() {
                o.insert("parameters".into(), Value::Array(params.clone()));
            }
            if let Some(b) = &body {
                if *m != Method::GET && *m != Method::HEAD {
                    o.insert("requestBody".into(), b.clone());
                }
            }
            o.insert("responses".into(), Value::Object(resp.clone()));
            let key = m.as_str().to_ascii_lowercase();
            let prev = paths
                .entry(path.clone())
                .or_default()
                .insert(key, Value::Object(o));
            assert!(prev.is_none(), "{} {path} described twice", m.as_str());
        }
        if let Some(b) = body {
            request_values.push((path.clone(), op.methods[0].as_str().to_ascii_lowercase(), b));
        }
    }

    let error_schema = responses.subschema_for::<ErrorEnvelope>().to_value();
    let mut schemas = responses.take_definitions(true);
    let request_defs = requests.take_definitions(true);
    // A type both read and written may differ between the two contracts
    // (what is optional on input is always present on output): keep both.
    let mut renames = Vec::new();
    for (name, schema) in &request_defs {
        match schemas.get(name) {
            Some(existing) if existing != schema => renames.push(name.clone()),
            _ => {}
        }
    }
    let mut request_defs = Value::Object(request_defs);
    let mut paths_value = serde_json::to_value(&paths).expect("JSON");
    for name in &renames {
        let from = format!("#/components/schemas/{name}");
        let to = format!("#/components/schemas/{name}Input");
        rename_refs(&mut request_defs, &from, &to);
        for (path, method, _) in &request_values {
            if let Some(rb) = paths_value
                .get_mut(path)
                .and_then(|p| p.get_mut(method))
                .and_then(|o| o.get_mut("requestBody"))
            {
                rename_refs(rb, &from, &to);
            }
        }
    }
    if let Value::Object(defs) = request_defs {
        for (name, schema) in defs {
            let key = if renames.contains(&name) {
                format!("{name}Input")
            } else {
                name
            };
            schemas.insert(key, schema);
        }
    }
    // Sorted, so the document is stable byte for byte.
    let schemas: BTreeMap<String, Value> = schemas.into_iter().collect();

    used_errors.sort_unstable();
    used_errors.dedup();
    let mut error_responses: BTreeMap<&str, Value> = used_errors
        .iter()
        .map(|s| {
            let (name, description) = reason(*s);
            (
                name,
                json!({
                    "description": description,
                    "content": { "application/json": { "schema": error_schema } }
                }),
            )
        })
        .collect();
    if starting_page_used {
        error_responses.insert(
            STARTING,
            json!({
                "description": "The workspace is not available. A browser navigation to a workspace that is starting gets an HTML page that reloads itself; other clients get the error envelope.",
                "headers": { "Retry-After": { "description": "Seconds until a retry makes sense (the starting page).", "schema": { "type": "integer" } } },
                "content": {
                    "application/json": { "schema": error_schema },
                    "text/html; charset=utf-8": { "schema": { "type": "string" } }
                }
            }),
        );
    }

    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Berth API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Developer workspaces as Docker containers on persistent project volumes. \
                Every success answers `{\"success\": true, \"data\": …, \"message\"?: …}`; every \
                failure `{\"success\": false, \"error\": {\"code\", \"message\"}}`. \
                Lists that grow (workspaces, projects, backups, events, users) page: with \
                `limit` (1 to 500) an answer holds that many items in the list's order and a \
                `page` object with `nextCursor` (pass it back as `cursor`, with the same \
                `limit`, for the next page; absent on the last) and `total`. Without `limit` \
                the whole list comes, as it did before lists paged (events: the newest 50).",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" }
        },
        "servers": [{ "url": "/" }],
        "paths": paths_value,
        "components": {
            "schemas": schemas,
            "responses": error_responses,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http", "scheme": "bearer",
                    "description": "A token from `POST /api/auth/login` (`accessToken`) or `berth token create`."
                },
                "sessionCookie": {
                    "type": "apiKey", "in": "cookie", "name": crate::http::extract::SESSION_COOKIE,
                    "description": "The session cookie `POST /api/auth/login` sets."
                },
                "metricsToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "`metrics.token` from the configuration, when one is set."
                }
            }
        }
    })
}

/// The whole API's document.
pub fn document() -> Value {
    document_of(&crate::http::operations())
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string_pretty(&document()).expect("JSON") + "\n");

/// `GET /api/openapi.json`.
pub async fn serve_document() -> Response {
    let mut resp = DOCUMENT.as_str().into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The document as text, as `berth openapi` prints it and
/// `docs/openapi.json` holds it.
pub fn document_text() -> &'static str {
    DOCUMENT.as_str()
}

//! The OpenAPI description: served at `/api/openapi.json`, equal to the
//! checked-in `docs/openapi.json`, valid OpenAPI 3.1, and in agreement with
//! the router — every described operation answers, and every method the
//! description leaves out of a path is refused with 405.
//!
//! (That every response matches its description is checked on every request
//! of every test; see `common/described.rs`.)

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::TestEnv;
use serde_json::Value;
use std::time::Duration;

fn doc() -> Value {
    berth::http::openapi::document()
}

#[test]
fn the_checked_in_copy_is_the_generated_document() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    let on_disk = std::fs::read_to_string(path).expect("docs/openapi.json");
    assert!(
        on_disk == berth::http::openapi::document_text(),
        "docs/openapi.json is out of date: run `cargo run -q --bin berth -- openapi > docs/openapi.json` and commit it"
    );
}

#[test]
fn the_document_validates_as_openapi_3_1() {
    let meta: Value = serde_json::from_str(include_str!("fixtures/oas-3.1-schema.json")).unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&meta)
        .expect("the OpenAPI 3.1 meta-schema compiles");
    let d = doc();
    let errors: Vec<String> = validator
        .iter_errors(&d)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not OpenAPI 3.1:\n{}", errors.join("\n"));
    assert_eq!(d["openapi"], "3.1.0");

    // Each schema is itself a valid JSON Schema 2020-12 (the meta-schema
    // above leaves schema objects to the dialect).
    let schemas = d["components"]["schemas"].as_object().unwrap();
    for (name, s) in schemas {
        assert!(
            jsonschema::meta::is_valid(s),
            "components.schemas.{name} is not a valid JSON Schema: {s}"
        );
    }

    // Things a validator does not check but a client generator needs:
    // unique operation ids, every `$ref` resolves, every path parameter
    // declared, and the error envelope on every error status.
    let mut ids = std::collections::HashSet::new();
    let text = serde_json::to_string(&d).unwrap();
    for r in text.split("\"$ref\":\"").skip(1) {
        let target = &r[..r.find('"').unwrap()];
        assert!(
            d.pointer(target.trim_start_matches('#')).is_some(),
            "dangling $ref {target}"
        );
    }
    for (path, item) in d["paths"].as_object().unwrap() {
        let names: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operationId {id} used twice");
            assert!(
                !op["summary"].as_str().unwrap_or("").is_empty(),
                "{method} {path} has no summary"
            );
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, names, "{method} {path}: path parameters");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses
                    .keys()
                    .any(|k| k.starts_with('2') || k.starts_with('3') || k == "default"),
                "{method} {path} describes no success"
            );
            assert!(responses.contains_key("500"), "{method} {path}: no 500");
            for (status, r) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        r["$ref"]
                            .as_str()
                            .is_some_and(|s| s.starts_with("#/components/responses/")),
                        "{method} {path} {status} does not use the error envelope"
                    );
                }
            }
        }
    }
}

/// A path of the document with its parameters filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{id}" => uuid::Uuid::new_v4().to_string(),
            "{rest}" => "a/b".to_string(),
            s if s.starts_with('{') => "nothing-here".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_described_operation_is_routed_and_nothing_else_is() {
    // With the engine: the probe reaches handlers that ask it, and their
    // answers are checked against the document like any other.
    let env = TestEnv::new().await;
    let (_, admin) = env.user(berth::domain::Role::Admin).await;
    let d = doc();
    // The methods routes can have; HEAD and OPTIONS follow GET and the
    // proxy's `any`, and are checked where described.
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let mut probed = 0;
    for (path, item) in d["paths"].as_object().unwrap() {
        let mut uri = concrete(path);
        if path.ends_with("/cleanup") {
            uri.push_str("?dryRun=true");
        }
        for m in &methods {
            let described = item.get(m.as_str().to_ascii_lowercase()).is_some();
            // Logging out would revoke the token the other probes use.
            let token = if path.ends_with("/logout") {
                "berth_probe".to_string()
            } else {
                admin.clone()
            };
            let req = Request::builder()
                .method(m.clone())
                .uri(&uri)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                // Invalid for every operation that reads a body, so nothing
                // is created, started or run by this probe.
                .body(Body::from("{\"__probe\": true}"))
                .unwrap();
            // send_raw also checks the answer against the description.
            let (status, _, body) = env.send_raw(req).await;
            let text = String::from_utf8_lossy(&body);
            if described {
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{m} {path} is described but not routed"
                );
                assert!(
                    !text.contains("no such endpoint"),
                    "{m} {path} is described but not routed: {text}"
                );
                probed += 1;
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{m} {path} is routed but not described: {text}"
                );
            }
        }
    }
    assert!(probed >= 60, "only {probed} operations probed");

    // A path the document does not have is not routed either.
    let (s, v) = env.get("/api/not-described", &admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

/// Without an engine (a host whose Docker is down), every operation still
/// answers as the document says: the engine-backed ones with their 503,
/// described, never an undescribed status or a 500.
#[tokio::test]
async fn every_operation_answers_as_described_without_an_engine() {
    let env = TestEnv::engineless().await;
    let (_, admin) = env.user(berth::domain::Role::Admin).await;
    let (_, member) = env.user(berth::domain::Role::Member).await;
    let d = doc();
    let mut probed = 0;
    let mut wrong = Vec::new();
    for (path, item) in d["paths"].as_object().unwrap() {
        let mut uri = concrete(path);
        if path.ends_with("/cleanup") {
            uri.push_str("?dryRun=true");
        }
        for (m, _) in item.as_object().unwrap() {
            let Ok(method) = m.to_ascii_uppercase().parse::<Method>() else {
                continue;
            };
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            for token in [&admin, &member] {
                if path.ends_with("/logout") {
                    continue;
                }
                let call = tower::ServiceExt::oneshot(
                    env.router.clone(),
                    probe(&method, &uri, Some(token)),
                );
                let Ok(resp) = tokio::time::timeout(Duration::from_secs(20), call).await else {
                    wrong.push(format!("{method} {path}: no answer in 20 s"));
                    continue;
                };
                let resp = resp.unwrap();
                let (status, headers) = (resp.status(), resp.headers().clone());
                let matched = resp
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .cloned();
                // An event stream does not end: its first second is enough.
                let read = axum::body::to_bytes(resp.into_body(), 1 << 20);
                let body = tokio::time::timeout(Duration::from_secs(1), read)
                    .await
                    .map(|b| b.unwrap_or_default())
                    .unwrap_or_default();
                // Every offender at once, not only the first.
                let checked = std::panic::catch_unwind(|| {
                    common::described::check(&method, matched.as_ref(), status, &headers, &body)
                });
                if checked.is_err() || status == StatusCode::INTERNAL_SERVER_ERROR {
                    wrong.push(format!("{method} {path}: {status}"));
                }
                probed += 1;
            }
        }
    }
    wrong.dedup();
    assert_eq!(wrong, Vec::<String>::new());
    assert!(probed >= 120, "only {probed} calls probed");
}

/// Authorization comes from the route table: every operation the document
/// says is for admins refuses a member (403) before anything else, and
/// every operation that needs a login refuses a request without one (401),
/// so a handler that forgot its check fails here.
/// A request with a body no operation accepts (so nothing is created or
/// run), with `token` when given.
fn probe(m: &Method, uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method(m.clone())
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from("{\"__probe\": true}")).unwrap()
}

#[tokio::test]
async fn every_admin_operation_refuses_members_and_every_other_one_anonymous_callers() {
    let env = TestEnv::engineless().await;
    let member = env.member().await;
    let d = doc();
    let (mut admins, mut authenticated) = (0, 0);
    for (path, item) in d["paths"].as_object().unwrap() {
        let uri = concrete(path);
        for (method, op) in item.as_object().unwrap() {
            let m: Method = method.to_ascii_uppercase().parse().unwrap();
            if m == Method::HEAD || m == Method::OPTIONS || m == Method::TRACE {
                continue;
            }
            let security = op["security"].as_array().cloned().unwrap_or_default();
            if security.is_empty() {
                continue;
            }
            let admin_only = op["x-berth-admin"] == true;
            // Without credentials: 401, whatever the operation.
            let (status, _, body) = env.send_raw(probe(&m, &uri, None)).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{m} {path} without credentials: {}",
                String::from_utf8_lossy(&body)
            );
            authenticated += 1;
            if !admin_only {
                continue;
            }
            let (status, _, body) = env.send_raw(probe(&m, &uri, Some(&member))).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{m} {path} as a member: {}",
                String::from_utf8_lossy(&body)
            );
            admins += 1;
        }
    }
    assert!(admins >= 10, "only {admins} admin operations probed");
    assert!(
        authenticated >= 60,
        "only {authenticated} operations probed"
    );
}

#[tokio::test]
async fn the_document_is_served_without_authentication() {
    let env = TestEnv::engineless().await;
    let req = Request::get("/api/openapi.json")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = env.send_raw(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served, doc());
    // The shapes a client needs are there: the envelope, the error, and a
    // workspace's fields with their types.
    let ws = &served["components"]["schemas"]["WorkspaceDto"];
    assert_eq!(
        ws["properties"]["status"]["$ref"],
        "#/components/schemas/WorkspaceStatus"
    );
    assert_eq!(ws["properties"]["createdAt"]["format"], "date-time");
    let err = &served["components"]["schemas"]["Error"];
    assert_eq!(err["properties"]["success"]["const"], false);
    let get_ws = &served["paths"]["/api/workspaces/{id}"]["get"];
    assert_eq!(
        get_ws["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]
            ["$ref"],
        "#/components/schemas/WorkspaceDto"
    );
    assert_eq!(
        get_ws["responses"]["404"]["$ref"],
        "#/components/responses/NotFound"
    );
}

/// The check every test's responses go through can fail: an undescribed
/// field, a wrong type, an unlisted status and an undescribed content type
/// are each caught.
#[test]
fn the_response_check_catches_what_the_document_does_not_say() {
    use axum::extract::MatchedPath;
    use axum::http::HeaderMap;
    use common::described::check;

    // MatchedPath has no public constructor: take one from a router.
    let matched = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            use tower::ServiceExt;
            let app = axum::Router::new().route(
                "/api/auth/me",
                axum::routing::get(|p: MatchedPath| async move {
                    let mut r = axum::response::Response::new(Body::empty());
                    r.extensions_mut().insert(p);
                    r
                }),
            );
            let resp = app
                .oneshot(Request::get("/api/auth/me").body(Body::empty()).unwrap())
                .await
                .unwrap();
            resp.extensions().get::<MatchedPath>().cloned().unwrap()
        })
    };
    let mut json = HeaderMap::new();
    json.insert("content-type", "application/json".parse().unwrap());
    let user = serde_json::json!({
        "id": uuid::Uuid::new_v4(), "email": "a@example.com", "role": "member",
        "createdAt": "2026-11-28T10:00:00.000Z"
    });
    let body = |data: Value| {
        serde_json::to_vec(&serde_json::json!({ "success": true, "data": data })).unwrap()
    };
    let fails = |status: StatusCode, headers: &HeaderMap, bytes: Vec<u8>| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check(&Method::GET, Some(&matched), status, headers, &bytes)
        }))
        .is_err()
    };

    assert!(
        !fails(StatusCode::OK, &json, body(user.clone())),
        "the valid answer passes"
    );
    let mut extra = user.clone();
    extra["password"] = "x".into();
    assert!(
        fails(StatusCode::OK, &json, body(extra)),
        "an undescribed field"
    );
    let mut wrong = user.clone();
    wrong["role"] = "owner".into();
    assert!(
        fails(StatusCode::OK, &json, body(wrong)),
        "a value outside the enum"
    );
    let mut bad_time = user.clone();
    bad_time["createdAt"] = "yesterday".into();
    assert!(
        fails(StatusCode::OK, &json, body(bad_time)),
        "not a date-time"
    );
    assert!(
        fails(StatusCode::IM_A_TEAPOT, &json, body(user.clone())),
        "an unlisted status"
    );
    let mut text = HeaderMap::new();
    text.insert("content-type", "text/plain".parse().unwrap());
    assert!(
        fails(StatusCode::OK, &text, b"hi".to_vec()),
        "an undescribed content type"
    );
    let err = serde_json::to_vec(
        &serde_json::json!({"success": false, "error": {"code": "unauthorized"}}),
    )
    .unwrap();
    assert!(
        fails(StatusCode::UNAUTHORIZED, &json, err),
        "an error without its message"
    );
}

#[test]
fn every_alias_is_described_as_the_operation_it_stands_for() {
    // The original API's paths kept beside a resource's own: same method,
    // same body, same answers, the same rights.
    let d = doc();
    let mut by_id = std::collections::BTreeMap::new();
    for (path, item) in d["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            if let Some(id) = op["operationId"].as_str() {
                by_id.insert(id.to_string(), (path.clone(), m.clone(), op.clone()));
            }
        }
    }
    let mut aliases = 0;
    for (path, m, op) in by_id.values() {
        let Some(of) = op.get("x-berth-alias-of").and_then(Value::as_str) else {
            continue;
        };
        aliases += 1;
        let (own_path, own_m, own) = by_id
            .get(of)
            .unwrap_or_else(|| panic!("{path}: {of} is not described"));
        assert_eq!(m, own_m, "{path} and {own_path}");
        assert!(
            own.get("x-berth-alias-of").is_none(),
            "{own_path} is an alias of an alias"
        );
        for key in [
            "requestBody",
            "responses",
            "security",
            "parameters",
            "x-berth-admin",
        ] {
            assert_eq!(
                op.get(key),
                own.get(key),
                "{m} {path} and {own_path} differ in {key}"
            );
        }
    }
    assert_eq!(aliases, 4, "backup, restore, clone and volume-size");
}

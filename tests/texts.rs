//! One rule for every text a user gives (issue 28): generated from the
//! OpenAPI document, each string field of each operation — body fields,
//! query parameters, string path parameters — is sent a CR/LF, a NUL, a
//! U+202E and a value one character over its bound, and must be answered
//! 400 with a message that names the field, with nothing stored.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::TestEnv;
use serde_json::{json, Map, Value};

fn doc() -> Value {
    berth::http::openapi::document()
}

fn resolve<'a>(d: &'a Value, mut s: &'a Value) -> &'a Value {
    while let Some(r) = s.get("$ref").and_then(Value::as_str) {
        s = &d["components"]["schemas"][r.rsplit('/').next().unwrap()];
    }
    s
}

/// The schema with `null` taken out of `anyOf`/`oneOf` (an `Option`).
fn not_null<'a>(d: &'a Value, s: &'a Value) -> &'a Value {
    let s = resolve(d, s);
    for k in ["anyOf", "oneOf"] {
        if let Some(b) = s.get(k).and_then(Value::as_array) {
            if let Some(b) = b.iter().find(|b| b.get("type") != Some(&json!("null"))) {
                return resolve(d, b);
            }
        }
    }
    s
}

fn types(s: &Value) -> Vec<String> {
    match s.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => vec![],
    }
}

/// A value the schema accepts, as small as can be: required fields only.
fn sample(d: &Value, s: &Value) -> Value {
    let s = not_null(d, s);
    if let Some(v) = s
        .get("enum")
        .and_then(|e| e.as_array())
        .and_then(|e| e.first())
    {
        return v.clone();
    }
    if let Some(v) = s.get("const") {
        return v.clone();
    }
    let t = types(s);
    if t.iter().any(|t| t == "object") || s.get("properties").is_some() {
        let mut out = Map::new();
        let required: Vec<&str> = s["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for name in required {
            out.insert(name.into(), sample(d, &s["properties"][name]));
        }
        return Value::Object(out);
    }
    if t.iter().any(|t| t == "string") {
        return match s.get("format").and_then(Value::as_str) {
            Some("uuid") => json!(uuid::Uuid::new_v4()),
            Some("date-time") => json!("2026-01-01T00:00:00Z"),
            _ => json!("ok-value-1"),
        };
    }
    if t.iter().any(|t| t == "integer" || t == "number") {
        return json!(s.get("minimum").and_then(Value::as_i64).unwrap_or(1));
    }
    if t.iter().any(|t| t == "boolean") {
        return json!(false);
    }
    if t.iter().any(|t| t == "array") {
        return json!([]);
    }
    Value::Null
}

/// A string field of a body: its path (keys; `*` for a map's values) and
/// its schema.
fn string_fields(d: &Value, s: &Value, at: Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    let s = not_null(d, s);
    if types(s).iter().any(|t| t == "string") {
        out.push((at, s.clone()));
        return;
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, sub) in props {
            let mut p = at.clone();
            p.push(k.clone());
            string_fields(d, sub, p, out);
        }
    }
    if let Some(sub) = s.get("additionalProperties").filter(|a| a.is_object()) {
        let mut p = at.clone();
        p.push("*".into());
        string_fields(d, sub, p, out);
    }
}

/// Sets the field at `path` in `body`, making the objects on the way as
/// their schemas require them (a map's `*` becomes the key `k`).
fn set(d: &Value, schema: &Value, body: &mut Value, path: &[String], v: Value) {
    let (mut cur, mut s) = (body, not_null(d, schema));
    for (i, k) in path.iter().enumerate() {
        let sub = if k == "*" {
            &s["additionalProperties"]
        } else {
            &s["properties"][k.as_str()]
        };
        let k = if k == "*" { "k" } else { k.as_str() };
        let obj = cur.as_object_mut().expect("an object on the way");
        if i == path.len() - 1 {
            obj.insert(k.into(), v);
            return;
        }
        cur = obj.entry(k).or_insert_with(|| sample(d, sub));
        s = not_null(d, sub);
    }
}

fn bad_values(schema: &Value) -> Vec<(&'static str, String)> {
    let max = schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .unwrap_or(berth::domain::text::DEFAULT_MAX as u64) as usize;
    vec![
        ("CR/LF", "a\r\nSet-Cookie: pwn=1".into()),
        ("NUL", "a\u{0}b".into()),
        ("U+202E", "abc\u{202E}gpj.exe".into()),
        ("overlong", "x".repeat(max + 1)),
    ]
}

fn encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Operations whose strings are not Berth's: the workspace proxies pass
/// paths and bodies to the workspace's own app.
fn proxied(op: &Value) -> bool {
    let id = op["operationId"].as_str().unwrap_or("");
    id.starts_with("proxy") || id.starts_with("portProxy")
}

#[tokio::test]
async fn every_string_field_refuses_control_characters_bidi_controls_and_overlong_values() {
    let env = TestEnv::new().await;
    let (_, admin) = env.user(berth::domain::Role::Admin).await;
    let d = doc();
    let mut probed = 0;
    let mut failures = Vec::new();
    let fill = |path: &str, bad_param: Option<(&str, &str)>| -> String {
        path.split('/')
            .map(
                |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) if bad_param.is_some_and(|(p, _)| p == name) => {
                        encode(bad_param.unwrap().1).replace('+', "%20")
                    }
                    Some("port") => "8080".into(),
                    Some("id") => uuid::Uuid::new_v4().to_string(),
                    Some(_) => "nothing-here".into(),
                    None => seg.into(),
                },
            )
            .collect::<Vec<_>>()
            .join("/")
    };
    for (path, item) in d["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let m: Method = method.to_ascii_uppercase().parse().unwrap();
            if m == Method::HEAD || m == Method::OPTIONS || proxied(op) {
                continue;
            }
            // Logging out would end the session the probes use.
            if path.ends_with("/logout") {
                continue;
            }
            let body_schema = op["requestBody"]["content"]["application/json"]["schema"].clone();
            let base_body = if body_schema.is_null() {
                None
            } else {
                Some(sample(&d, &body_schema))
            };
            // (what, field name as the message must give it, uri, body)
            let mut cases: Vec<(String, String, String, Option<Value>)> = Vec::new();
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for p in &params {
                let schema = not_null(&d, &p["schema"]);
                let name = p["name"].as_str().unwrap();
                let is_text = types(schema).iter().any(|t| t == "string")
                    && schema.get("format") != Some(&json!("uuid"));
                if !is_text {
                    continue;
                }
                for (what, v) in bad_values(schema) {
                    match p["in"].as_str() {
                        Some("query") => {
                            let uri = format!("{}?{name}={}", fill(path, None), encode(&v));
                            cases.push((what.into(), name.into(), uri, base_body.clone()));
                        }
                        Some("path") => {
                            let uri = fill(path, Some((name, &v)));
                            cases.push((what.into(), name.into(), uri, base_body.clone()));
                        }
                        _ => {}
                    }
                }
            }
            if let Some(base) = &base_body {
                let mut fields = Vec::new();
                string_fields(&d, &body_schema, Vec::new(), &mut fields);
                for (field, schema) in fields {
                    if schema.get("format") == Some(&json!("uuid")) {
                        continue;
                    }
                    let shown = field
                        .iter()
                        .map(|k| if k == "*" { "k" } else { k.as_str() })
                        .collect::<Vec<_>>()
                        .join(".");
                    for (what, v) in bad_values(&schema) {
                        let mut body = base.clone();
                        set(&d, &body_schema, &mut body, &field, json!(v));
                        cases.push((what.into(), shown.clone(), fill(path, None), Some(body)));
                    }
                }
            }
            for (what, field, uri, body) in cases {
                let req = Request::builder()
                    .method(m.clone())
                    .uri(&uri)
                    .header("authorization", format!("Bearer {admin}"))
                    .header("content-type", "application/json")
                    .body(match &body {
                        Some(b) => Body::from(b.to_string()),
                        None => Body::empty(),
                    })
                    .unwrap();
                let (status, _, answer) = env.send_raw(req).await;
                let text = String::from_utf8_lossy(&answer).to_string();
                probed += 1;
                if status != StatusCode::BAD_REQUEST || !text.contains(&field) {
                    failures.push(format!(
                        "{m} {path} {field} ({what}): {status} {}",
                        text.chars().take(200).collect::<String>()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {probed} refused wrongly:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(probed >= 150, "only {probed} cases probed");
    // Nothing was stored by any of them.
    let (_, projects) = env.get("/api/projects", &admin).await;
    assert_eq!(projects["data"], json!([]), "{projects}");
    let (_, nodes) = env.get("/api/nodes", &admin).await;
    assert_eq!(nodes["data"].as_array().unwrap().len(), 1, "{nodes}");
}

/// What the issue found: a project name with CR/LF was stored. Now it is
/// refused, as is every other text with a control character, and the
/// descriptions' line breaks still pass.
#[tokio::test]
async fn the_names_the_issue_found_are_refused_and_line_breaks_stay_where_they_belong() {
    let env = TestEnv::new().await;
    let token = env.member().await;
    let (s, v) = env
        .post(
            "/api/projects",
            &token,
            json!({"name": "\r\nSet-Cookie: pwn=1"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("name"),
        "{v}"
    );
    let (s, v) = env
        .post(
            "/api/projects",
            &token,
            json!({"name": "two lines", "description": "first\nsecond\twith a tab"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["description"], "first\nsecond\twith a tab");
    let (s, v) = env
        .post(
            "/api/projects",
            &token,
            json!({"name": "ok", "description": "carriage\r\nreturn"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("description"),
        "{v}"
    );
}

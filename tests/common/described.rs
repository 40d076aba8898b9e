//! Every response the tests get through the router is checked against the
//! API's own OpenAPI document: the operation that answered must be
//! described, its status listed, its content type one of those described,
//! and a JSON body must match the schema — made strict here (an object with
//! described properties may have no others), so a field the code writes but
//! the document does not name fails the test that saw it.
//!
//! The published document leaves objects open, so clients tolerate fields
//! added later; strictness is for our own tests only.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::MatchedPath;
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Map, Value};

struct Described {
    doc: Value,
    validators: jsonschema::ValidatorMap,
    /// (OpenAPI path, method, status) → key under `$defs` of the wrapper.
    keys: HashMap<(String, String, String), String>,
}

/// Adds `additionalProperties: false` to every object schema that lists
/// properties and says nothing about others.
pub fn make_strict(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), Value::Bool(false));
            }
            m.values_mut().for_each(make_strict);
        }
        Value::Array(a) => a.iter_mut().for_each(make_strict),
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

fn described() -> &'static Described {
    static D: OnceLock<Described> = OnceLock::new();
    D.get_or_init(|| {
        let doc = berth::http::openapi::document();
        let mut defs = Map::new();
        let mut keys = HashMap::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                for (status, resp) in op["responses"].as_object().expect("responses") {
                    let resp = resolve(&doc, resp);
                    if let Some(schema) = resp.pointer("/content/application~1json/schema") {
                        let key = format!("r{}", defs.len());
                        defs.insert(key.clone(), schema.clone());
                        keys.insert((path.clone(), method.clone(), status.clone()), key);
                    }
                }
            }
        }
        let mut wrapper = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": defs,
            "components": doc["components"].clone(),
        });
        make_strict(&mut wrapper);
        let validators = jsonschema::options()
            .should_validate_formats(true)
            .build_map(&wrapper)
            .expect("the document's schemas compile");
        Described {
            doc,
            validators,
            keys,
        }
    })
}

/// Panics unless the response is what the document says `method` on the
/// operation at `matched` (axum's route pattern) answers.
pub fn check(
    method: &Method,
    matched: Option<&MatchedPath>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) {
    let d = described();
    let Some(matched) = matched else {
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{method} matched no route but answered {status}"
        );
        return;
    };
    let path = berth::http::openapi::openapi_path(matched.as_str());
    let m = method.as_str().to_ascii_lowercase();
    let Some(op) = d.doc["paths"][&path].get(&m) else {
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is not described, yet answered {status}"
        );
        return;
    };
    let code = status.as_u16().to_string();
    let resp = match op["responses"].get(&code) {
        Some(r) => resolve(&d.doc, r),
        None if op["responses"].get("default").is_some() => return,
        None => panic!(
            "{method} {path} answered {status}, which its description does not list (it lists {:?}); body: {}",
            op["responses"].as_object().unwrap().keys().collect::<Vec<_>>(),
            String::from_utf8_lossy(&body[..body.len().min(500)])
        ),
    };
    let Some(content) = resp.get("content").and_then(Value::as_object) else {
        return;
    };
    let got = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content.keys().any(|k| k == got),
        "{method} {path} {status}: content type {got:?} is not among the described {:?}",
        content.keys().collect::<Vec<_>>()
    );
    if got != "application/json" {
        return;
    }
    let key = &d.keys[&(path.clone(), m, code)];
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!("{method} {path} {status}: the body is not JSON ({e})");
    });
    let validator = d
        .validators
        .get(&format!("#/$defs/{key}"))
        .expect("validator compiled");
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("at {}: {}", e.instance_path(), e))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: the body does not match its description:\n{}\nbody: {}",
        errors.join("\n"),
        serde_json::to_string(&v).unwrap()
    );
}

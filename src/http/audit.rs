//! The audit layer: every operation of the route table that changes state
//! — every method but GET and HEAD, the workspace proxies' excepted (what
//! they carry is the app's, not Berth's) — is recorded after it answered,
//! refusals and failures included, by `Op::into_router` for each such
//! operation: so a new route is audited without anyone remembering to.
//!
//! A record names the actor the caller's credentials prove (filled in by
//! the `Caller` extractor through an [`AuditSlot`] in the request; a login
//! by its handler), the client's address and user agent, the operation,
//! the resource its path names (and that resource's owner when the actor
//! is someone else, looked up before the action, which may delete it),
//! the request's fields that name resources (`domain::audit::
//! NAMING_FIELDS`: never a password, a token or a certificate), and the
//! status and error code of the answer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

use crate::app::App;
use crate::domain::audit::{naming_fields, AuditFacts, AuditOutcome, AuditRecord, Credential};
use crate::domain::User;

/// Who acted, as the request's handling found out.
#[derive(Default)]
struct Actor {
    user: Option<User>,
    credential: Option<(Credential, Uuid, String)>,
}

/// Where the handling of a request says who the actor is.
#[derive(Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Actor>>);

impl AuditSlot {
    /// The user a credential proved (`id` and `name`: the token's).
    pub fn set(&self, user: &User, credential: Credential, id: Uuid, name: &str) {
        let mut a = self.0.lock().expect("audit slot poisoned");
        a.user = Some(user.clone());
        a.credential = Some((credential, id, name.to_string()));
    }
}

/// What the route table says of an audited operation.
#[derive(Clone, Copy)]
pub struct Audited {
    pub id: &'static str,
    pub path: &'static str,
    pub facts: AuditFacts,
}

/// The largest JSON body whose naming fields are read.
const BODY_PEEK: usize = 64 * 1024;

/// Whether a body may be read whole and put back: its whole length known
/// (a stream, such as an upload, passes by untouched) and small.
fn peekable(body: &Body) -> bool {
    axum::body::HttpBody::size_hint(body)
        .exact()
        .is_some_and(|n| n <= BODY_PEEK as u64)
}

/// The path parameters of `route` in `path` (`{id}` → its segment).
fn path_params(route: &str, path: &str) -> BTreeMap<String, String> {
    route
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(r, p)| {
            let name = r.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.trim_start_matches('*').to_string(), p.to_string()))
        })
        .collect()
}

fn header_text(req: &Request, name: header::HeaderName, max: usize) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(max).collect())
}

pub async fn layer(
    State((app, op)): State<(App, Audited)>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    // Read-only calls of an operation that also changes state (another
    // method on the same route) are not recorded.
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return next.run(req).await;
    }
    let params = path_params(op.path, req.uri().path());
    let mut details: BTreeMap<String, String> = BTreeMap::new();
    if let Some(q) = req.uri().query() {
        let pairs: serde_json::Map<String, serde_json::Value> =
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
                .collect();
        details.extend(naming_fields(&serde_json::Value::Object(pairs)));
    }
    let json = header_text(&req, header::CONTENT_TYPE, 100)
        .is_some_and(|c| c.starts_with("application/json"));
    if json && peekable(req.body()) {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, BODY_PEEK)
            .await
            .unwrap_or_default();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            details.extend(naming_fields(&v));
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    if let Some(f) = header_text(
        &req,
        header::HeaderName::from_static("x-forwarded-for"),
        200,
    ) {
        details.insert("forwardedFor".into(), f);
    }
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let user_agent = header_text(&req, header::USER_AGENT, 300);
    let (mut resource_type, mut resource_id) = match op.facts.on {
        Some((kind, param)) => (Some(kind), params.get(param).cloned()),
        None => (None, None),
    };
    // Looked up before the action (a delete removes it); only for a
    // request with credentials, which an anonymous flood does not have.
    let credentials = req.headers().contains_key(header::AUTHORIZATION)
        || req.headers().contains_key(header::COOKIE);
    let owner = match (&resource_type, &resource_id, credentials) {
        (Some(kind), Some(id), true) => app.audit.owner_of(*kind, id).await,
        _ => None,
    };
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut resp = next.run(req).await;
    let status = resp.status();
    let code = resp
        .extensions()
        .get::<crate::http::error::ErrorCode>()
        .map(|c| c.as_str().to_string());
    // What a creation made, from its answer: only one whose whole length
    // is known and small (a larger one would be cut to nothing).
    if status == StatusCode::CREATED && peekable(resp.body()) {
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, BODY_PEEK)
            .await
            .unwrap_or_default();
        let answer = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
        let named = |field: &str| {
            answer
                .as_ref()
                .and_then(|v| v["data"][field].as_str())
                .map(str::to_string)
        };
        match (op.facts.on, op.facts.creates) {
            (None, Some(kind)) => {
                resource_type = Some(kind);
                resource_id = named(kind.id_field());
            }
            (Some(_), _) => {
                if let Some(id) = named("id") {
                    details.insert("created".into(), id);
                }
            }
            (None, None) => {}
        }
        resp = Response::from_parts(parts, Body::from(bytes));
    }
    let actor = std::mem::take(&mut *slot.0.lock().expect("audit slot poisoned"));
    let (credential, credential_id, credential_name) = match actor.credential {
        Some((kind, id, name)) => (kind, Some(id), Some(name)),
        None => (Credential::None, None, None),
    };
    let actor_id = actor.user.as_ref().map(|u| u.id);
    let record = AuditRecord {
        id: Uuid::nil(),
        at: 0,
        actor_id,
        actor_email: actor
            .user
            .as_ref()
            .map(|u| u.email.clone())
            .or_else(|| details.get("email").cloned().filter(|_| op.id == "login")),
        credential,
        credential_id,
        credential_name,
        client,
        user_agent,
        action: op.id.to_string(),
        method: method.to_string(),
        route: op.path.to_string(),
        resource_type: resource_type.map(|k| k.as_str().to_string()),
        resource_id,
        owner_id: owner.filter(|o| Some(*o) != actor_id),
        details,
        outcome: AuditOutcome::of_status(status.as_u16()),
        status: Some(status.as_u16()),
        code,
        replica: None,
    };
    app.audit.record(record).await;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::ResourceKind;

    #[test]
    fn path_parameters_are_read_from_the_route() {
        let p = path_params(
            "/api/workspaces/{id}/shares/{port}",
            "/api/workspaces/abc/shares/5173",
        );
        assert_eq!(p["id"], "abc");
        assert_eq!(p["port"], "5173");
        assert!(path_params("/api/workspaces", "/api/workspaces").is_empty());
    }

    fn facts(id: &str) -> AuditFacts {
        crate::http::operations::operations()
            .into_iter()
            .find(|op| op.id() == id)
            .unwrap_or_else(|| panic!("no operation {id}"))
            .audit_facts()
    }

    #[test]
    fn proxies_and_reads_are_not_audited() {
        assert!(facts("startWorkspace").recorded);
        assert!(facts("deleteBackup").recorded);
        assert!(facts("shareWorkspacePort").recorded);
        assert!(!facts("listWorkspaces").recorded);
        for proxy in [
            "proxy",
            "proxyRoot",
            "proxyBare",
            "portProxy",
            "portProxyRoot",
        ] {
            assert!(!facts(proxy).recorded, "{proxy}");
        }
    }

    #[test]
    fn operations_name_their_resource() {
        use ResourceKind as K;
        assert_eq!(facts("startWorkspace").on, Some((K::Workspace, "id")));
        assert_eq!(facts("createBackup").on, Some((K::Project, "id")));
        assert_eq!(facts("backupProject").on, Some((K::Project, "id")));
        assert_eq!(facts("drainNode").on, Some((K::Node, "node")));
        assert_eq!(facts("pullTypeImage").on, Some((K::Type, "type")));
        assert_eq!(facts("login").on, None);
        assert_eq!(facts("createToken").creates, Some(K::Token));
        assert_eq!(facts("addNode").creates, Some(K::Node));
    }

    /// A recorded operation whose path names something says what it is,
    /// and one that makes something without naming one says what it makes.
    #[test]
    fn every_recorded_operation_declares_what_it_acts_on() {
        for op in crate::http::operations::operations() {
            let f = op.audit_facts();
            if !f.recorded {
                continue;
            }
            if op.path().contains('{') {
                assert!(f.on.is_some(), "{} names no resource", op.id());
            }
            if op.answers_status(201) && f.on.is_none() {
                assert!(f.creates.is_some(), "{} says not what it makes", op.id());
            }
        }
    }
}

//! The API's description, OpenAPI 3.1, generated from the same list of
//! operations that builds the router ([`super::operations`]), so a route
//! cannot exist without its description, nor the description name a route
//! that does not exist.
//!
//! An [`Op`] is one route: method(s), path, handler, and what it takes and
//! answers. Schemas come from the wire types themselves (`schemars`, JSON
//! Schema 2020-12, which is OpenAPI 3.1's dialect): request types with the
//! deserialize contract (what Berth accepts), response types with the
//! serialize contract (what Berth writes). Error statuses follow from the
//! operation's shape (authentication, path ids, input) plus the ones it
//! names, all with the one error envelope.
//!
//! `GET /api/openapi.json` serves [`document`]; `berth openapi` prints it;
//! `docs/openapi.json` is a checked-in copy a test keeps equal.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::app::App;
use crate::domain::audit::{AuditFacts, ResourceKind};

mod document;

pub use document::{document, document_of, document_text, serve_document};

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

fn root_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.root_schema_for::<T>()
}

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Auth {
    /// Anyone (login, health, this document).
    Public,
    /// A signed-in user: bearer token or session cookie.
    User,
    /// An admin user.
    Admin,
    /// The metrics token when one is configured, else anyone.
    Metrics,
}

/// A request body.
#[derive(Clone)]
enum Input {
    Json(SchemaFn),
    /// JSON that may also be left out entirely.
    OptionalJson(SchemaFn),
    Raw {
        content_type: &'static str,
        description: &'static str,
    },
}

/// A success response.
#[derive(Clone)]
enum Output {
    /// The success envelope around `data`.
    Json(SchemaFn),
    Raw {
        content_types: &'static [&'static str],
        description: &'static str,
    },
    /// A redirect; no body worth describing.
    Redirect(&'static str),
    /// Whatever an upstream answers (the workspace proxy).
    Passthrough(&'static str),
}

/// One route of the API and its description.
#[derive(Clone)]
pub struct Op {
    methods: Vec<Method>,
    path: &'static str,
    id: &'static str,
    router: MethodRouter<App>,
    summary: &'static str,
    description: Option<&'static str>,
    tag: &'static str,
    auth: Auth,
    query: Option<SchemaFn>,
    input: Option<Input>,
    outputs: Vec<(u16, Output)>,
    errors: Vec<u16>,
    /// Request headers worth describing: (name, description).
    headers: Vec<(&'static str, &'static str, Option<&'static str>)>,
    /// 503 may also be the HTML "starting your workspace" page.
    starting_page: bool,
    /// The resource's own path and id for the same operation, when this
    /// entry is the original API's path for it ([`Op::also_at`]).
    also_at: Option<(&'static str, &'static str)>,
    /// On the original API's path: the id of the same operation at the
    /// resource's own path (the document marks it as an alias).
    alias_of: Option<(&'static str, &'static str)>,
    /// What the audit log records of it.
    audit: AuditFacts,
}

/// Each entry with [`Op::also_at`] becomes two: the operation at the
/// resource's own path, then the original path marked as its alias.
pub fn expand_aliases(ops: Vec<Op>) -> Vec<Op> {
    let mut out = Vec::with_capacity(ops.len());
    for mut op in ops {
        if let Some((path, id)) = op.also_at.take() {
            let mut own = op.clone();
            own.path = path;
            own.id = id;
            op.alias_of = Some((path, id));
            out.push(own);
        }
        out.push(op);
    }
    out
}

macro_rules! method_ctor {
    ($name:ident, $method:ident) => {
        pub fn $name<H, T>(path: &'static str, id: &'static str, handler: H) -> Op
        where
            H: Handler<T, App>,
            T: 'static,
        {
            Op::on(Method::$method, MethodFilter::$method, path, id, handler)
        }
    };
}

impl Op {
    fn on<H, T>(
        method: Method,
        filter: MethodFilter,
        path: &'static str,
        id: &'static str,
        handler: H,
    ) -> Op
    where
        H: Handler<T, App>,
        T: 'static,
    {
        Op {
            methods: vec![method.clone()],
            path,
            id,
            router: axum::routing::on(filter, handler),
            summary: "",
            description: None,
            tag: "",
            auth: Auth::User,
            query: None,
            input: None,
            outputs: Vec::new(),
            errors: Vec::new(),
            headers: Vec::new(),
            starting_page: false,
            also_at: None,
            alias_of: None,
            audit: AuditFacts {
                recorded: method != Method::GET && method != Method::HEAD,
                on: None,
                creates: None,
            },
        }
    }

    method_ctor!(get, GET);
    method_ctor!(post, POST);
    method_ctor!(put, PUT);
    method_ctor!(patch, PATCH);
    method_ctor!(delete, DELETE);

    /// Every method, described once per method (`{id}Get`, `{id}Post`, …).
    pub fn any<H, T>(path: &'static str, id: &'static str, handler: H) -> Op
    where
        H: Handler<T, App>,
        T: 'static,
    {
        let mut op = Op::on(Method::GET, MethodFilter::GET, path, id, handler.clone());
        op.router = axum::routing::any(handler);
        op.methods = ANY_METHODS.to_vec();
        // Every method, state-changing ones included: recorded unless the
        // table says otherwise.
        op.audit.recorded = true;
        op
    }

    /// The resource it acts on, named by the path parameter `param`.
    pub fn acts_on(mut self, kind: ResourceKind, param: &'static str) -> Op {
        assert!(
            self.path.contains(&format!("{{{param}}}")),
            "{}: no {{{param}}} in its path",
            self.id
        );
        self.audit.on = Some((kind, param));
        self
    }

    /// What it makes, named by its answer's `data.id` (or `data.name`).
    pub fn creates(mut self, kind: ResourceKind) -> Op {
        self.audit.creates = Some(kind);
        self
    }

    /// Not recorded by the audit log, whatever its method: traffic to a
    /// workspace's own app, which is the app's business.
    pub fn unaudited(mut self) -> Op {
        self.audit.recorded = false;
        self
    }

    pub fn summary(mut self, s: &'static str) -> Op {
        self.summary = s;
        self
    }

    pub fn describe(mut self, s: &'static str) -> Op {
        self.description = Some(s);
        self
    }

    pub fn tag(mut self, t: &'static str) -> Op {
        self.tag = t;
        self
    }

    pub fn public(mut self) -> Op {
        self.auth = Auth::Public;
        self
    }

    pub fn admin(mut self) -> Op {
        self.auth = Auth::Admin;
        self
    }

    pub fn metrics_auth(mut self) -> Op {
        self.auth = Auth::Metrics;
        self
    }

    pub fn query<Q: JsonSchema>(mut self) -> Op {
        self.query = Some(root_of::<Q>);
        self
    }

    pub fn json<B: JsonSchema>(mut self) -> Op {
        self.input = Some(Input::Json(schema_of::<B>));
        self
    }

    pub fn optional_json<B: JsonSchema>(mut self) -> Op {
        self.input = Some(Input::OptionalJson(schema_of::<B>));
        self
    }

    pub fn raw_body(mut self, content_type: &'static str, description: &'static str) -> Op {
        self.input = Some(Input::Raw {
            content_type,
            description,
        });
        self
    }

    pub fn header(mut self, name: &'static str, description: &'static str) -> Op {
        self.headers.push((name, description, None));
        self
    }

    /// A request header whose value must match `pattern`.
    pub fn header_matching(
        mut self,
        name: &'static str,
        description: &'static str,
        pattern: &'static str,
    ) -> Op {
        self.headers.push((name, description, Some(pattern)));
        self
    }

    /// 200 with the success envelope around `T`.
    pub fn ok<T: JsonSchema>(self) -> Op {
        self.answers::<T>(200)
    }

    /// 201 with the success envelope around `T`.
    pub fn created<T: JsonSchema>(self) -> Op {
        self.answers::<T>(201)
    }

    pub fn answers<T: JsonSchema>(mut self, status: u16) -> Op {
        self.outputs.push((status, Output::Json(schema_of::<T>)));
        self
    }

    /// 200 with a body that is not JSON.
    pub fn raw(mut self, content_types: &'static [&'static str], description: &'static str) -> Op {
        self.outputs.push((
            200,
            Output::Raw {
                content_types,
                description,
            },
        ));
        self
    }

    pub fn redirect(mut self, status: u16, description: &'static str) -> Op {
        self.outputs.push((status, Output::Redirect(description)));
        self
    }

    pub fn passthrough(mut self, description: &'static str) -> Op {
        self.outputs.push((0, Output::Passthrough(description)));
        self
    }

    /// Error statuses beyond the ones the operation's shape implies.
    pub fn errors(mut self, statuses: &[u16]) -> Op {
        self.errors.extend_from_slice(statuses);
        self
    }

    /// The operation talks to the Docker engine: 502 when the engine fails,
    /// 503 when it cannot be reached, 409 when it refuses (a port taken).
    pub fn engine(self) -> Op {
        self.errors(&[409, 502, 503])
    }

    /// A browser navigation to a workspace that is still starting gets an
    /// HTML page that refreshes itself (503, `Retry-After`).
    pub fn starting_page(mut self) -> Op {
        self.starting_page = true;
        self
    }

    /// Streams without a body size limit (uploads, the proxy).
    pub fn unlimited_body(mut self) -> Op {
        self.router = self
            .router
            .layer(axum::extract::DefaultBodyLimit::disable());
        self
    }

    /// The same operation at the resource's own `path`, as `id`: this
    /// entry's path is the original API's, kept as a documented alias (the
    /// document says `x-berth-alias-of`); both answer alike; the audit log
    /// names each by its own id (the operation id is the action). See [`expand_aliases`].
    pub fn also_at(mut self, path: &'static str, id: &'static str) -> Op {
        self.also_at = Some((path, id));
        self
    }

    /// When this entry is an alias: the path and id of its operation.
    pub fn alias_of(&self) -> Option<(&'static str, &'static str)> {
        self.alias_of
    }

    pub fn path(&self) -> &'static str {
        self.path
    }

    /// The operation's id (`startWorkspace`): the audit log's action.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// Whether anyone may call it (no credentials asked).
    pub fn is_public(&self) -> bool {
        self.auth == Auth::Public
    }

    /// Whether it takes a JSON body.
    pub fn takes_json(&self) -> bool {
        matches!(self.input, Some(Input::Json(_) | Input::OptionalJson(_)))
    }

    pub fn methods(&self) -> &[Method] {
        &self.methods
    }

    /// The operation's router, with the check its table entry declares:
    /// an admin operation answers 401/403 before its handler (or any of its
    /// extractors) runs, so a handler cannot forget it.
    pub fn into_router(self, app: &App) -> MethodRouter<App> {
        let audited = self.audit.recorded.then_some(crate::http::audit::Audited {
            id: self.id,
            path: self.path,
            facts: self.audit,
        });
        let router = match self.auth {
            Auth::Admin => self
                .router
                .route_layer(axum::middleware::from_fn_with_state(
                    app.clone(),
                    require_admin,
                )),
            _ => self.router,
        };
        // Outermost: refusals by the admin check are recorded too.
        match audited {
            Some(op) => router.route_layer(axum::middleware::from_fn_with_state(
                (app.clone(), op),
                crate::http::audit::layer,
            )),
            None => router,
        }
    }

    /// Whether the audit layer records this operation's calls.
    pub fn is_audited(&self) -> bool {
        self.audit.recorded
    }

    /// Whether one of its answers has this status.
    pub fn answers_status(&self, status: u16) -> bool {
        self.outputs.iter().any(|(s, _)| *s == status)
    }

    /// What the audit log records of it.
    pub fn audit_facts(&self) -> AuditFacts {
        self.audit
    }

    /// Every error status this operation can answer with.
    fn error_statuses(&self) -> Vec<u16> {
        let has_params = self.path.contains('{');
        let mut s = vec![500];
        if self.auth != Auth::Public {
            s.push(401);
        }
        if self.auth == Auth::Admin {
            s.push(403);
        }
        if has_params || self.query.is_some() || self.input.is_some() {
            s.push(400);
        }
        if has_params {
            s.push(404);
        }
        if matches!(self.input, Some(Input::Json(_) | Input::OptionalJson(_))) {
            s.extend([413, 415]);
        }
        s.extend(&self.errors);
        s.sort_unstable();
        s.dedup();
        s
    }
}

const ANY_METHODS: [Method; 7] = [
    Method::GET,
    Method::PUT,
    Method::POST,
    Method::DELETE,
    Method::OPTIONS,
    Method::HEAD,
    Method::PATCH,
];

/// The path as OpenAPI writes it: `{*rest}` becomes `{rest}`.
pub fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

fn path_params(path: &str) -> Vec<(String, bool)> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|p| match p.strip_prefix('*') {
            Some(rest) => (rest.to_string(), true),
            None => (p.to_string(), false),
        })
        .collect()
}

/// The admin check of [`Auth::Admin`] operations. The caller it
/// authenticated is kept in the request, so the handler's own `Caller`
/// does not look the token up again.
async fn require_admin(
    axum::extract::State(app): axum::extract::State<App>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let (mut parts, body) = req.into_parts();
    let caller = match crate::http::extract::Caller::from_request_parts(&mut parts, &app).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = caller.require_admin("do this (an operation for admins)") {
        return e.into_response();
    }
    parts.extensions.insert(caller);
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

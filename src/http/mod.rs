//! The HTTP API (SPEC §2): routes, extractors, wire types and the mapping of
//! errors to status codes. [`app`] builds the whole router, so tests drive it
//! without a socket and `serve` only binds it.

pub mod error;
pub mod extract;
pub mod routes;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, patch, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::service::Berth;
use error::ApiError;
use routes::{auth, backups, jobs, observe, projects, proxy, workspaces as ws};

/// The whole API as one router.
pub fn app(berth: Berth) -> Router {
    let max_body = berth.config().max_body_bytes;
    let api = Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/me", get(auth::me))
        .route("/projects", post(projects::create).get(projects::list))
        .route(
            "/projects/{id}",
            get(projects::get).delete(projects::delete),
        )
        .route("/workspaces", get(ws::list).post(ws::create))
        .route("/workspaces/types", get(ws::types))
        .route("/workspaces/stats", get(ws::stats))
        .route("/workspaces/stats/live", get(observe::fleet))
        .route("/workspaces/cleanup", post(jobs::cleanup))
        .route("/workspaces/projects/{id}/backup", post(backups::create))
        .route("/workspaces/projects/{id}/restore", post(backups::restore))
        .route("/workspaces/projects/{id}/clone", post(backups::clone))
        .route("/workspaces/projects/{id}/volume-size", get(backups::size))
        .route("/projects/{id}/backups", get(backups::list))
        .route(
            "/projects/{id}/backups/upload",
            // Streamed to disk and bounded by backups.max_upload_mb instead.
            post(backups::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/projects/{id}/backup-policy",
            get(backups::get_policy).put(backups::put_policy),
        )
        .route("/backups/{id}", get(backups::get).delete(backups::delete))
        .route("/backups/{id}/download", get(backups::download))
        .route("/backups/{id}/verify", post(backups::verify))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{name}/run", post(jobs::run))
        .route("/workspaces/type/{type}", get(ws::by_type))
        .route(
            "/workspaces/{id}",
            get(ws::get).put(ws::update).delete(ws::delete),
        )
        .route("/workspaces/{id}/set-default", post(ws::set_default))
        .route("/workspaces/{id}/start", post(ws::start))
        .route("/workspaces/{id}/stop", post(ws::stop))
        .route("/workspaces/{id}/restart", post(ws::restart))
        .route("/workspaces/{id}/status", get(ws::status))
        .route("/workspaces/{id}/health", get(ws::health))
        .route("/workspaces/{id}/events", get(ws::events))
        .route("/workspaces/{id}/logs", get(observe::logs))
        .route("/workspaces/{id}/logs/stream", get(observe::log_stream))
        .route("/workspaces/{id}/stats", get(observe::stats))
        .route("/workspaces/{id}/container-stats", get(observe::stats))
        .route("/workspaces/{id}/stats/stream", get(observe::stats_stream))
        .route("/workspaces/{id}/resources", patch(ws::update_resources))
        .route("/workspaces/{id}/switch-project", post(ws::switch_project))
        .route("/workspaces/{id}/projects", get(ws::projects))
        .route(
            "/workspaces/{id}/compatible-projects",
            get(ws::compatible_projects),
        )
        .route("/workspaces/{id}/assign-project", post(ws::assign_project))
        .route("/workspaces/{id}/proxy", any(proxy::bare))
        // Bodies stream through unbuffered, so no body limit applies.
        .route(
            "/workspaces/{id}/proxy/",
            any(proxy::proxy).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/workspaces/{id}/proxy/{*rest}",
            any(proxy::proxy).layer(DefaultBodyLimit::disable()),
        );

    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(routes::metrics::render))
        .nest("/api", api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error (logged on the server)",
            )
            .into_response()
        }))
        .layer(axum::middleware::from_fn(track_requests))
        .layer(TraceLayer::new_for_http())
        .with_state(berth)
}

/// Counts requests by route (the matched pattern, so ids do not explode the
/// label set), method and status, with a latency histogram.
async fn track_requests(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("berth_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("berth_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}

async fn healthz() -> Response {
    wire::ok(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

/// Serves the API on `addr` until `shutdown` completes; in-flight requests
/// finish first.
pub async fn serve(
    berth: Berth,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, "Berth API listening");
    // Connect info gives the proxy the client address for X-Forwarded-For.
    axum::serve(
        listener,
        app(berth).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("HTTP server failed")
}

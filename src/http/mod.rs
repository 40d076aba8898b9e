//! The HTTP API (`docs/original-api.md` §2 for the paths it keeps): routes, extractors, wire types and the mapping of
//! errors to status codes. [`app`] builds the whole router, so tests drive it
//! without a socket and `serve` only binds it.

pub mod audit;
pub mod error;
pub mod extract;
pub mod openapi;
mod operations;
pub mod routes;
pub mod wire;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::app::App;
use error::{ApiError, ErrorCode};

pub use operations::operations;

/// The whole API as one router, built from [`operations`].
pub fn app(state: App) -> Router {
    let berth = state.berth.clone();
    let max_body = berth.core().config().max_body_bytes;
    // Several operations share a path (one per method): merge them.
    let mut by_path: Vec<(&'static str, MethodRouter<App>)> = Vec::new();
    for op in operations() {
        let path = op.path();
        let router = op.into_router(&state);
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(router),
            None => by_path.push((path, router)),
        }
    }
    let mut routes = Router::new();
    for (path, router) in by_path {
        routes = routes.route(path, router);
    }
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(ErrorCode::Internal, "internal error (logged on the server)")
                .into_response()
        }))
        .layer(axum::middleware::from_fn(track_requests))
        // App origins are answered before the API's routes are looked at.
        .layer(axum::middleware::from_fn_with_state(
            state.apps.clone(),
            routes::apps::by_host,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Counts requests by route (the matched pattern, so ids do not explode the
/// label set), method and status, with a latency histogram.
async fn track_requests(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let matched = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let route = matched
        .as_ref()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let mut resp = next.run(req).await;
    // Lets a caller in the same process (the tests) find the operation that
    // answered, to check the response against its description.
    if let Some(m) = matched {
        resp.extensions_mut().insert(m);
    }
    let status = resp.status().as_u16().to_string();
    metrics::counter!("berth_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("berth_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}

async fn healthz() -> Response {
    wire::ok(wire::HealthzDto {
        status: "ok".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not accept that method",
    )
}

/// How long shutdown waits for in-flight requests once streams were told
/// to end.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the API on `addr` until `shutdown` completes; in-flight requests
/// finish first, open streams and tunnels are ended, and after
/// [`SHUTDOWN_GRACE`] it returns whatever is still open.
pub async fn serve(
    state: App,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let berth = state.berth.clone();
    tracing::info!(%addr, "Berth listening: the web UI at http://{addr}/, the API under /api (described at /api/openapi.json)");
    let stopping = berth.clone();
    let signal = async move {
        shutdown.await;
        stopping.core().begin_shutdown();
    };
    let deadline = {
        let token = berth.core().shutdown_token();
        async move {
            token.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        }
    };
    // Connect info gives the proxy the client address for X-Forwarded-For.
    let server = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal)
    .into_future();
    tokio::select! {
        r = server => r.context("HTTP server failed"),
        _ = deadline => {
            tracing::warn!("connections still open {} s after the shutdown began; exiting anyway", SHUTDOWN_GRACE.as_secs());
            Ok(())
        }
    }
}

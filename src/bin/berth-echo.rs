//! Test fixture, not part of Berth's service: a small HTTP and WebSocket
//! server that the proxy tests and the benchmark run inside a workspace
//! container (`scripts/build-busybox-image.sh TAG target/…/berth-echo` puts it
//! in the test image). It answers what it received, so a test can see exactly
//! which headers and bytes crossed the proxy.
//!
//! - `GET /healthz` → `ok`
//! - `GET /ws` → WebSocket echo (text and binary frames come back unchanged)
//! - `GET /stream?chunks=N&delay_ms=M` → N lines, one every M ms (streaming)
//! - `GET /slow?ms=N` → answers after N ms
//! - `GET /redirect` → 302 to `/target`
//! - anything else → JSON `{method, path, query, headers, body, bodyBytes}`
//!
//! Usage: `berth-echo [ADDR]` (default `0.0.0.0:8080`).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0.0.0.0:8080".into());
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/ws", get(ws))
        .route("/stream", get(stream))
        .route("/slow", get(slow))
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/target")]) }),
        )
        .fallback(echo);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("berth-echo listening on {addr}");
    axum::serve(listener, app).await
}

async fn echo(req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let reply = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "bodyBytes": body.len(),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        reply.to_string(),
    )
        .into_response()
}

async fn ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(msg)) = socket.recv().await {
            let reply = match msg {
                Message::Text(_) | Message::Binary(_) => msg,
                Message::Close(_) => break,
                // Pings are answered by the library.
                _ => continue,
            };
            if socket.send(reply).await.is_err() {
                break;
            }
        }
    })
}

#[derive(Deserialize)]
struct StreamQuery {
    chunks: Option<u32>,
    delay_ms: Option<u64>,
}

async fn stream(Query(q): Query<StreamQuery>) -> Response {
    let chunks = q.chunks.unwrap_or(3);
    let delay = Duration::from_millis(q.delay_ms.unwrap_or(100));
    let body = futures_util::stream::unfold(0u32, move |i| async move {
        if i >= chunks {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<_, std::io::Error>(format!("chunk {i}\n")), i + 1))
    });
    Body::from_stream(body).into_response()
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: Option<u64>,
}

async fn slow(Query(q): Query<SlowQuery>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(q.ms.unwrap_or(1000))).await;
    "slow"
}

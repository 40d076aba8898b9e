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
//! - `GET /set-cookie?c=<Set-Cookie value>&c=…` → 200 with those cookies
//! - `GET /page.html` → an HTML page whose script tries what a hostile
//!   workspace would (read Berth's API, mint a token, read cookies) and
//!   writes what happened into `#out` as JSON (`?berth=<Berth's origin>`)
//! - anything else → JSON `{method, path, query, headers, body, bodyBytes,
//!   listener}`
//!
//! Usage: `berth-echo [ADDR…]` (default `0.0.0.0:8080`); each address is
//! served the same way, e.g. `0.0.0.0:8080 127.0.0.1:5173` for a second
//! server that only the container's own loopback reaches.

use std::collections::BTreeMap;
use std::future::IntoFuture;
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
    let mut addrs: Vec<String> = std::env::args().skip(1).collect();
    if addrs.is_empty() {
        addrs.push("0.0.0.0:8080".into());
    }
    let mut servers = Vec::new();
    for addr in addrs {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("berth-echo listening on {addr}");
        servers.push(tokio::spawn(axum::serve(listener, app(addr)).into_future()));
    }
    for s in servers {
        s.await.map_err(std::io::Error::other)??;
    }
    Ok(())
}

fn app(listener: String) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/ws", get(ws))
        .route("/stream", get(stream))
        .route("/slow", get(slow))
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/target")]) }),
        )
        .route("/set-cookie", get(set_cookie))
        .route("/page.html", get(page))
        .fallback(move |req: Request| echo(req, listener.clone()))
}

async fn set_cookie(req: Request) -> Response {
    let query = req.uri().query().unwrap_or("").to_string();
    let mut resp = "cookies set\n".into_response();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "c" {
            if let Ok(v) = header::HeaderValue::from_str(&v) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
    }
    resp
}

/// What a hostile page would try from a workspace's origin.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>echo page</title></head>
<body><pre id="out">running</pre>
<script>
(async () => {
  const berth = new URLSearchParams(location.search).get("berth") || "";
  const out = {};
  try {
    const r = await fetch(berth + "/api/auth/me", { credentials: "include" });
    out.me = "read " + r.status + " " + (await r.text()).slice(0, 300);
  } catch (e) { out.me = "blocked"; }
  try {
    const r = await fetch(berth + "/api/auth/tokens", {
      method: "POST", credentials: "include",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "stolen" }) });
    out.mint = "read " + r.status + " " + (await r.text()).slice(0, 300);
  } catch (e) { out.mint = "blocked"; }
  try {
    await fetch(berth + "/api/auth/tokens", {
      method: "POST", mode: "no-cors", credentials: "include",
      headers: { "content-type": "text/plain" }, body: '{"name":"stolen-blind"}' });
    out.blind = "sent";
  } catch (e) { out.blind = "blocked"; }
  try {
    const r = await fetch("/api/auth/me");
    const text = await r.text();
    let path = null;
    try { path = JSON.parse(text).path; } catch (e) { /* not the echo's JSON */ }
    out.sameOrigin = r.status + " " + (path || text.slice(0, 200));
  } catch (e) { out.sameOrigin = "error"; }
  out.cookies = document.cookie;
  document.getElementById("out").textContent = JSON.stringify(out);
})();
</script></body></html>
"#;

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn echo(req: Request, listener: String) -> Response {
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
        "listener": listener,
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

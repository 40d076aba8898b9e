//! `ANY /api/workspaces/:id/proxy/*path`: a reverse proxy to the workspace's
//! port published on 127.0.0.1 (SPEC §2 item 18).
//!
//! Bodies stream both ways (nothing is buffered), WebSocket (any `Upgrade`)
//! connections are tunnelled byte for byte once both sides agreed, and the
//! workspace never sees Berth's credentials: a Bearer `Authorization` header
//! and the session cookie are removed, as are hop-by-hop headers (RFC 9110
//! §7.6.1). The path after `/proxy` is what the workspace sees; the prefix
//! goes in `X-Forwarded-Prefix`, and redirects to absolute paths are put
//! back under it so a browser stays inside the proxy.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, OriginalUri, Path, Request, State};
use axum::http::header::{
    self, HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, COOKIE, HOST, LOCATION,
    UPGRADE,
};
use axum::http::{StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use uuid::Uuid;

use crate::http::error::ApiError;
use crate::http::extract::{parse_uuid, Caller, SESSION_COOKIE};
use crate::service::proxy::Upstream;
use crate::service::Berth;

/// How long a browser navigation waits before it gets the "starting" page
/// (which reloads itself) instead of waiting for the whole wake timeout.
const NAVIGATION_WAIT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// `/api/workspaces/:id/proxy` → redirect to the same with a trailing slash,
/// so that relative URLs in the workspace's pages resolve under the proxy.
pub async fn bare(OriginalUri(uri): OriginalUri) -> Response {
    let mut to = format!("{}/", uri.path());
    if let Some(q) = uri.query() {
        to.push('?');
        to.push_str(q);
    }
    (StatusCode::PERMANENT_REDIRECT, [(LOCATION, to)]).into_response()
}

pub async fn proxy(
    State(berth): State<Berth>,
    caller: Result<Caller, ApiError>,
    Path(params): Path<std::collections::HashMap<String, String>>,
    OriginalUri(original): OriginalUri,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = match caller {
        Ok(c) => c,
        // A page load without a session (a link from another site: the
        // SameSite=Strict cookie is not sent; or a session that expired)
        // goes to the UI's login, which comes back here afterwards.
        Err(e) if e.status == StatusCode::UNAUTHORIZED && is_navigation(req.headers()) => {
            let back = original
                .path_and_query()
                .map(|pq| pq.as_str())
                .unwrap_or("/");
            let to = format!("/#/login?next={}", percent_encode(back));
            return Ok((
                StatusCode::SEE_OTHER,
                [(LOCATION, to.as_str()), (header::CACHE_CONTROL, "no-store")],
            )
                .into_response());
        }
        Err(e) => return Err(e),
    };
    let raw_id = params.get("id").map(String::as_str).unwrap_or_default();
    let id = parse_uuid("workspace id", raw_id)?;
    let prefix = format!("/api/workspaces/{raw_id}/proxy");
    // What follows the prefix, exactly as the client sent it (still
    // percent-encoded).
    let rest = original
        .path()
        .strip_prefix(&prefix)
        .filter(|r| r.starts_with('/'))
        .unwrap_or("/");
    let path_and_query = match original.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };

    let config = &berth.config().proxy;
    let wake_timeout = Duration::from_secs(config.wake_timeout_s);
    let navigation = is_navigation(req.headers());
    let wait = if navigation {
        wake_timeout.min(NAVIGATION_WAIT)
    } else {
        wake_timeout
    };
    let port = match berth.proxy_upstream(&caller.user, id, wait).await? {
        Upstream::Ready(port) => port,
        Upstream::Waking if navigation => return Ok(starting_page()),
        Upstream::Waking => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "workspace_starting",
                format!(
                    "workspace did not become ready within {} s (proxy.wake_timeout_s); it is still starting, try again",
                    config.wake_timeout_s
                ),
            ))
        }
    };
    berth.proxy_activity(caller.user.id, id);
    let answer = forward(
        &berth,
        caller.user.id,
        id,
        req,
        port,
        &prefix,
        &path_and_query,
        Duration::from_secs(config.response_timeout_s),
    )
    .await;
    match answer {
        // The workspace may have died between the check and the request
        // (a program that exits at once): say so, rather than blame the
        // connection. The engine may not have seen the exit yet when the
        // connection drops, so look for a short while before blaming the
        // workspace's server.
        Err(e) if e.status == StatusCode::BAD_GATEWAY => {
            let name = crate::domain::workspace_container_name(id);
            let deadline = tokio::time::Instant::now() + EXIT_GRACE;
            loop {
                match berth.engine().inspect_container(&name).await {
                    Ok(Some(c)) if !c.running => {
                        break Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "workspace_unavailable",
                            format!(
                                "the workspace's container exited (code {}) while the request was forwarded; recovery will restart it",
                                c.exit_code
                            ),
                        ))
                    }
                    Ok(Some(_)) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    _ => break Err(e),
                }
            }
        }
        other => other,
    }
}

/// How long a failed forward waits to see whether the container exited
/// (then the answer is 503 with its exit code, not a 502).
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// Everything but RFC 3986's unreserved characters, percent-encoded.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A page load by a browser (as opposed to a script's or API client's
/// request), which is better answered with a page that retries than kept
/// waiting for a minute.
fn is_navigation(headers: &HeaderMap) -> bool {
    if let Some(mode) = headers.get("sec-fetch-mode") {
        return mode.as_bytes().eq_ignore_ascii_case(b"navigate");
    }
    !headers.contains_key(UPGRADE)
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

fn starting_page() -> Response {
    let html = "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"2\"><title>Starting workspace…</title></head>\
<body style=\"font-family: system-ui, sans-serif; margin: 3em\">\
<h1>Starting your workspace…</h1>\
<p>This page reloads by itself and opens the workspace once it is ready.</p>\
</body></html>\n";
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::RETRY_AFTER, "2"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// The `Upgrade` protocol asked for, when the request asks to switch.
fn upgrade_requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    wants.then(|| headers.get(UPGRADE).cloned()).flatten()
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Removes Berth's credentials: a Bearer `Authorization` header (another
/// scheme belongs to the workspace's own app) and the session cookie.
fn strip_credentials(headers: &mut HeaderMap) {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
    if bearer {
        headers.remove(AUTHORIZATION);
    }
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| !kv.is_empty())
        .filter(|kv| kv.split_once('=').map_or(*kv, |(k, _)| k).trim() != SESSION_COOKIE)
        .map(str::to_string)
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(COOKIE, v);
        }
    }
}

fn upstream_error(status: StatusCode, code: &'static str, message: String) -> ApiError {
    tracing::info!(%status, %message, "proxy upstream error");
    ApiError::new(status, code, message)
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    berth: &Berth,
    user_id: Uuid,
    id: Uuid,
    mut req: Request,
    port: u16,
    prefix: &str,
    path_and_query: &str,
    response_timeout: Duration,
) -> Result<Response, ApiError> {
    let upgrade = upgrade_requested(req.headers());
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let client_addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip());
    let (mut parts, body) = req.into_parts();

    let original_host = parts.headers.get(HOST).cloned();
    strip_hop_by_hop(&mut parts.headers);
    strip_credentials(&mut parts.headers);
    if let Some(protocol) = &upgrade {
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(UPGRADE, protocol.clone());
    }
    let h = &mut parts.headers;
    // The workspace sees the host the browser used (code-server compares
    // it with Origin), and where the request really came from.
    match &original_host {
        Some(host) => {
            h.insert("x-forwarded-host", host.clone());
        }
        None => {
            let v = HeaderValue::from_str(&format!("127.0.0.1:{port}")).expect("valid host");
            h.insert(HOST, v);
        }
    }
    if let Some(ip) = client_addr {
        let chain = match h.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&chain) {
            h.insert("x-forwarded-for", v);
        }
    }
    if !h.contains_key("x-forwarded-proto") {
        let proto = if berth.config().auth.cookie_secure {
            "https"
        } else {
            "http"
        };
        h.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    }
    if let Ok(v) = HeaderValue::from_str(prefix) {
        h.insert("x-forwarded-prefix", v);
    }
    parts.uri = path_and_query
        .parse::<Uri>()
        .map_err(|e| ApiError::bad_request(format!("invalid proxied path: {e}")))?;
    parts.version = Version::HTTP_11;
    let upstream_req = Request::from_parts(parts, body);

    let stream = match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(upstream_error(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!("the workspace did not accept the connection on its port: {e}"),
            ))
        }
        Err(_) => {
            return Err(upstream_error(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the workspace did not accept the connection in time".into(),
            ))
        }
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| {
            upstream_error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("HTTP handshake with the workspace failed: {e}"),
            )
        })?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "proxy upstream connection ended");
        }
    });
    let mut resp = match tokio::time::timeout(response_timeout, sender.send_request(upstream_req))
        .await
    {
        Ok(Ok(r)) => r,
        // Docker's port forwarder accepts the connection even when nothing
        // listens inside the container, then closes it.
        Ok(Err(e)) if e.is_canceled() || e.is_incomplete_message() => {
            return Err(upstream_error(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                "the workspace closed the connection without answering; is its server listening on the type's port?".into(),
            ))
        }
        Ok(Err(e)) => {
            return Err(upstream_error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("the workspace failed to answer: {e}"),
            ))
        }
        Err(_) => {
            return Err(upstream_error(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!(
                    "the workspace did not answer within {} s (proxy.response_timeout_s)",
                    response_timeout.as_secs()
                ),
            ))
        }
    };

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(upstream_error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                "the workspace switched protocols without being asked".into(),
            ));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tunnel(berth.clone(), user_id, id, client_upgrade, upstream_upgrade);
        // The 101 goes back as it came, Upgrade and Connection included.
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }

    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some(loc) = parts.headers.get(LOCATION).and_then(|v| v.to_str().ok()) {
        // An absolute path on the workspace is under the prefix here.
        if loc.starts_with('/') && !loc.starts_with("//") {
            if let Ok(v) = HeaderValue::from_str(&format!("{prefix}{loc}")) {
                parts.headers.insert(LOCATION, v);
            }
        }
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Joins the client's and the workspace's upgraded connections and copies
/// bytes both ways until either side closes. An open tunnel counts as
/// activity (an editor left open keeps its workspace).
fn tunnel(
    berth: Berth,
    user_id: Uuid,
    id: Uuid,
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "proxy upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        let every = Duration::from_secs(berth.config().proxy.activity_interval_s.max(1));
        let keep_active = async {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                berth.proxy_activity(user_id, id);
            }
        };
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "proxy tunnel closed");
                }
            }
            _ = keep_active => {}
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic abc"),
            ("x-kept", "yes"),
            ("content-type", "text/plain"),
        ]);
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept", "content-type"]);
    }

    #[test]
    fn berth_credentials_go_and_others_stay() {
        let mut h = headers(&[
            ("authorization", "Bearer berth_secret"),
            ("cookie", "theme=dark; berth_session=s3cret"),
            ("cookie", "berth_session=again;other=1"),
        ]);
        strip_credentials(&mut h);
        assert!(h.get(AUTHORIZATION).is_none());
        assert_eq!(h.get_all(COOKIE).iter().count(), 1);
        assert_eq!(h.get(COOKIE).unwrap(), "theme=dark; other=1");

        let mut only = headers(&[
            ("cookie", "berth_session=x"),
            ("authorization", "Basic dTpw"),
        ]);
        strip_credentials(&mut only);
        assert!(only.get(COOKIE).is_none());
        assert_eq!(only.get(AUTHORIZATION).unwrap(), "Basic dTpw");
    }

    #[test]
    fn upgrades_are_recognised() {
        let ws = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(upgrade_requested(&ws).unwrap(), "websocket");
        assert!(upgrade_requested(&headers(&[("upgrade", "websocket")])).is_none());
        assert!(upgrade_requested(&headers(&[("connection", "upgrade")])).is_none());
    }

    #[test]
    fn navigations_are_told_apart() {
        assert!(is_navigation(&headers(&[("sec-fetch-mode", "navigate")])));
        assert!(!is_navigation(&headers(&[
            ("sec-fetch-mode", "cors"),
            ("accept", "text/html")
        ])));
        assert!(is_navigation(&headers(&[("accept", "text/html,*/*")])));
        assert!(!is_navigation(&headers(&[("accept", "application/json")])));
        assert!(!is_navigation(&HeaderMap::new()));
    }
}

//! The forwarder path mode and app origins share: one request to a
//! workspace over HTTP/1.1 (a hyper client per request to the published
//! port on the workspace's node, or over an exec relay for another port),
//! bodies streamed both ways, an upgrade tunnelled byte for byte once both
//! sides agreed, credentials and hop-by-hop headers stripped, the app's
//! `Set-Cookie` and `Location` rewritten under path mode's prefix.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, COOKIE, HOST, LOCATION,
    SET_COOKIE, UPGRADE,
};
use axum::http::{StatusCode, Uri, Version};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use uuid::Uuid;

use crate::domain::apps::{rewrite_location, rewrite_set_cookie, strip_berth_cookies, CookieScope};
use crate::http::error::{ApiError, ErrorCode};
use crate::service::apps::proxy::Reach;
use crate::service::apps::AppTarget;
use crate::service::Apps;

/// A connection to the workspace: a TCP socket to its published port, or
/// an exec relay to another port.
trait UpstreamIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> UpstreamIo for T {}

/// How long the workspace has to accept a connection.
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

/// One request to forward to a workspace.
pub(crate) struct Forward<'a> {
    pub target: &'a AppTarget,
    /// Where the workspace is reached: its node's address and the type's
    /// published port there; its container for other ports.
    pub reach: Reach,
    /// What the workspace is asked for.
    pub path_and_query: String,
    /// Path mode's prefix: redirects and cookies are put under it. `None`
    /// on an app origin.
    pub path_prefix: Option<String>,
    /// Whose traffic this is (only the owner's counts as activity).
    pub activity_user: Option<Uuid>,
}

/// Forwards `req`; a workspace that died meanwhile is a 503 with its exit
/// code rather than a bare 502.
pub(crate) async fn forward(
    apps: &Apps,
    req: Request,
    f: Forward<'_>,
) -> Result<Response, ApiError> {
    let id = f.target.ws.id;
    let node = f.reach.node.clone();
    match forward_once(apps, req, f).await {
        // The workspace may have died between the check and the request
        // (a program that exits at once): say so, rather than blame the
        // connection. The engine may not have seen the exit yet when the
        // connection drops, so look for a short while before blaming the
        // workspace's server.
        Err(e) if e.status() == StatusCode::BAD_GATEWAY => {
            let name = crate::domain::workspace_container_name(id);
            let deadline = tokio::time::Instant::now() + EXIT_GRACE;
            loop {
                let engine = match apps.berth().core().engine_on(&node).await {
                    Ok(e) => e,
                    Err(e) => break Err(e.into()),
                };
                match engine.inspect_container(&name).await {
                    Ok(Some(c)) if !c.running => {
                        break Err(ApiError::new(ErrorCode::WorkspaceUnavailable, format!(
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

/// The `Upgrade` protocol asked for, when the request asks to switch.
pub(super) fn upgrade_requested(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    wants.then(|| headers.get(UPGRADE).cloned()).flatten()
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
/// scheme belongs to the workspace's own app) and Berth's cookies.
pub(super) fn strip_credentials(headers: &mut HeaderMap) {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
    if bearer {
        headers.remove(AUTHORIZATION);
    }
    let kept = strip_berth_cookies(
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    headers.remove(COOKIE);
    if let Some(v) = kept.and_then(|k| HeaderValue::from_str(&k).ok()) {
        headers.insert(COOKIE, v);
    }
}

fn upstream_error(code: ErrorCode, message: String) -> ApiError {
    tracing::info!(%code, %message, "proxy upstream error");
    ApiError::new(code, message)
}

async fn connect(apps: &Apps, f: &Forward<'_>) -> Result<Box<dyn UpstreamIo>, ApiError> {
    if !f.target.main {
        let engine = apps.berth().core().engine_on(&f.reach.node).await?;
        return match engine
            .relay_connect(&f.reach.container, f.target.port)
            .await
        {
            Ok(Ok(stream)) => Ok(Box::new(stream)),
            Ok(Err(why)) => Err(upstream_error(
                ErrorCode::PortNotListening,
                format!("{why}; start a server on it inside the workspace"),
            )),
            Err(e) => Err(upstream_error(
                ErrorCode::UpstreamError,
                format!(
                    "cannot reach port {} inside the workspace: {e}",
                    f.target.port
                ),
            )),
        };
    }
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((f.reach.host.as_str(), f.reach.host_port)),
    )
    .await
    {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(Box::new(s))
        }
        Ok(Err(e)) => Err(upstream_error(
            ErrorCode::UpstreamUnreachable,
            format!("the workspace did not accept the connection on its port: {e}"),
        )),
        Err(_) => Err(upstream_error(
            ErrorCode::UpstreamTimeout,
            "the workspace did not accept the connection in time".into(),
        )),
    }
}

async fn forward_once(apps: &Apps, mut req: Request, f: Forward<'_>) -> Result<Response, ApiError> {
    let response_timeout =
        Duration::from_secs(apps.berth().core().config().proxy.response_timeout_s);
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
    // The workspace sees the host the browser used (code-server and
    // Jupyter compare it with Origin), and where the request came from.
    match &original_host {
        Some(host) => {
            h.insert("x-forwarded-host", host.clone());
        }
        None => {
            let v = HeaderValue::from_str(&format!("{}:{}", f.reach.host, f.reach.host_port))
                .map_err(|_| {
                    ApiError::new(
                        ErrorCode::UpstreamError,
                        format!("node address {:?} is not a host name", f.reach.host),
                    )
                })?;
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
        let proto = if apps.berth().core().config().auth.cookie_secure
            || apps.berth().core().app_urls().secure()
        {
            "https"
        } else {
            "http"
        };
        h.insert("x-forwarded-proto", HeaderValue::from_static(proto));
    }
    // Where the prefix was removed, the app learns what it was.
    match &f.path_prefix {
        Some(prefix) if !f.target.keep_prefix => {
            if let Ok(v) = HeaderValue::from_str(prefix.trim_end_matches('/')) {
                h.insert("x-forwarded-prefix", v);
            }
        }
        _ => {
            h.remove("x-forwarded-prefix");
        }
    }
    parts.uri = f
        .path_and_query
        .parse::<Uri>()
        .map_err(|e| ApiError::bad_request(format!("invalid proxied path: {e}")))?;
    parts.version = Version::HTTP_11;
    let upstream_req = Request::from_parts(parts, body);

    let stream = connect(apps, &f).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| {
            upstream_error(
                ErrorCode::UpstreamError,
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
            return Err(upstream_error(ErrorCode::UpstreamUnreachable, "the workspace closed the connection without answering; is its server listening on the type's port?".into(),
            ))
        }
        Ok(Err(e)) => {
            return Err(upstream_error(ErrorCode::UpstreamError, format!("the workspace failed to answer: {e}"),
            ))
        }
        Err(_) => {
            return Err(upstream_error(ErrorCode::UpstreamTimeout, format!(
                    "the workspace did not answer within {} s (proxy.response_timeout_s)",
                    response_timeout.as_secs()
                ),
            ))
        }
    };

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(upstream_error(
                ErrorCode::UpstreamError,
                "the workspace switched protocols without being asked".into(),
            ));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tunnel(
            apps.clone(),
            f.activity_user,
            f.target.ws.id,
            client_upgrade,
            upstream_upgrade,
        );
        // The 101 goes back as it came, Upgrade and Connection included.
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }

    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    rewrite_response_headers(&mut parts.headers, f.path_prefix.as_deref());
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// What the browser must not get as the workspace sent it: in path mode
/// absolute redirects go under the prefix; cookies lose `Domain`, go under
/// the prefix in path mode, and never carry Berth's names.
fn rewrite_response_headers(headers: &mut HeaderMap, path_prefix: Option<&str>) {
    if let (Some(prefix), Some(loc)) = (
        path_prefix,
        headers.get(LOCATION).and_then(|v| v.to_str().ok()),
    ) {
        if let Some(v) =
            rewrite_location(false, prefix, loc).and_then(|l| HeaderValue::from_str(&l).ok())
        {
            headers.insert(LOCATION, v);
        }
    }
    let scope = match path_prefix {
        Some(p) => CookieScope::Prefix(p),
        None => CookieScope::Host,
    };
    let cookies: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| rewrite_set_cookie(v, scope))
        .filter_map(|v| HeaderValue::from_str(&v).ok())
        .collect();
    headers.remove(SET_COOKIE);
    for c in cookies {
        headers.append(SET_COOKIE, c);
    }
}

/// Joins the client's and the workspace's upgraded connections and copies
/// bytes both ways until either side closes. An open tunnel counts as
/// activity (an editor left open keeps its workspace).
fn tunnel(
    apps: Apps,
    user_id: Option<Uuid>,
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
        let every = Duration::from_secs(
            apps.berth()
                .core()
                .config()
                .proxy
                .activity_interval_s
                .max(1),
        );
        let stop = apps.berth().core().shutdown_token();
        let keep_active = async {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Some(user_id) = user_id {
                    apps.proxy_activity(user_id, id);
                }
            }
        };
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "proxy tunnel closed");
                }
            }
            _ = keep_active => {}
            // A shutdown closes open tunnels rather than wait for them.
            _ = stop.cancelled() => {}
        }
    });
}

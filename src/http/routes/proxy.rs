//! Path mode: `ANY /api/workspaces/:id/proxy/*path` (the workspace's app)
//! and `ANY /api/workspaces/:id/ports/:port/*path` (another port of it), on
//! Berth's own origin; and the forwarder that app origins
//! (`routes::apps`) share.
//!
//! A page served in path mode is same-origin with Berth's API, so it could
//! act as whoever views it: path mode serves the workspace's owner only
//! (`domain::apps::path_access`), scopes the cookies the app sets to its
//! prefix and drops any named like Berth's. With `proxy.app_domain` set,
//! browser navigations go to the app's own origin instead.
//!
//! Bodies stream both ways (nothing is buffered), WebSocket (any `Upgrade`)
//! connections are tunnelled byte for byte once both sides agreed, and the
//! workspace never sees Berth's credentials: a Bearer `Authorization` header
//! and Berth's cookies are removed, as are hop-by-hop headers (RFC 9110
//! §7.6.1). The type's own port is reached on its 127.0.0.1 published port;
//! other ports through the engine (`engine::relay`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, OriginalUri, Path, Request, State};
use axum::http::header::{
    self, HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, COOKIE, HOST, LOCATION,
    SET_COOKIE, UPGRADE,
};
use axum::http::{StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use uuid::Uuid;

use crate::domain::apps::{
    path_access, rewrite_location, rewrite_set_cookie, strip_berth_cookies, upstream_path,
    CookieScope, PathAccess,
};
use crate::http::error::ApiError;
use crate::http::extract::{parse_uuid, Caller};
use crate::service::apps::proxy::{Reach, Upstream};
use crate::service::apps::AppTarget;
use crate::service::Apps;

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

/// The workspace's app in path mode.
pub async fn proxy(
    State(apps): State<Apps>,
    caller: Result<Caller, ApiError>,
    Path(params): Path<std::collections::HashMap<String, String>>,
    OriginalUri(original): OriginalUri,
    req: Request,
) -> Result<Response, ApiError> {
    let raw_id = params.get("id").cloned().unwrap_or_default();
    path_mode(apps, caller, &raw_id, None, original, req).await
}

/// Another port of the workspace in path mode.
pub async fn port_proxy(
    State(apps): State<Apps>,
    caller: Result<Caller, ApiError>,
    Path(params): Path<std::collections::HashMap<String, String>>,
    OriginalUri(original): OriginalUri,
    req: Request,
) -> Result<Response, ApiError> {
    let raw_id = params.get("id").cloned().unwrap_or_default();
    let raw_port = params.get("port").cloned().unwrap_or_default();
    path_mode(apps, caller, &raw_id, Some(&raw_port), original, req).await
}

async fn path_mode(
    apps: Apps,
    caller: Result<Caller, ApiError>,
    raw_id: &str,
    raw_port: Option<&str>,
    original: Uri,
    req: Request,
) -> Result<Response, ApiError> {
    let navigation = is_navigation(req.headers());
    let caller = match caller {
        Ok(c) => c,
        // A page load without a session (a link from another site: the
        // SameSite=Strict cookie is not sent; or a session that expired)
        // goes to the UI's login, which comes back here afterwards.
        Err(e) if e.status == StatusCode::UNAUTHORIZED && navigation => {
            let back = original
                .path_and_query()
                .map(|pq| pq.as_str())
                .unwrap_or("/");
            return Ok(see_other(&format!(
                "/#/login?next={}",
                percent_encode(back)
            )));
        }
        Err(e) => return Err(e),
    };
    // Credentials first: an anonymous request learns nothing from the path.
    let id = parse_uuid("workspace id", raw_id)?;
    let port = raw_port.map(parse_port).transpose()?;
    let ws = apps.berth().core().workspace(&caller.user, id).await?;
    let target = apps.app_target(ws, port)?;
    let config = &apps.berth().core().config().proxy;
    if path_access(
        &caller.user,
        target.ws.owner_id,
        config.dangerous_allow_path_app_admin_access,
    ) == PathAccess::AdminRefused
    {
        return Ok(path_refused(&apps, &target, navigation));
    }
    let prefix = match port {
        None => format!("/api/workspaces/{raw_id}/proxy/"),
        Some(p) => format!("/api/workspaces/{raw_id}/ports/{p}/"),
    };
    let requested = original
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    // Where app origins exist, a page is shown there, never on Berth's.
    if navigation {
        let label_port = (!target.main).then_some(target.port);
        if let Some(origin) = apps
            .berth()
            .core()
            .app_urls()
            .app_origin(&target.ws, label_port)
        {
            let rest = upstream_path(false, false, &prefix, &requested);
            return Ok(see_other(&format!("{origin}{rest}")));
        }
    }
    let path_and_query = upstream_path(false, target.keep_prefix, &prefix, &requested);
    let upstream = wake(&apps, &target, Some(&caller.user), navigation).await?;
    let Some(reach) = upstream else {
        return Ok(starting_page());
    };
    apps.proxy_activity(caller.user.id, id);
    forward(
        &apps,
        req,
        Forward {
            target: &target,
            reach,
            path_and_query,
            path_prefix: Some(prefix),
            activity_user: Some(caller.user.id),
        },
    )
    .await
}

/// A port number in a path (1-65535), or a 400 that says so.
pub(crate) fn parse_port(raw: &str) -> Result<u16, ApiError> {
    raw.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
        ApiError::bad_request(format!("port {raw:?} is not a port number (1-65535)"))
    })
}

/// A browser without a session goes to the UI's login, which comes back
/// to `original` afterwards.
pub(crate) fn to_login(original: &Uri) -> Response {
    let back = original
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    see_other(&format!("/#/login?next={}", percent_encode(back)))
}

/// A 303 to `to`, not to be cached.
pub(crate) fn see_other(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, to), (header::CACHE_CONTROL, "no-store")],
    )
        .into_response()
}

/// An admin opening another user's app in path mode: refused, with a page
/// (or, for an API client, an error) that says why and what to do.
fn path_refused(apps: &Apps, target: &AppTarget, navigation: bool) -> Response {
    let why = "This app runs on Berth's own origin here (path mode), where its pages could act \
               with your Berth credentials. Only the workspace's owner opens it in path mode.";
    let fix = if apps.berth().core().app_urls().subdomain() {
        "Open it from Berth's workspace page: it opens on an origin of its own."
    } else {
        "Ask the operator to serve apps on their own origins (proxy.app_domain), where an \
         admin may look at any workspace's app safely."
    };
    if !navigation {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "path_app_refused",
            format!("{why} {fix} (workspace {})", target.ws.id),
        )
        .into_response();
    }
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Not opened in path mode</title></head>\
<body style=\"font-family: system-ui, sans-serif; margin: 3em; max-width: 40em\">\
<h1>This app is not opened here</h1><p>{why}</p><p>{fix}</p></body></html>\n"
    );
    (
        StatusCode::FORBIDDEN,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// Waits for the workspace to serve (starting it when `waker` may):
/// `Some(where it is reached)` when it does, `None` when a browser
/// navigation should get the starting page, a 504 for an API client that
/// waited the whole wake timeout.
pub(crate) async fn wake(
    apps: &Apps,
    target: &AppTarget,
    waker: Option<&crate::domain::User>,
    navigation: bool,
) -> Result<Option<Reach>, ApiError> {
    match apps
        .upstream_of(target.ws.id, waker, apps.app_wake_wait(navigation))
        .await?
    {
        Upstream::Ready(reach) => Ok(Some(reach)),
        Upstream::Waking if navigation => Ok(None),
        Upstream::Waking => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "workspace_starting",
            format!(
                "workspace did not become ready within {} s (proxy.wake_timeout_s); it is still starting, try again",
                apps.berth().core().config().proxy.wake_timeout_s
            ),
        )),
    }
}

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
        Err(e) if e.status == StatusCode::BAD_GATEWAY => {
            let name = crate::domain::workspace_container_name(id);
            let deadline = tokio::time::Instant::now() + EXIT_GRACE;
            loop {
                let engine = match apps.berth().core().engine_on(&node).await {
                    Ok(e) => e,
                    Err(e) => break Err(e.into()),
                };
                match engine.inspect_container(&name).await {
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
pub(crate) fn percent_encode(s: &str) -> String {
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
pub(crate) fn is_navigation(headers: &HeaderMap) -> bool {
    if let Some(mode) = headers.get("sec-fetch-mode") {
        return mode.as_bytes().eq_ignore_ascii_case(b"navigate");
    }
    !headers.contains_key(UPGRADE)
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

pub(crate) fn starting_page() -> Response {
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
/// scheme belongs to the workspace's own app) and Berth's cookies.
fn strip_credentials(headers: &mut HeaderMap) {
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

fn upstream_error(status: StatusCode, code: &'static str, message: String) -> ApiError {
    tracing::info!(%status, %message, "proxy upstream error");
    ApiError::new(status, code, message)
}

/// A connection to the workspace: a TCP socket to its published port, or
/// an exec relay to another port.
trait UpstreamIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> UpstreamIo for T {}

async fn connect(apps: &Apps, f: &Forward<'_>) -> Result<Box<dyn UpstreamIo>, ApiError> {
    if !f.target.main {
        let engine = apps.berth().core().engine_on(&f.reach.node).await?;
        return match engine
            .relay_connect(&f.reach.container, f.target.port)
            .await
        {
            Ok(Ok(stream)) => Ok(Box::new(stream)),
            Ok(Err(why)) => Err(upstream_error(
                StatusCode::BAD_GATEWAY,
                "port_not_listening",
                format!("{why}; start a server on it inside the workspace"),
            )),
            Err(e) => Err(upstream_error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
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
            StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            format!("the workspace did not accept the connection on its port: {e}"),
        )),
        Err(_) => Err(upstream_error(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
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
                        StatusCode::BAD_GATEWAY,
                        "upstream_error",
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

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

use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::header::{self, HeaderMap, LOCATION, UPGRADE};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::domain::apps::{path_access, upstream_path, PathAccess};
use crate::http::error::{ApiError, ErrorCode};
use crate::http::extract::{parse_uuid, Caller};
use crate::service::apps::proxy::{Reach, Upstream};
use crate::service::apps::AppTarget;
use crate::service::Apps;

pub(crate) use super::forward::{forward, Forward};

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
        Err(e) if e.status() == StatusCode::UNAUTHORIZED && navigation => {
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
            ErrorCode::PathAppRefused,
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
        Upstream::Waking => Err(ApiError::new(ErrorCode::WorkspaceStarting, format!(
                "workspace did not become ready within {} s (proxy.wake_timeout_s); it is still starting, try again",
                apps.berth().core().config().proxy.wake_timeout_s
            ),
        )),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::routes::forward::{strip_credentials, strip_hop_by_hop, upgrade_requested};
    use axum::http::header::{HeaderName, HeaderValue, AUTHORIZATION, COOKIE};

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

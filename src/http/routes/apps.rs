//! Workspace apps on their own origins (`proxy.app_domain`): a request whose
//! `Host` names an app is answered here before the API's router sees it
//! ([`by_host`]), so nothing of Berth's API exists on an app origin. Also
//! the login handoff: `GET /api/apps/auth` on Berth's origin issues a
//! single-use code for a logged-in user, and `/__berth/auth` on the app's
//! origin exchanges it for an app cookie valid there only. And the ports a
//! workspace listens on, and their shares.
//!
//! Berth's session cookie is host-only on Berth's host and never read here;
//! the app cookie authorises one workspace port's proxy traffic and is never
//! accepted by the API (it lives in a table the API does not read).

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue, AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::domain::apps::{safe_next, upstream_path, AppAccess, AppHost, APP_COOKIE, AUTH_PATH};
use crate::domain::User;
use crate::http::error::{ApiError, ApiResult, ErrorCode};
use crate::http::extract::{parse_uuid, ApiJson, ApiQuery, Caller, IdPath};
use crate::http::routes::proxy::{
    forward, is_navigation, parse_port, percent_encode, see_other, starting_page, to_login, wake,
    Forward,
};
use crate::http::wire::{ok, rfc3339, HandoffQuery, PortDto, ShareDto, ShareRequest, UnsharedDto};
use crate::service::apps::{AppTarget, AppUrls};
use crate::service::Apps;

/// Serves app origins; passes every other request on to the API.
pub async fn by_host(State(apps): State<Apps>, req: Request, next: Next) -> Response {
    let app = request_host(req.headers(), req.uri())
        .and_then(|h| apps.berth().core().app_urls().parse_host(&h));
    match app {
        Some(app) => serve(apps, app, req).await,
        None => next.run(req).await,
    }
}

/// The host a request was sent to (`Host`, or the URI's authority).
fn request_host(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<String> {
    headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()))
}

async fn serve(apps: Apps, app: AppHost, req: Request) -> Response {
    let navigation = is_navigation(req.headers());
    match serve_app(&apps, app, req, navigation).await {
        Ok(r) => r,
        Err(e) if navigation => error_page(&e),
        Err(e) => e.into_response(),
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
}

/// Who is asking on an app origin: a Bearer token (API clients), else the
/// app cookie (browsers, after the handoff). Also whether the cookie was
/// what authenticated the request.
async fn viewer(
    apps: &Apps,
    target: &AppTarget,
    headers: &HeaderMap,
) -> Result<(Option<User>, bool), ApiError> {
    if let Some(token) = bearer(headers) {
        let (user, _) = apps.berth().core().accounts().authenticate(token).await?;
        return Ok((Some(user), false));
    }
    match cookie_value(headers, APP_COOKIE) {
        Some(token) => Ok((apps.app_user(token, target).await?, true)),
        None => Ok((None, false)),
    }
}

async fn serve_app(
    apps: &Apps,
    app: AppHost,
    req: Request,
    navigation: bool,
) -> Result<Response, ApiError> {
    let urls = apps.berth().core().app_urls();
    let target = apps.resolve_app(&app).await?;
    let host = request_host(req.headers(), req.uri()).unwrap_or_default();
    let origin = format!("{}://{}", urls.scheme(), host);
    let requested = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    if !target.canonical && navigation {
        // Renamed: the browser goes to the app's current origin.
        let label_port = (!target.main).then_some(target.port);
        if let Some(o) = urls.app_origin(&target.ws, label_port) {
            return Ok(see_other(&format!("{o}{requested}")));
        }
    }
    if req.uri().path() == AUTH_PATH {
        return exchange(apps, &target, req.uri().query().unwrap_or("")).await;
    }
    let (viewer, by_cookie) = viewer(apps, &target, req.headers()).await?;
    match apps.app_access(viewer.as_ref(), &target).await? {
        AppAccess::Allow => {}
        AppAccess::Login if navigation => {
            let back = format!("{origin}{requested}");
            let to = format!(
                "{}/api/apps/auth?redirect={}",
                urls.public_base(),
                percent_encode(&back)
            );
            let mut resp = see_other(&to);
            if by_cookie {
                // A cookie that no longer works (logged out, revoked): gone.
                resp.headers_mut()
                    .insert(header::SET_COOKIE, app_cookie(apps, "", 0));
            }
            return Ok(resp);
        }
        AppAccess::Login => {
            return Err(ApiError::new(ErrorCode::Unauthorized, "log in to Berth first: open the app in a browser, or send 'Authorization: Bearer <token>'",
            ))
        }
        AppAccess::Deny => {
            return Err(ApiError::new(ErrorCode::NotFound, "no such workspace app",
            ))
        }
    }
    // Another site (a sibling app origin, say) may not make this browser
    // change things, or open a WebSocket, with its app cookie.
    let upgrade = req.headers().contains_key(header::UPGRADE);
    if by_cookie && (!is_safe(req.method()) || upgrade) {
        let from = req.headers().get(ORIGIN).and_then(|v| v.to_str().ok());
        if from.is_some_and(|o| !o.eq_ignore_ascii_case(&origin)) {
            return Err(ApiError::new(
                ErrorCode::CrossOrigin,
                "a request from another origin may not use this app's cookie",
            ));
        }
    }
    let waker = viewer
        .as_ref()
        .filter(|u| u.id == target.ws.owner_id || u.is_admin());
    let Some(reach) = wake(apps, &target, waker, navigation).await? else {
        return Ok(starting_page());
    };
    let path_and_query = upstream_path(
        true,
        target.keep_prefix,
        &AppUrls::proxy_prefix(target.ws.id),
        &requested,
    );
    if let Some(u) = &viewer {
        apps.proxy_activity(u.id, target.ws.id);
    }
    forward(
        apps,
        req,
        Forward {
            target: &target,
            reach,
            path_and_query,
            path_prefix: None,
            activity_user: viewer.map(|u| u.id),
        },
    )
    .await
}

fn is_safe(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The app cookie: host-only on the app origin (no `Domain`), HttpOnly,
/// `SameSite=Lax` (a link from Berth's page carries it), `Secure` behind TLS.
fn app_cookie(apps: &Apps, value: &str, max_age_s: i64) -> HeaderValue {
    let secure = if apps.berth().core().app_urls().secure() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{APP_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}"
    ))
    .expect("cookie is ASCII")
}

/// `/__berth/auth?code=…&next=…` on an app origin: the code for the app
/// cookie, then on to where the browser was going.
async fn exchange(apps: &Apps, target: &AppTarget, query: &str) -> Result<Response, ApiError> {
    let q: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let code = q
        .get("code")
        .ok_or_else(|| ApiError::bad_request("the sign-in link has no code; open the app again"))?;
    let (token, expires_at) = apps.redeem_app_code(code, target).await?;
    let max_age = (expires_at - crate::domain::now_millis()).max(0) / 1000;
    let next = q.get("next").and_then(|n| safe_next(n)).unwrap_or("/");
    let mut resp = see_other(next);
    resp.headers_mut()
        .insert(header::SET_COOKIE, app_cookie(apps, &token, max_age));
    Ok(resp)
}

/// An error as a small page, for a browser on an app origin.
fn error_page(e: &ApiError) -> Response {
    let title = match e.status() {
        StatusCode::NOT_FOUND => "No such app",
        StatusCode::UNPROCESSABLE_ENTITY => "This sign-in link cannot be used",
        s if s.is_server_error() => "The app cannot be reached",
        _ => "The app cannot be opened",
    };
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
<body style=\"font-family: system-ui, sans-serif; margin: 3em; max-width: 40em\">\
<h1>{title}</h1><p>{}</p></body></html>\n",
        esc(&e.message)
    );
    (
        e.status(),
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// `GET /api/apps/auth?redirect=<app URL>` on Berth's origin: a logged-in
/// user who may open the app gets a single-use code, carried to the app's
/// origin; without a session, the UI's login first, which comes back here.
pub async fn handoff(
    State(apps): State<Apps>,
    caller: Result<Caller, ApiError>,
    ApiQuery(q): ApiQuery<HandoffQuery>,
    OriginalUri(original): OriginalUri,
) -> Result<Response, ApiError> {
    let urls = apps.berth().core().app_urls();
    if !urls.subdomain() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "apps have no origins of their own here (proxy.app_domain is not set)",
        ));
    }
    let url = url::Url::parse(&q.redirect)
        .map_err(|e| ApiError::bad_request(format!("redirect is not a URL: {e}")))?;
    let app = urls.parse_app_url(&url).ok_or_else(|| {
        ApiError::bad_request("redirect must be the URL of a workspace app served by this Berth")
    })?;
    let caller = match caller {
        Ok(c) => c,
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => return Ok(to_login(&original)),
        Err(e) => return Err(e),
    };
    let target = apps.resolve_app(&app).await?;
    let code = apps
        .issue_app_code(&caller.user, caller.token_id, &target)
        .await?;
    let next = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let origin = url.origin().ascii_serialization();
    Ok(see_other(&format!(
        "{origin}{AUTH_PATH}?code={code}&next={}",
        percent_encode(&next)
    )))
}

/// `GET /api/workspaces/{id}/ports`.
pub async fn ports(
    State(apps): State<Apps>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let ports = apps.workspace_ports(&caller.user, id).await?;
    Ok(ok(ports.iter().map(PortDto::from).collect::<Vec<_>>()))
}

fn id_and_port(params: &HashMap<String, String>) -> Result<(uuid::Uuid, u16), ApiError> {
    let id = parse_uuid(
        "workspace id",
        params.get("id").map(String::as_str).unwrap_or_default(),
    )?;
    let port = parse_port(params.get("port").map(String::as_str).unwrap_or_default())?;
    Ok((id, port))
}

fn share_dto(
    apps: &Apps,
    s: &crate::domain::apps::AppShare,
    ws: &crate::domain::Workspace,
) -> ShareDto {
    let url = match apps.app_target(ws.clone(), Some(s.port)) {
        Ok(t) if t.main => apps.berth().core().app_urls().app_url(ws),
        _ => apps.berth().core().app_urls().port_url(ws, s.port),
    };
    ShareDto {
        workspace_id: ws.id,
        workspace_name: ws.name.clone(),
        owner_id: ws.owner_id,
        port: s.port,
        level: s.level,
        url,
        created_at: rfc3339(s.created_at),
    }
}

/// `PUT /api/workspaces/{id}/shares/{port}`.
pub async fn put_share(
    State(apps): State<Apps>,
    caller: Caller,
    Path(params): Path<HashMap<String, String>>,
    ApiJson(req): ApiJson<ShareRequest>,
) -> ApiResult<Response> {
    let (id, port) = id_and_port(&params)?;
    let share = apps.set_share(&caller.user, id, port, req.level).await?;
    let ws = apps.berth().core().workspace(&caller.user, id).await?;
    Ok(ok(share_dto(&apps, &share, &ws)))
}

/// `DELETE /api/workspaces/{id}/shares/{port}`.
pub async fn delete_share(
    State(apps): State<Apps>,
    caller: Caller,
    Path(params): Path<HashMap<String, String>>,
) -> ApiResult<Response> {
    let (id, port) = id_and_port(&params)?;
    apps.remove_share(&caller.user, id, port).await?;
    Ok(ok(UnsharedDto {
        workspace_id: id,
        port,
    }))
}

/// `GET /api/shares` (admins, checked by the route table): every shared port.
pub async fn list_shares(State(apps): State<Apps>, _caller: Caller) -> ApiResult<Response> {
    let shares = apps.all_shares().await?;
    Ok(ok(shares
        .iter()
        .map(|(s, ws)| share_dto(&apps, s, ws))
        .collect::<Vec<_>>()))
}

//! Workspace apps against real containers running the `berth-echo` fixture:
//! path mode's owner-only rule and cookie scoping, app origins routed by
//! `Host` (`proxy.app_domain = "localhost"`), the login handoff with its
//! single-use codes, app cookies that authorise one app and never the API,
//! shares, the variables the container gets, types that keep their prefix,
//! and another port of a workspace reached through the engine in both
//! modes.

mod common;

use std::net::SocketAddr;

use axum::http::StatusCode;
use berth::domain::Role;
use common::{echo_type, TestEnv};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// An environment serving on a port, with app origins on `*.localhost` (or
/// path mode only when `app_domain` is false).
async fn env(app_domain: bool) -> (TestEnv, SocketAddr) {
    TestEnv::served(|c| {
        let mut echo = echo_type();
        // A second server on the container's loopback only: not published,
        // reachable through the engine alone.
        echo.command = vec![
            "/bin/berth-echo".into(),
            "0.0.0.0:8080".into(),
            "127.0.0.1:5173".into(),
        ];
        c.types.insert("echo".into(), echo);
        let mut keep = echo_type();
        keep.proxy.keep_prefix = true;
        c.types.insert("keep".into(), keep);
        if app_domain {
            c.proxy.app_domain = "localhost".into();
        }
    })
    .await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn workspace(env: &TestEnv, token: &str, type_name: &str) -> Value {
    let pid = env.project(token, "p").await;
    let (s, v) = env
        .post(
            "/api/workspaces",
            token,
            json!({ "name": "w", "type": type_name, "projectId": pid }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    env.start(token, &id).await;
    env.wait_for(
        token,
        &format!("/api/workspaces/{id}/health"),
        "healthy",
        30,
        |d| d["status"] == "healthy",
    )
    .await;
    v["data"].clone()
}

/// A request to `url` sent to Berth's socket, as a browser that resolves
/// `*.localhost` to loopback would send it.
fn to_berth(
    http: &reqwest::Client,
    method: reqwest::Method,
    addr: SocketAddr,
    url: &str,
) -> reqwest::RequestBuilder {
    let u = url::Url::parse(url).unwrap();
    let host = match u.port() {
        Some(p) => format!("{}:{p}", u.host_str().unwrap()),
        None => u.host_str().unwrap().to_string(),
    };
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    http.request(method, format!("http://{addr}{path}"))
        .header("host", host)
}

/// `?a=b&…`, encoded.
fn qs(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::from("?"));
    s.extend_pairs(pairs);
    s.finish()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// Follows the login handoff for `app_url` with a Berth session: the app
/// cookie's value.
async fn app_cookie(
    http: &reqwest::Client,
    addr: SocketAddr,
    app_url: &str,
    session: &str,
) -> String {
    let r = to_berth(http, reqwest::Method::GET, addr, app_url)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let handoff = location(&r);
    let r = to_berth(http, reqwest::Method::GET, addr, &handoff)
        .header("cookie", format!("berth_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    let exchange = location(&r);
    let r = to_berth(http, reqwest::Method::GET, addr, &exchange)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let c = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("berth_app="))
        .expect("app cookie set");
    c["berth_app=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn path_mode_serves_the_owner_only_and_scopes_the_apps_cookies() {
    let (env, addr) = env(false).await;
    let (_, owner) = env.user(Role::Member).await;
    let (_, admin) = env.user(Role::Admin).await;
    let other = env.member().await;
    let ws = workspace(&env, &owner, "echo").await;
    let id = ws["id"].as_str().unwrap();
    let http = client();
    let url = |rest: &str| format!("http://{addr}/api/workspaces/{id}/proxy{rest}");
    assert_eq!(
        ws["appUrl"],
        format!("http://{addr}/api/workspaces/{id}/proxy/")
    );

    // The owner gets the app.
    let r = http
        .get(url("/x"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // An admin does not: the page would run with the admin's credentials.
    let r = http
        .get(url("/x"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "path_app_refused");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("proxy.app_domain"));
    let r = http
        .get(url("/x"))
        .bearer_auth(&admin)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("not opened here"));
    // Another member does not even learn it exists.
    let r = http
        .get(url("/x"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Cookies the app sets: Berth's names dropped, the others kept under
    // the workspace's prefix and without a Domain.
    let r = http
        .get(url(&format!(
            "/set-cookie{}",
            qs(&[
                ("c", "berth_session=evil; Path=/"),
                ("c", "theme=dark; Path=/; Domain=127.0.0.1; HttpOnly"),
                ("c", "sub=1; Path=/deep"),
            ])
        )))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        set_cookies(&r),
        [
            format!("theme=dark; HttpOnly; Path=/api/workspaces/{id}/proxy/"),
            format!("sub=1; Path=/api/workspaces/{id}/proxy/deep"),
        ]
    );
    // Berth's cookies never reach the workspace; the app's own do.
    let v: Value = http
        .get(url("/echo"))
        .bearer_auth(&owner)
        .header("cookie", "berth_app=a; theme=dark; berth_session=s")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["headers"]["cookie"], json!(["theme=dark"]));
    // A page elsewhere on this host (a workspace's published port: the same
    // site, so the browser sends the cookie) may not open a WebSocket into
    // the app with the owner's session; Berth's own pages may.
    let (owner_id, session) = env.session(Role::Member).await;
    let owner_user = env
        .berth
        .core()
        .store()
        .user(owner_id)
        .await
        .unwrap()
        .unwrap();
    let mine_token = env
        .accounts
        .issue_api_token(&owner_user, "t")
        .await
        .unwrap()
        .1;
    let mine = workspace(&env, &mine_token, "echo").await;
    let ws_url = format!(
        "ws://{addr}/api/workspaces/{}/proxy/ws",
        mine["id"].as_str().unwrap()
    );
    for (origin, allowed) in [
        ("http://127.0.0.1:1".to_string(), false),
        (format!("http://{addr}"), true),
    ] {
        let mut req = ws_url.as_str().into_client_request().unwrap();
        let h = req.headers_mut();
        h.insert(
            "cookie",
            format!("berth_session={session}").parse().unwrap(),
        );
        h.insert("origin", origin.parse().unwrap());
        let got = tokio_tungstenite::connect_async(req).await;
        match (allowed, got) {
            (true, Ok(_)) => {}
            (false, Err(tokio_tungstenite::tungstenite::Error::Http(r))) => {
                assert_eq!(r.status(), StatusCode::FORBIDDEN)
            }
            (a, g) => panic!("origin {origin}: allowed {a}, got {:?}", g.map(|_| ())),
        }
    }
    // The shares of app origins do not apply in path mode.
    let (s, v) = env
        .call(
            axum::http::Method::PUT,
            &format!("/api/workspaces/{id}/shares/8080"),
            Some(&owner),
            Some(json!({ "level": "authenticated" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = http
        .get(url("/x"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn app_origins_hand_the_login_over_and_keep_berths_credentials_out() {
    let (env, addr) = env(true).await;
    let (owner_id, session) = env.session(Role::Member).await;
    let (_, other_session) = env.session(Role::Member).await;
    let (_, admin_session) = env.session(Role::Admin).await;
    let owner_token = env
        .accounts
        .issue_api_token(
            &env.berth
                .core()
                .store()
                .user(owner_id)
                .await
                .unwrap()
                .unwrap(),
            "t",
        )
        .await
        .unwrap()
        .1;
    let ws = workspace(&env, &owner_token, "echo").await;
    let id = ws["id"].as_str().unwrap();
    let short = &id.replace('-', "")[..8];
    let host = format!("w--{short}.localhost:{}", addr.port());
    let app = format!("http://{host}/");
    assert_eq!(ws["appUrl"], app);
    let http = client();
    let get = |url: &str| to_berth(&http, reqwest::Method::GET, addr, url);

    // A browser without an app cookie goes to Berth…
    let r = get(&format!("{app}some/page?x=1"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let handoff = location(&r);
    let back = format!("http://{host}/some/page?x=1");
    let expected = url::Url::parse_with_params(
        &format!("http://{addr}/api/apps/auth"),
        &[("redirect", back.as_str())],
    )
    .unwrap();
    assert_eq!(
        url::Url::parse(&handoff)
            .unwrap()
            .query_pairs()
            .collect::<Vec<_>>(),
        expected.query_pairs().collect::<Vec<_>>()
    );
    // …which, without a session, sends it to the login and back…
    let r = get(&handoff).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).starts_with("/#/login?next=%2Fapi%2Fapps%2Fauth%3Fredirect%3D"));
    // …and with one, to the app's origin with a code…
    let r = get(&handoff)
        .header("cookie", format!("berth_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let exchange = location(&r);
    assert!(
        exchange.starts_with(&format!("http://{host}/__berth/auth?code=")),
        "{exchange}"
    );
    // …exchanged there for a cookie of that origin alone.
    let r = get(&exchange).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/some/page?x=1");
    let cookie = set_cookies(&r).pop().unwrap();
    assert!(cookie.starts_with("berth_app=berthapp_"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.to_ascii_lowercase().contains("domain"),
        "host-only: {cookie}"
    );
    let app_cookie_value = cookie["berth_app=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // A code works once.
    let r = get(&exchange)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("already used or has expired"));
    // An expired code does not work at all.
    {
        use sha2::Digest as _;
        let code = "expired-code-for-the-test";
        let now = berth::domain::now_millis();
        env.berth
            .core()
            .store()
            .insert_app_code(
                &hex::encode(sha2::Sha256::digest(code.as_bytes())),
                owner_id,
                env.accounts.authenticate(&session).await.unwrap().1,
                uuid::Uuid::parse_str(id).unwrap(),
                8080,
                now - 120_000,
                now - 60_000,
            )
            .await
            .unwrap();
        let r = get(&format!("http://{host}/__berth/auth?code={code}&next=/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    // With the cookie, the app; the path untouched, none of Berth's
    // credentials forwarded.
    let with_cookie = |url: &str| {
        get(url).header(
            "cookie",
            format!("berth_app={app_cookie_value}; theme=dark"),
        )
    };
    let v: Value = with_cookie(&format!("{app}some/page?x=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["path"].as_str(), v["query"].as_str()),
        (Some("/some/page"), Some("x=1"))
    );
    assert_eq!(v["headers"]["cookie"], json!(["theme=dark"]));
    assert_eq!(v["headers"]["host"], json!([host]));
    assert!(v["headers"].get("x-forwarded-prefix").is_none());
    // Nothing of Berth's API exists on an app origin: it is the app's path.
    let v: Value = with_cookie(&format!("{app}api/auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["path"], "/api/auth/me");
    // The app cookie does not authenticate Berth's API, as cookie or token.
    for header in [
        ("cookie", format!("berth_app={app_cookie_value}")),
        ("authorization", format!("Bearer {app_cookie_value}")),
    ] {
        let r = http
            .get(format!("http://{addr}/api/auth/me"))
            .header(header.0, header.1)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Berth's session cookie is no credential on an app origin.
    let r = get(&app)
        .header("cookie", format!("berth_session={session}"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(location(&r).contains("/api/apps/auth?redirect="));
    // API clients use their Bearer token there.
    let r = get(&format!("{app}x"))
        .bearer_auth(&owner_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = get(&format!("{app}x")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Cookies the app sets stay on its origin, and never as Berth's.
    let r = with_cookie(&format!(
        "{app}set-cookie{}",
        qs(&[
            ("c", "berth_session=evil; Path=/"),
            ("c", "a=1; Domain=localhost; Path=/"),
        ])
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(set_cookies(&r), ["a=1; Path=/"]);
    // Another origin may not use this app's cookie to change things.
    let r = to_berth(&http, reqwest::Method::POST, addr, &format!("{app}x"))
        .header("cookie", format!("berth_app={app_cookie_value}"))
        .header(
            "origin",
            format!("http://evil--12345678.localhost:{}", addr.port()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = to_berth(&http, reqwest::Method::POST, addr, &format!("{app}x"))
        .header("cookie", format!("berth_app={app_cookie_value}"))
        .header("origin", format!("http://{host}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Path mode's browser navigations go to the app's origin.
    let r = http
        .get(format!("http://{addr}/api/workspaces/{id}/proxy/a?b=1"))
        .bearer_auth(&owner_token)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("http://{host}/a?b=1"));

    // Another member may not open it (not found), until it is shared with
    // everyone logged in; then again not, once the share ends.
    let r = get(&handoff)
        .header("cookie", format!("berth_session={other_session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (s, v) = env
        .call(
            axum::http::Method::PUT,
            &format!("/api/workspaces/{id}/shares/8080"),
            Some(&owner_token),
            Some(json!({ "level": "authenticated" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["url"], app);
    let other_cookie = app_cookie(&http, addr, &app, &other_session).await;
    let r = get(&app)
        .header("cookie", format!("berth_app={other_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Their cookie is for this app only: not another port's origin.
    let r = get(&format!(
        "http://5173--w--{short}.localhost:{}/",
        addr.port()
    ))
    .header("cookie", format!("berth_app={other_cookie}"))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (s, _) = env
        .call(
            axum::http::Method::DELETE,
            &format!("/api/workspaces/{id}/shares/8080"),
            Some(&owner_token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = get(&app)
        .header("cookie", format!("berth_app={other_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Admins may look on app origins (the app cannot act on Berth there).
    let admin_cookie = app_cookie(&http, addr, &app, &admin_session).await;
    let r = get(&app)
        .header("cookie", format!("berth_app={admin_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Logging out of Berth ends the app cookies that came from that login.
    let r = http
        .post(format!("http://{addr}/api/auth/logout"))
        .header("cookie", format!("berth_session={session}"))
        .header("origin", format!("http://{addr}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = with_cookie(&app)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "a logged-out app cookie still works"
    );
    assert!(set_cookies(&r).iter().any(|c| c.starts_with("berth_app=;")));
    let r = with_cookie(&app).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_password_change_ends_app_cookies() {
    let (env, addr) = env(true).await;
    let (owner_id, session) = env.session(Role::Member).await;
    let owner = env
        .berth
        .core()
        .store()
        .user(owner_id)
        .await
        .unwrap()
        .unwrap();
    let token = env.accounts.issue_api_token(&owner, "t").await.unwrap().1;
    let ws = workspace(&env, &token, "echo").await;
    let app = ws["appUrl"].as_str().unwrap().to_string();
    let http = client();
    let cookie = app_cookie(&http, addr, &app, &session).await;
    let open = || {
        to_berth(&http, reqwest::Method::GET, addr, &app)
            .header("cookie", format!("berth_app={cookie}"))
    };
    assert_eq!(open().send().await.unwrap().status(), StatusCode::OK);
    let (s, v) = env
        .post(
            "/api/auth/password",
            &session,
            json!({ "currentPassword": "password123", "newPassword": "a-new-password" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        open().send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn another_port_is_listed_and_reached_through_the_engine_in_both_modes() {
    let (env, addr) = env(true).await;
    let token = env.member().await;
    let other = env.member().await;
    let ws = workspace(&env, &token, "echo").await;
    let id = ws["id"].as_str().unwrap();
    let short = &id.replace('-', "")[..8];

    // Listed: the app's own port and the loopback-only one.
    let (s, v) = env
        .get(&format!("/api/workspaces/{id}/ports"), &token)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ports: Vec<(u64, String, bool)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_u64().unwrap(),
                p["address"].as_str().unwrap().to_string(),
                p["main"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(ports.contains(&(8080, "0.0.0.0".into(), true)), "{v}");
    assert!(ports.contains(&(5173, "127.0.0.1".into(), false)), "{v}");
    let p5173 = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == 5173)
        .unwrap();
    let origin = format!("http://5173--w--{short}.localhost:{}", addr.port());
    assert_eq!(p5173["url"], format!("{origin}/"));
    assert_eq!(p5173["share"], "owner");
    // Another member sees nothing of it.
    let (s, _) = env
        .get(&format!("/api/workspaces/{id}/ports"), &other)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let http = client();
    // Path mode.
    let path = |rest: &str| format!("http://{addr}/api/workspaces/{id}/ports/5173{rest}");
    let v: Value = http
        .get(path("/hello?q=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["listener"], "127.0.0.1:5173");
    assert_eq!(
        (v["path"].as_str(), v["query"].as_str()),
        (Some("/hello"), Some("q=1"))
    );
    let r = http
        .get(path("/hello"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // A body streams through the relay both ways.
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let v: Value = http
        .post(path("/upload"))
        .bearer_auth(&token)
        .body(big)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["bodyBytes"], 1024 * 1024);
    // Its own origin.
    let v: Value = to_berth(
        &http,
        reqwest::Method::GET,
        addr,
        &format!("{origin}/there"),
    )
    .bearer_auth(&token)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v["listener"], "127.0.0.1:5173");
    assert_eq!(v["path"], "/there");
    let r = to_berth(
        &http,
        reqwest::Method::GET,
        addr,
        &format!("{origin}/there"),
    )
    .bearer_auth(&other)
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // WebSockets too (a dev server's live reload).
    let mut req = format!("ws://{addr}/api/workspaces/{id}/ports/5173/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    socket.send(Message::text("over the relay")).await.unwrap();
    let echoed = socket.next().await.unwrap().unwrap();
    assert_eq!(echoed, Message::text("over the relay"));
    socket
        .send(Message::binary(vec![0u8, 255, 7]))
        .await
        .unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8, 255, 7])
    );
    // Nothing listening: a clear 502.
    let r = http
        .get(path("/").replace("5173", "5999"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "port_not_listening");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("5999"),
        "{v}"
    );
}

#[tokio::test]
async fn the_container_knows_its_prefix_and_a_type_can_keep_it() {
    let (env, addr) = env(true).await;
    let token = env.member().await;
    let ws = workspace(&env, &token, "keep").await;
    let id = ws["id"].as_str().unwrap();
    let app = ws["appUrl"].as_str().unwrap().to_string();
    let container = common::docker_inspect("container", &format!("berth-ws-{id}")).unwrap();
    let env_vars: Vec<&str> = container["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let prefix = format!("/api/workspaces/{id}/proxy/");
    assert!(
        env_vars.contains(&format!("BERTH_PROXY_PREFIX={prefix}").as_str()),
        "{env_vars:?}"
    );
    assert!(
        env_vars.contains(&format!("BERTH_APP_URL={app}").as_str()),
        "{env_vars:?}"
    );

    let http = client();
    // Path mode forwards the whole path…
    let v: Value = http
        .get(format!("http://{addr}{prefix}lab/tree?x=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["path"], format!("{prefix}lab/tree"));
    assert!(v["headers"].get("x-forwarded-prefix").is_none());
    // …and on the app origin the prefix is added once.
    for (asked, seen) in [
        ("lab".to_string(), format!("{prefix}lab")),
        (format!("{}lab", &prefix[1..]), format!("{prefix}lab")),
    ] {
        let v: Value = to_berth(&http, reqwest::Method::GET, addr, &format!("{app}{asked}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["path"], seen);
    }
}

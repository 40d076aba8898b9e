//! The workspace proxy against real containers running the `berth-echo`
//! fixture: HTTP round trips with bodies and query strings, streaming,
//! WebSocket echo both ways, credential stripping, wake on access, the
//! starting page, error statuses and ownership.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{echo_type, TestEnv};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

async fn env() -> TestEnv {
    env_with(|_| {}).await
}

async fn env_with(tweak: impl FnOnce(&mut berth::config::Config)) -> TestEnv {
    TestEnv::with(|c| {
        c.types.insert("echo".into(), echo_type());
        // The fixture starts serving only after a few seconds: long enough
        // for a browser navigation to get the starting page.
        let mut slow = echo_type();
        slow.command = vec![
            "sh".into(),
            "-c".into(),
            "sleep 5; exec /bin/berth-echo".into(),
        ];
        // Failures in the start period do not count: it stays "starting".
        if let Some(hc) = slow.health_check.as_mut() {
            hc.start_period_s = 30;
        }
        c.types.insert("slowecho".into(), slow);
        // Exits at once, every time.
        let mut crash = echo_type();
        crash.command = vec!["false".into()];
        crash.health_check = None;
        c.types.insert("crash".into(), crash);
        // Runs, publishes its port, serves nothing.
        let mut deaf = echo_type();
        deaf.command = vec!["sleep".into(), "3600".into()];
        deaf.health_check = None;
        c.types.insert("deaf".into(), deaf);
        c.proxy.activity_interval_s = 1;
        tweak(c);
    })
    .await
}

/// Creates a workspace of `type_name` on a new project; returns its id.
async fn workspace(env: &TestEnv, token: &str, type_name: &str) -> String {
    let pid = env.project(token, "p").await;
    let (s, v) = env
        .post(
            "/api/workspaces",
            token,
            json!({ "name": "w", "type": type_name, "projectId": pid }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["data"]["id"].as_str().unwrap().to_string()
}

async fn start_healthy(env: &TestEnv, token: &str, id: &str) {
    env.start(token, id).await;
    env.wait_for(
        token,
        &format!("/api/workspaces/{id}/health"),
        "healthy",
        30,
        |d| d["status"] == "healthy",
    )
    .await;
}

fn proxy_url(addr: std::net::SocketAddr, id: &str, rest: &str) -> String {
    format!("http://{addr}/api/workspaces/{id}/proxy{rest}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn http_round_trips_through_the_proxy_without_berth_credentials() {
    let env = env().await;
    let token = env.member().await;
    let id = workspace(&env, &token, "echo").await;
    start_healthy(&env, &token, &id).await;
    let addr = env.serve().await;
    let http = client();

    // GET with a query string, Berth's token, Berth's cookie and another
    // cookie that belongs to the workspace's app.
    let resp = http
        .get(proxy_url(addr, &id, "/some/path?x=1&y=a%20b"))
        .bearer_auth(&token)
        .header("cookie", "theme=dark; berth_session=not-for-you")
        .header("x-app", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/some/path");
    assert_eq!(v["query"], "x=1&y=a%20b");
    let h = &v["headers"];
    assert!(h.get("authorization").is_none(), "token leaked: {h}");
    assert_eq!(h["cookie"], json!(["theme=dark"]));
    assert_eq!(h["x-app"], json!(["kept"]));
    assert_eq!(h["host"], json!([addr.to_string()]));
    assert_eq!(h["x-forwarded-host"], json!([addr.to_string()]));
    assert_eq!(h["x-forwarded-for"], json!(["127.0.0.1"]));
    assert_eq!(h["x-forwarded-proto"], json!(["http"]));
    assert_eq!(
        h["x-forwarded-prefix"],
        json!([format!("/api/workspaces/{id}/proxy")])
    );

    // POST a body far larger than the API's JSON limit: it streams through.
    let big = vec![b'x'; 1024 * 1024];
    let v: Value = http
        .post(proxy_url(addr, &id, "/upload?n=1"))
        .bearer_auth(&token)
        .body(big)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["query"], "n=1");
    assert_eq!(v["bodyBytes"], 1024 * 1024);

    // PUT and DELETE.
    let v: Value = http
        .put(proxy_url(addr, &id, "/file.txt"))
        .bearer_auth(&token)
        .body("hello proxy")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["method"].as_str(), v["body"].as_str()),
        (Some("PUT"), Some("hello proxy"))
    );
    let v: Value = http
        .delete(proxy_url(addr, &id, "/file.txt"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["method"], "DELETE");

    // The root of the proxy is the workspace's root.
    let v: Value = http
        .get(proxy_url(addr, &id, "/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["path"], "/");

    // Without the trailing slash: redirected to it, query kept.
    let resp = http
        .get(proxy_url(addr, &id, "?a=b"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        resp.headers()["location"],
        format!("/api/workspaces/{id}/proxy/?a=b").as_str()
    );

    // A redirect to an absolute path stays under the proxy.
    let resp = http
        .get(proxy_url(addr, &id, "/redirect"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(
        resp.headers()["location"],
        format!("/api/workspaces/{id}/proxy/target").as_str()
    );
}

#[tokio::test]
async fn response_bodies_stream_without_buffering() {
    let env = env().await;
    let token = env.member().await;
    let id = workspace(&env, &token, "echo").await;
    start_healthy(&env, &token, &id).await;
    let addr = env.serve().await;

    // The second chunk comes 60 s after the first: a proxy that buffered the
    // body would deliver nothing before then.
    let resp = client()
        .get(proxy_url(addr, &id, "/stream?chunks=2&delay_ms=60000"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut resp = resp;
    let first = tokio::time::timeout(Duration::from_secs(20), resp.chunk())
        .await
        .expect("the first chunk must arrive before the upstream finishes")
        .unwrap()
        .expect("a chunk");
    assert_eq!(&first[..], b"chunk 0\n");
}

#[tokio::test]
async fn websocket_frames_cross_the_proxy_both_ways() {
    let env = env().await;
    let token = env.member().await;
    let id = workspace(&env, &token, "echo").await;
    start_healthy(&env, &token, &id).await;
    let addr = env.serve().await;

    let url = format!("ws://{addr}/api/workspaces/{id}/proxy/ws");
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);

    ws.send(Message::text("hello through berth")).await.unwrap();
    let back = ws.next().await.unwrap().unwrap();
    assert_eq!(back, Message::text("hello through berth"));
    let bytes = vec![0u8, 1, 2, 254, 255];
    ws.send(Message::binary(bytes.clone())).await.unwrap();
    let back = ws.next().await.unwrap().unwrap();
    assert_eq!(back, Message::binary(bytes));
    // Many frames in flight at once come back in order.
    for i in 0..50 {
        ws.send(Message::text(format!("frame {i}"))).await.unwrap();
    }
    for i in 0..50 {
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back, Message::text(format!("frame {i}")));
    }
    ws.close(None).await.unwrap();

    // A browser authenticates the socket with its session cookie (and, as
    // browsers do on every WebSocket handshake, says where the page is from).
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("cookie", format!("berth_session={token}").parse().unwrap());
    let origin = format!(
        "http://{}",
        url.trim_start_matches("ws://").split('/').next().unwrap()
    );
    req.headers_mut().insert("origin", origin.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text("cookie")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("cookie"));
}

#[tokio::test]
async fn a_stopped_workspace_is_woken_by_a_proxy_request() {
    let env = env().await;
    let token = env.member().await;
    let id = workspace(&env, &token, "echo").await;

    let (s, v) = env
        .get(&format!("/api/workspaces/{id}/proxy/woken?yes=1"), &token)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["path"], "/woken");
    assert_eq!(v["query"], "yes=1");
    let (_, st) = env
        .get(&format!("/api/workspaces/{id}/status"), &token)
        .await;
    assert_eq!(st["data"]["status"], "running", "{st}");
    let (_, h) = env
        .get(&format!("/api/workspaces/{id}/health"), &token)
        .await;
    assert_eq!(h["data"]["status"], "healthy", "{h}");
}

#[tokio::test]
async fn a_slow_wake_gives_browsers_a_starting_page_and_clients_a_504() {
    let env = env_with(|c| c.proxy.wake_timeout_s = 2).await;
    let token = env.member().await;
    let id = workspace(&env, &token, "slowecho").await;

    // A browser navigation: the page that reloads itself.
    let req = Request::get(format!("/api/workspaces/{id}/proxy/"))
        .header("authorization", format!("Bearer {token}"))
        .header("sec-fetch-mode", "navigate")
        .header("accept", "text/html")
        .body(Body::empty())
        .unwrap();
    let (s, headers, body) = env.send_raw(req).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "2");
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains("Starting your workspace"), "{page}");
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");

    // An API client waits wake_timeout_s (2 s here), then gets a 504 that
    // says the workspace is still starting.
    let (s, v) = env
        .get(&format!("/api/workspaces/{id}/proxy/api"), &token)
        .await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{v}");
    assert_eq!(v["error"]["code"], "workspace_starting");

    // Once it is up, the same request goes through.
    env.wait_for(
        &token,
        &format!("/api/workspaces/{id}/health"),
        "healthy",
        30,
        |d| d["status"] == "healthy",
    )
    .await;
    let (s, v) = env
        .get(&format!("/api/workspaces/{id}/proxy/api"), &token)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["path"], "/api");
}

#[tokio::test]
async fn unreachable_slow_and_broken_workspaces_get_clear_errors() {
    let env = env_with(|c| c.proxy.response_timeout_s = 2).await;
    let token = env.member().await;

    // Nothing listens behind the published port: 502.
    let deaf = workspace(&env, &token, "deaf").await;
    env.start(&token, &deaf).await;
    let (s, v) = env
        .get(&format!("/api/workspaces/{deaf}/proxy/"), &token)
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("workspace"),
        "{v}"
    );

    // The workspace answers too slowly: 504.
    let echo = workspace(&env, &token, "echo").await;
    start_healthy(&env, &token, &echo).await;
    let (s, v) = env
        .get(
            &format!("/api/workspaces/{echo}/proxy/slow?ms=6000"),
            &token,
        )
        .await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{v}");
    assert_eq!(v["error"]["code"], "upstream_timeout");

    // No project, so it cannot be started: 503 that says why.
    let (s, v) = env
        .post(
            "/api/workspaces",
            &token,
            json!({ "name": "np", "type": "echo" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let homeless = v["data"]["id"].as_str().unwrap().to_string();
    let (s, v) = env
        .get(&format!("/api/workspaces/{homeless}/proxy/"), &token)
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "workspace_unavailable");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("cannot be started") && msg.contains("no project"),
        "{v}"
    );

    // It exits as soon as it starts: recovery gives up and the workspace is
    // in error, which the proxy reports with the reason.
    let crash = workspace(&env, &token, "crash").await;
    let (s, v) = env
        .get(&format!("/api/workspaces/{crash}/proxy/"), &token)
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    env.wait_status(&token, &crash, "error", |d| d["status"] == "error")
        .await;
    let (s, v) = env
        .get(&format!("/api/workspaces/{crash}/proxy/"), &token)
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("in error") && msg.contains("restart budget"),
        "{v}"
    );
}

#[tokio::test]
async fn only_the_owner_reaches_a_workspace_through_the_proxy() {
    let env = env().await;
    let a = env.member().await;
    let b = env.member().await;
    let id = workspace(&env, &a, "echo").await;
    start_healthy(&env, &a, &id).await;

    let (s, v) = env.get(&format!("/api/workspaces/{id}/proxy/"), &b).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = env
        .call(
            Method::GET,
            &format!("/api/workspaces/{id}/proxy/"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, _) = env.get(&format!("/api/workspaces/{id}/proxy/"), &a).await;
    assert_eq!(s, StatusCode::OK);

    // A browser's page load without a session (a link from another site,
    // where the SameSite=Strict cookie stays home) goes to the UI's login,
    // which comes back to the exact path and query afterwards.
    let req = Request::get(format!("/api/workspaces/{id}/proxy/a/b?x=1&y=2"))
        .header("sec-fetch-mode", "navigate")
        .header("accept", "text/html")
        .body(Body::empty())
        .unwrap();
    let (s, h, _) = env.send_raw(req).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(
        h["location"],
        format!("/#/login?next=%2Fapi%2Fworkspaces%2F{id}%2Fproxy%2Fa%2Fb%3Fx%3D1%26y%3D2")
    );
    // A script's request still gets the 401 it can act on.
    let req = Request::get(format!("/api/workspaces/{id}/proxy/"))
        .header("sec-fetch-mode", "cors")
        .body(Body::empty())
        .unwrap();
    let (s, _, _) = env.send_raw(req).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn proxy_traffic_counts_as_activity() {
    let env = env().await;
    let token = env.member().await;
    let id = workspace(&env, &token, "echo").await;
    start_healthy(&env, &token, &id).await;
    let activity = |v: &Value| v["lastActivityAt"].as_str().unwrap_or_default().to_string();
    let (_, v) = env.get(&format!("/api/workspaces/{id}"), &token).await;
    let before = activity(&v["data"]);
    assert!(!before.is_empty(), "start records activity: {v}");

    // activity_interval_s is 1 here; wait past it, use the proxy.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (s, _) = env
        .get(&format!("/api/workspaces/{id}/proxy/"), &token)
        .await;
    assert_eq!(s, StatusCode::OK);
    env.wait_for(
        &token,
        &format!("/api/workspaces/{id}"),
        "activity bump",
        10,
        |d| activity(d) > before,
    )
    .await;
}

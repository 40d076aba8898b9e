//! The API's contract without starting containers: authentication,
//! ownership (another member's resource is a 404), the response envelope,
//! and a clear 4xx for every kind of bad input.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use berth::domain::Role;
use common::{docker_inspect, TestEnv, MISSING_TYPE};
use serde_json::json;

fn assert_error(status: StatusCode, v: &serde_json::Value, want: StatusCode, needle: &str) {
    assert_eq!(status, want, "{v}");
    assert_eq!(v["success"], false, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(v["error"]["code"].is_string(), "{v}");
    assert!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "message {msg:?} should mention {needle:?}"
    );
}

#[tokio::test]
async fn login_gives_a_token_and_a_strict_httponly_cookie_that_both_authenticate() {
    let env = TestEnv::new().await;
    let (_, _) = env.user(Role::Member).await;
    let email = format!("{}@test.example", uuid::Uuid::new_v4().simple());
    env.accounts
        .add_user(berth::service::NewUser {
            email: email.clone(),
            password: "s3cret-pass".into(),
            role: Role::Member,
        })
        .await
        .unwrap();

    let req = Request::post("/api/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({ "email": email, "password": "s3cret-pass" }).to_string(),
        ))
        .unwrap();
    let (status, headers, body) = env.send_raw(req).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let token = v["data"]["accessToken"].as_str().unwrap().to_string();
    assert_eq!(v["data"]["user"]["email"], email.as_str());
    let cookie = headers["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(
        cookie.starts_with(&format!("berth_session={token};")),
        "{cookie}"
    );

    // Bearer token.
    let (s, me) = env.get("/api/auth/me", &token).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["data"]["email"], email.as_str());
    assert_eq!(me["data"]["role"], "member");

    // Cookie alone.
    let req = Request::get("/api/auth/me")
        .header("cookie", format!("other=1; berth_session={token}"))
        .body(Body::empty())
        .unwrap();
    let (s, me) = env.send(req).await;
    assert_eq!(s, StatusCode::OK, "{me}");

    // Logout revokes the token and clears the cookie.
    let (s, _) = env
        .call(Method::POST, "/api/auth/logout", Some(&token), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = env.get("/api/auth/me", &token).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "token");
}

#[tokio::test]
async fn wrong_password_unknown_user_and_bad_tokens_are_401() {
    let env = TestEnv::new().await;
    let email = format!("{}@test.example", uuid::Uuid::new_v4().simple());
    env.accounts
        .add_user(berth::service::NewUser {
            email: email.clone(),
            password: "right-password".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    for (e, p) in [
        (email.as_str(), "wrong-password"),
        ("nobody@x.io", "whatever1"),
    ] {
        let (s, v) = env
            .call(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({ "email": e, "password": p })),
            )
            .await;
        assert_error(s, &v, StatusCode::UNAUTHORIZED, "invalid email or password");
    }
    let (s, v) = env.call(Method::GET, "/api/projects", None, None).await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "authentication required");
    let (s, v) = env.get("/api/projects", "berth_not-a-real-token").await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "invalid");
    let (s, v) = env.get("/api/projects", "garbage").await;
    assert_error(s, &v, StatusCode::UNAUTHORIZED, "invalid");
}

#[tokio::test]
async fn projects_create_a_labelled_volume_and_delete_keeps_it_unless_purged() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let (s, v) = env
        .post(
            "/api/projects",
            &t,
            json!({ "name": " My project ", "description": "d", "workspaceType": "box" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let p = &v["data"];
    assert_eq!(p["name"], "My project");
    assert_eq!(p["workspaceType"], "box");
    let id = p["id"].as_str().unwrap();
    let vol = format!("berth-project-{id}");
    assert_eq!(p["volumeName"], vol.as_str());
    let inspected = docker_inspect("volume", &vol).expect("volume exists");
    assert_eq!(inspected["Labels"]["berth.managed"], "true");
    assert_eq!(inspected["Labels"]["berth.project.id"], id);

    let (s, list) = env.get("/api/projects", &t).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (s, got) = env.get(&format!("/api/projects/{id}"), &t).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["data"]["id"], id);

    // Delete without purge: gone from the API, volume kept.
    let (s, _) = env
        .call(
            Method::DELETE,
            &format!("/api/projects/{id}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = env.get(&format!("/api/projects/{id}"), &t).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        docker_inspect("volume", &vol).is_some(),
        "volume must be kept"
    );

    // Purge removes the volume.
    let id2 = env.project(&t, "two").await;
    let vol2 = format!("berth-project-{id2}");
    let (s, v) = env
        .call(
            Method::DELETE,
            &format!("/api/projects/{id2}?purge=true"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        docker_inspect("volume", &vol2).is_none(),
        "volume must be gone"
    );
}

#[tokio::test]
async fn members_cannot_see_or_touch_each_others_resources() {
    let env = TestEnv::new().await;
    let a = env.member().await;
    let b = env.member().await;
    let (ws, pid) = env.workspace(&a).await;

    for path in [
        format!("/api/projects/{pid}"),
        format!("/api/workspaces/{ws}"),
        format!("/api/workspaces/{ws}/status"),
        format!("/api/workspaces/{ws}/projects"),
        format!("/api/workspaces/{ws}/compatible-projects"),
    ] {
        let (s, v) = env.get(&path, &b).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    for path in ["start", "stop", "restart", "set-default"] {
        let (s, v) = env
            .call(
                Method::POST,
                &format!("/api/workspaces/{ws}/{path}"),
                Some(&b),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    let (s, _) = env
        .call(
            Method::PUT,
            &format!("/api/workspaces/{ws}"),
            Some(&b),
            Some(json!({ "name": "mine now" })),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = env
        .call(
            Method::DELETE,
            &format!("/api/workspaces/{ws}"),
            Some(&b),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = env
        .call(
            Method::DELETE,
            &format!("/api/projects/{pid}?purge=true"),
            Some(&b),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // B cannot mount, assign or create on A's project either.
    let (bws, _) = env.workspace(&b).await;
    for op in ["switch-project", "assign-project"] {
        let (s, v) = env
            .post(
                &format!("/api/workspaces/{bws}/{op}"),
                &b,
                json!({ "projectId": pid }),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{op}: {v}");
    }
    let (s, _) = env
        .post(
            "/api/workspaces",
            &b,
            json!({ "name": "x", "type": "box", "projectId": pid }),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Lists hold only one's own.
    let (_, list) = env.get("/api/workspaces", &b).await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![bws.as_str()]);
    let (_, list) = env.get("/api/projects", &b).await;
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["id"] != pid.as_str()));

    // A still has everything; an admin sees both.
    let (s, _) = env.get(&format!("/api/workspaces/{ws}"), &a).await;
    assert_eq!(s, StatusCode::OK);
    let (_, admin) = env.user(Role::Admin).await;
    let (s, _) = env.get(&format!("/api/workspaces/{ws}"), &admin).await;
    assert_eq!(s, StatusCode::OK);
    let (_, all) = env.get("/api/workspaces", &admin).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_never_a_500() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let pid = env.project(&t, "p").await;
    let ws = |body: serde_json::Value| body;
    let cases: Vec<(serde_json::Value, StatusCode, &str)> = vec![
        (
            ws(json!({"name":"w","type":"nope"})),
            StatusCode::BAD_REQUEST,
            "unknown workspace type",
        ),
        (
            ws(json!({"name":"w","type":"box","resourceLimits":{"cpus":-1}})),
            StatusCode::BAD_REQUEST,
            "cpus",
        ),
        (
            ws(json!({"name":"w","type":"box","resourceLimits":{"cpus":0}})),
            StatusCode::BAD_REQUEST,
            "cpus",
        ),
        (
            ws(json!({"name":"w","type":"box","resourceLimits":{"cpus":1000}})),
            StatusCode::BAD_REQUEST,
            "exceeds the host",
        ),
        (
            ws(json!({"name":"w","type":"box","resourceLimits":{"memory":-5}})),
            StatusCode::BAD_REQUEST,
            "memory",
        ),
        (
            ws(json!({"name":"w","type":"box","resourceLimits":{"memory":2}})),
            StatusCode::BAD_REQUEST,
            "at least 6",
        ),
        (
            ws(
                json!({"name":"w","type":"box","resourceLimits":{"memory":64,"memoryReservation":128}}),
            ),
            StatusCode::BAD_REQUEST,
            "memoryReservation",
        ),
        (
            ws(json!({"name":"w","type":"box","resourceLimits":{"memory":256,"memorySwap":128}})),
            StatusCode::BAD_REQUEST,
            "memorySwap",
        ),
        (
            ws(json!({"name":"w","type":"box","resourceLimits":{"bogus":1}})),
            StatusCode::BAD_REQUEST,
            "bogus",
        ),
        (
            ws(json!({"name":"w","type":"box","projectId":"not-a-uuid"})),
            StatusCode::BAD_REQUEST,
            "projectId",
        ),
        (
            ws(json!({"name":"w","type":"box","projectId":uuid::Uuid::new_v4()})),
            StatusCode::NOT_FOUND,
            "project",
        ),
        (
            ws(json!({"name":"","type":"box"})),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (ws(json!({"type":"box"})), StatusCode::BAD_REQUEST, "name"),
        (
            ws(json!({"name":"w","type":"box","status":"running"})),
            StatusCode::BAD_REQUEST,
            "status",
        ),
        (
            ws(json!({"name":"w","type":MISSING_TYPE,"projectId":pid})),
            StatusCode::CONFLICT,
            "not present",
        ),
        (
            ws(json!({"name":5,"type":"box"})),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            ws(json!([1, 2])),
            StatusCode::BAD_REQUEST,
            "invalid request body",
        ),
        // serde would take an array field by field; Berth does not.
        (
            ws(json!({"name":"w","type":"box","resourceLimits":[2, 512]})),
            StatusCode::BAD_REQUEST,
            "resourceLimits must be an object with named fields",
        ),
    ];
    for (body, want, needle) in cases {
        let (s, v) = env.post("/api/workspaces", &t, body.clone()).await;
        assert_error(s, &v, want, needle);
        assert!(s.is_client_error(), "{body}: {s}");
    }

    // An array for a whole body is refused where a struct is read, also for
    // the optional body of a backup.
    let (wid, _) = env.workspace(&t).await;
    let (s, v) = env
        .call(
            Method::PATCH,
            &format!("/api/workspaces/{wid}/resources"),
            Some(&t),
            Some(json!([2, 512])),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "body must be an object");
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/backup"),
            &t,
            json!([null, null]),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "body must be an object");

    // Malformed JSON, wrong content type, oversized body.
    let raw = |ct: Option<&str>, body: String| {
        let mut r = Request::post("/api/workspaces").header("authorization", format!("Bearer {t}"));
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r.body(Body::from(body)).unwrap()
    };
    let (s, v) = env
        .send(raw(Some("application/json"), "{\"name\": ".into()))
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "malformed JSON");
    let (s, v) = env.send(raw(Some("text/plain"), "{}".into())).await;
    assert_error(
        s,
        &v,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "application/json",
    );
    let (s, v) = env.send(raw(None, "{}".into())).await;
    assert_error(
        s,
        &v,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "application/json",
    );
    let huge = json!({ "name": "x".repeat(200 * 1024), "type": "box" }).to_string();
    let (s, v) = env.send(raw(Some("application/json"), huge)).await;
    assert_error(s, &v, StatusCode::PAYLOAD_TOO_LARGE, "too large");

    // Malformed ids in paths, unknown routes and methods, bad queries.
    for path in [
        "/api/workspaces/123",
        "/api/projects/zzz",
        "/api/workspaces/x/status",
    ] {
        let (s, v) = env.get(path, &t).await;
        assert_error(s, &v, StatusCode::BAD_REQUEST, "expected a UUID");
    }
    let (s, v) = env.get("/api/nothing-here", &t).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "no such endpoint");
    let (s, v) = env
        .call(Method::PATCH, "/api/projects", Some(&t), None)
        .await;
    assert_error(s, &v, StatusCode::METHOD_NOT_ALLOWED, "method");
    let (s, v) = env
        .call(
            Method::DELETE,
            &format!("/api/projects/{pid}?purge=maybe"),
            Some(&t),
            None,
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "query");
    let (s, v) = env.get("/api/workspaces/type/nope", &t).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "unknown workspace type");

    // Projects and updates validate too.
    let (s, v) = env.post("/api/projects", &t, json!({ "name": "  " })).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "name");
    let (s, v) = env
        .post(
            "/api/projects",
            &t,
            json!({ "name": "p", "workspaceType": "nope" }),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "unknown workspace type");
    let (wsid, _) = env.workspace(&t).await;
    let (s, v) = env
        .call(
            Method::PUT,
            &format!("/api/workspaces/{wsid}"),
            Some(&t),
            Some(json!({ "status": "running" })),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "status");
    let (s, v) = env
        .post(
            &format!("/api/workspaces/{wsid}/switch-project"),
            &t,
            json!({}),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "projectId");
    // A project for another type is refused.
    let (_, other) = env
        .post(
            "/api/projects",
            &t,
            json!({ "name": "o", "workspaceType": "other" }),
        )
        .await;
    let other = other["data"]["id"].as_str().unwrap();
    let (s, v) = env
        .post(
            &format!("/api/workspaces/{wsid}/switch-project"),
            &t,
            json!({ "projectId": other }),
        )
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "workspace type");
}

#[tokio::test]
async fn phase_one_records_types_stats_default_and_updates() {
    let env = TestEnv::new().await;
    let t = env.member().await;

    let (s, v) = env.get("/api/workspaces/types", &t).await;
    assert_eq!(s, StatusCode::OK);
    let types = v["data"].as_array().unwrap();
    let find = |n: &str| types.iter().find(|x| x["type"] == n).unwrap().clone();
    assert_eq!(find("box")["available"], true);
    assert_eq!(find("box")["resourceLimits"]["memory"], 64);
    assert_eq!(find(MISSING_TYPE)["available"], false);
    assert!(find(MISSING_TYPE)["unavailableReason"]
        .as_str()
        .unwrap()
        .contains("not present"));
    assert_eq!(find("vscode")["port"], 8080);
    assert_eq!(find("spreadsheet")["available"], false);

    let (first, pid) = env.workspace(&t).await;
    let (_, v) = env.get(&format!("/api/workspaces/{first}"), &t).await;
    assert_eq!(
        v["data"]["isDefault"], true,
        "first workspace becomes default"
    );
    assert_eq!(v["data"]["status"], "stopped");
    assert_eq!(v["data"]["currentProjectId"], pid.as_str());
    assert_eq!(v["data"]["config"]["resourceLimits"]["cpus"], 0.5);

    let (s, v) = env
        .post(
            "/api/workspaces",
            &t,
            json!({ "name": "second", "type": "other", "resourceLimits": { "memory": 96 } }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let second = v["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["data"]["isDefault"], false);
    assert_eq!(v["data"]["config"]["resourceLimits"]["memory"], 96);
    assert_eq!(v["data"]["config"]["resourceLimits"]["memorySwap"], 128);

    // Default first, then newest.
    let (_, list) = env.get("/api/workspaces", &t).await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![first.as_str(), second.as_str()]);

    let (s, v) = env
        .call(
            Method::POST,
            &format!("/api/workspaces/{second}/set-default"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, list) = env.get("/api/workspaces", &t).await;
    let flags: Vec<(String, bool)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["id"].as_str().unwrap().to_string(),
                w["isDefault"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(flags, vec![(second.clone(), true), (first.clone(), false)]);

    let (_, st) = env.get("/api/workspaces/stats", &t).await;
    assert_eq!(st["data"]["total"], 2);
    assert_eq!(st["data"]["byType"]["box"], 1);
    assert_eq!(st["data"]["byType"]["other"], 1);
    assert_eq!(st["data"]["byStatus"]["stopped"], 2);
    assert_eq!(st["data"]["defaultWorkspace"]["id"], second.as_str());

    let (_, bt) = env.get("/api/workspaces/type/other", &t).await;
    assert_eq!(bt["data"].as_array().unwrap().len(), 1);

    // Update name/description; archive and unarchive.
    let (s, v) = env
        .call(
            Method::PUT,
            &format!("/api/workspaces/{first}"),
            Some(&t),
            Some(json!({ "name": "renamed", "description": "desc", "archived": true })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["name"], "renamed");
    assert_eq!(v["data"]["status"], "archived");
    let (s, v) = env
        .call(
            Method::POST,
            &format!("/api/workspaces/{first}/start"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (_, v) = env
        .call(
            Method::PUT,
            &format!("/api/workspaces/{first}"),
            Some(&t),
            Some(json!({ "archived": false })),
        )
        .await;
    assert_eq!(v["data"]["status"], "stopped");

    // Projects of a workspace, compatible projects, assignment.
    let typed = env
        .post(
            "/api/projects",
            &t,
            json!({ "name": "for-other", "workspaceType": "other" }),
        )
        .await
        .1["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, compat) = env
        .get(&format!("/api/workspaces/{first}/compatible-projects"), &t)
        .await;
    let compat: Vec<&str> = compat["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(compat.contains(&pid.as_str()));
    assert!(
        !compat.contains(&typed.as_str()),
        "a project typed for another type is not compatible"
    );
    let loose = env.project(&t, "loose").await;
    let (s, v) = env
        .post(
            &format!("/api/workspaces/{first}/assign-project"),
            &t,
            json!({ "projectId": loose }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["workspaceId"], first.as_str());
    assert_eq!(v["data"]["workspaceType"], "box");
    let (_, projs) = env
        .get(&format!("/api/workspaces/{first}/projects"), &t)
        .await;
    let mut got: Vec<String> = projs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut want = vec![pid.clone(), loose.clone()];
    want.sort();
    assert_eq!(got, want);

    // Deleting the default promotes another.
    let (s, _) = env
        .call(
            Method::DELETE,
            &format!("/api/workspaces/{second}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = env.get(&format!("/api/workspaces/{first}"), &t).await;
    assert_eq!(v["data"]["isDefault"], true);
}

#[tokio::test]
async fn healthz_answers_without_auth() {
    let env = TestEnv::new().await;
    let (s, v) = env.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"]["status"], "ok");
}

#[tokio::test]
async fn the_web_ui_is_served_with_a_strict_content_security_policy() {
    let env = TestEnv::new().await;
    let (s, h, body) = env
        .send_raw(Request::get("/").body(Body::empty()).unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains(r#"<script src="/ui/app.js""#), "{page}");
    // No inline script or handler the policy would block.
    assert!(
        !page.contains("<script>") && !page.contains("onclick"),
        "{page}"
    );
    for (path, ct) in [
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let (s, h, body) = env
            .send_raw(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(h["content-type"], ct, "{path}");
        assert!(!body.is_empty(), "{path}");
    }
}

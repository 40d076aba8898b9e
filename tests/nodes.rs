//! Nodes through the API, against real engines: the local node with the
//! engine's own capacity and what running workspaces reserve; a node
//! behind a unix socket that stops and starts answering (a forwarder to
//! this machine's engine, so a real engine is behind it); cordon, labels,
//! removal and the checks on what an admin gives. Under `scripts/with-nodes`
//! (which `scripts/test` runs as root), engines in network namespaces over
//! TCP and TLS.

mod common;

use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use berth::domain::placement::Demand;
use berth::domain::Role;
use common::TestEnv;
use serde_json::{json, Value};

fn assert_error(status: StatusCode, v: &Value, want: StatusCode, needle: &str) {
    assert_eq!(status, want, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "message {msg:?} should mention {needle:?}"
    );
}

async fn nodes(env: &TestEnv, admin: &str) -> Vec<Value> {
    let (s, v) = env.get("/api/nodes", admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"].as_array().unwrap().clone()
}

async fn node(env: &TestEnv, admin: &str, name: &str) -> Value {
    let (s, v) = env.get(&format!("/api/nodes/{name}"), admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"].clone()
}

async fn patch(env: &TestEnv, admin: &str, name: &str, body: Value) -> (StatusCode, Value) {
    env.call(
        Method::PATCH,
        &format!("/api/nodes/{name}"),
        Some(admin),
        Some(body),
    )
    .await
}

async fn metrics(env: &TestEnv) -> String {
    let r = Request::get("/metrics")
        .header(
            "authorization",
            format!("Bearer {}", env.berth.core().metrics_token()),
        )
        .body(Body::empty())
        .unwrap();
    let (s, _, body) = env.send_raw(r).await;
    assert_eq!(s, StatusCode::OK);
    String::from_utf8(body).unwrap()
}

fn docker_info(field: &str) -> i64 {
    common::docker(&["info", "--format", &format!("{{{{.{field}}}}}")])
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_node_has_the_engines_capacity_and_what_running_workspaces_reserve() {
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    env.berth.core().nodes().beat().await.unwrap();
    let list = nodes(&env, &admin).await;
    let local = &list[0];
    assert_eq!(local["name"], "local", "{list:?}");
    assert_eq!(local["state"], "ready", "{local}");
    assert_eq!(local["endpoint"], "default");
    assert_eq!(local["address"], "127.0.0.1");
    assert_eq!(local["capacity"]["cpus"], docker_info("NCPU") as f64);
    assert_eq!(
        local["capacity"]["memoryMb"],
        docker_info("MemTotal") / (1024 * 1024)
    );
    assert!(local["engine"]["apiVersion"]
        .as_str()
        .unwrap()
        .starts_with("1."));
    assert!(local["lastSeen"].is_string() && local["unreachableSince"].is_null());

    // A running workspace reserves its type's demand on its project's node.
    let (ws, pid) = env.workspace(&admin).await;
    let (_, p) = env.get(&format!("/api/projects/{pid}"), &admin).await;
    assert_eq!(p["data"]["node"], "local", "{p}");
    let before = node(&env, &admin, "local").await;
    env.start(&admin, &ws).await;
    let after = node(&env, &admin, "local").await;
    let want = Demand::of(&env.berth.core().config().types["box"].resources);
    let mb = |v: &Value| v["allocated"]["memoryMb"].as_u64().unwrap();
    let cpus = |v: &Value| v["allocated"]["cpus"].as_f64().unwrap();
    assert_eq!(mb(&after) - mb(&before), want.memory_mb, "{after}");
    assert!(
        (cpus(&after) - cpus(&before) - want.cpus).abs() < 1e-6,
        "{after}"
    );
    assert_eq!(
        after["runningWorkspaces"].as_u64().unwrap(),
        before["runningWorkspaces"].as_u64().unwrap() + 1
    );
    assert!(after["projects"].as_i64().unwrap() >= 1);

    let m = metrics(&env).await;
    assert!(m.contains("berth_node_up{node=\"local\"} 1"), "{m}");
    assert!(
        m.contains("berth_node_schedulable{node=\"local\"} 1"),
        "{m}"
    );
    assert!(m.contains("berth_node_cpus{node=\"local\"}"), "{m}");
    assert!(
        m.contains("berth_node_allocated_memory_bytes{node=\"local\"}"),
        "{m}"
    );
}

/// A type reserving `reserve_pct` % of this host's memory (as the local
/// node reports it), with a memory limit of `limit_pct` %.
fn share_of_host(reserve_pct: u64, limit_pct: u64) -> berth::domain::WorkspaceType {
    let total_mb = (docker_info("MemTotal") / (1024 * 1024)) as u64;
    let mut t = common::box_type();
    t.resources.memory_mb = total_mb * limit_pct / 100;
    t.resources.memory_swap_mb = None;
    t.resources.memory_reservation_mb = Some(total_mb * reserve_pct / 100);
    t.resources.cpus = 0.1;
    t
}

/// `berth_capacity_refusals_total` of the local node, as scraped.
async fn refusals(env: &TestEnv) -> f64 {
    metrics(env)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("berth_capacity_refusals_total{node=\"local\"} "))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// A project and a workspace of `type_name` on it: (workspace, project).
async fn big_workspace(env: &TestEnv, admin: &str, type_name: &str, i: usize) -> (String, String) {
    let (s, v) = env
        .post(
            "/api/projects",
            admin,
            json!({ "name": format!("{type_name}{i}") }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let pid = v["data"]["id"].as_str().unwrap().to_string();
    let (s, v) = env
        .post(
            "/api/workspaces",
            admin,
            json!({ "name": format!("w{i}"), "type": type_name, "projectId": pid }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (v["data"]["id"].as_str().unwrap().to_string(), pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_starts_against_room_for_one_start_one() {
    // 60 % of the host each: the local node has room for one (issue 28).
    let env = TestEnv::with(|c| {
        c.types.insert("big".into(), share_of_host(60, 60));
    })
    .await;
    let (_, admin) = env.user(Role::Admin).await;
    env.berth.core().nodes().beat().await.unwrap();
    let mut made = Vec::new();
    for i in 0..10 {
        made.push(big_workspace(&env, &admin, "big", i).await);
    }
    let refused_before = refusals(&env).await;
    // Each start on a task of its own, so that they run at once on the
    // runtime's threads (one task would take them turn by turn).
    let starts: Vec<_> = made
        .iter()
        .map(|(id, _)| {
            let router = env.router.clone();
            let req = Request::builder()
                .method(Method::POST)
                .uri(format!("/api/workspaces/{id}/start"))
                .header("authorization", format!("Bearer {admin}"))
                .body(Body::empty())
                .unwrap();
            tokio::spawn(async move {
                use tower::ServiceExt;
                let resp = router.oneshot(req).await.unwrap();
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .unwrap();
                (status, serde_json::from_slice::<Value>(&body).unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for s in starts {
        answers.push(s.await.unwrap());
    }
    let started = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!(started, 1, "one start takes the room: {statuses:?}");
    let need = env.berth.core().config().types["big"]
        .resources
        .memory_reservation_mb
        .unwrap();
    for (s, v) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_error(
            *s,
            v,
            StatusCode::CONFLICT,
            "node local has no room for this workspace",
        );
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            m.contains(&format!("needs {need} MB")) && m.contains("Stop a workspace on local"),
            "{m}"
        );
    }
    // What the node holds never passed its capacity.
    let n = node(&env, &admin, "local").await;
    assert_eq!(n["allocated"]["memoryMb"], need, "{n}");
    assert!(n["allocated"]["memoryMb"].as_u64() <= n["capacity"]["memoryMb"].as_u64());
    // The process's metrics are shared by the tests that run beside it.
    assert!(refusals(&env).await - refused_before >= 9.0);
    for (id, pid) in &made {
        remove_workspace(&env, &admin, id).await;
        env.call(
            Method::DELETE,
            &format!("/api/projects/{pid}?purge=true"),
            Some(&admin),
            None,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_resize_that_would_overcommit_its_node_is_refused() {
    let env = TestEnv::with(|c| {
        c.types.insert("grow".into(), share_of_host(10, 80));
        c.types.insert("half".into(), share_of_host(45, 45));
    })
    .await;
    let (_, admin) = env.user(Role::Admin).await;
    env.berth.core().nodes().beat().await.unwrap();
    let (a, pa) = big_workspace(&env, &admin, "grow", 0).await;
    let (b, pb) = big_workspace(&env, &admin, "half", 1).await;
    env.start(&admin, &a).await;
    env.start(&admin, &b).await;
    let total_mb = (docker_info("MemTotal") / (1024 * 1024)) as u64;
    // 10 % + 45 % held: growing a to 70 % needs 60 % more of the 45 % free.
    let (s, v) = env
        .call(
            Method::PATCH,
            &format!("/api/workspaces/{a}/resources"),
            Some(&admin),
            Some(json!({ "memoryReservation": total_mb * 70 / 100 })),
        )
        .await;
    assert_error(s, &v, StatusCode::CONFLICT, "node local has no room");
    let (_, w) = env.get(&format!("/api/workspaces/{a}"), &admin).await;
    let grow = &env.berth.core().config().types["grow"].resources;
    assert_eq!(
        w["data"]["config"]["resourceLimits"]["memoryReservation"],
        grow.memory_reservation_mb.unwrap(),
        "a refused resize changes nothing: {w}"
    );
    // Growing by what is free is fine.
    let (s, v) = env
        .call(
            Method::PATCH,
            &format!("/api/workspaces/{a}/resources"),
            Some(&admin),
            Some(json!({ "memoryReservation": total_mb * 40 / 100 })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for (id, pid) in [(&a, &pa), (&b, &pb)] {
        remove_workspace(&env, &admin, id).await;
        env.call(
            Method::DELETE,
            &format!("/api/projects/{pid}?purge=true"),
            Some(&admin),
            None,
        )
        .await;
    }
}

/// Forwards connections on `path` to this machine's engine while the
/// returned task runs: a real engine behind a socket Berth was not started
/// with.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_answering_is_unreachable_since_its_first_failure_and_ready_when_back() {
    let env = TestEnv::with(|c| c.nodes.heartbeat_timeout_s = 2).await;
    let (_, admin) = env.user(Role::Admin).await;
    let sock = env.dir.path().join("engine-b.sock");
    let endpoint = format!("unix://{}", sock.display());

    // Added while nothing listens: added all the same, and says so.
    let (s, v) = env
        .post(
            "/api/nodes",
            &admin,
            json!({ "name": "b", "endpoint": endpoint, "labels": { "disk": "ssd" } }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let b = &v["data"];
    assert_eq!(b["state"], "unreachable", "{b}");
    assert_eq!(b["address"], "127.0.0.1");
    assert_eq!(b["labels"]["disk"], "ssd");
    assert!(b["capacity"].is_null() && b["engine"].is_null(), "{b}");
    let since = b["unreachableSince"].as_str().unwrap().to_string();
    assert!(b["error"].as_str().unwrap().len() > 3, "{b}");
    assert!(
        v["message"].as_str().unwrap().contains("does not answer"),
        "{v}"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    env.berth.core().nodes().beat().await.unwrap();
    let b = node(&env, &admin, "b").await;
    assert_eq!(
        b["unreachableSince"],
        since.as_str(),
        "since the first failure"
    );
    assert!(metrics(&env).await.contains("berth_node_up{node=\"b\"} 0"));

    // An engine behind the socket: ready at the next heartbeat, with its
    // capacity, the API version negotiated with it.
    let forwarder = common::forward_engine(&sock);
    env.berth.core().nodes().beat().await.unwrap();
    let b = node(&env, &admin, "b").await;
    assert_eq!(b["state"], "ready", "{b}");
    assert!(
        b["unreachableSince"].is_null() && b["error"].is_null(),
        "{b}"
    );
    assert_eq!(b["capacity"]["cpus"], docker_info("NCPU") as f64);
    assert!(b["engine"]["apiVersion"]
        .as_str()
        .unwrap()
        .starts_with("1."));
    assert!(metrics(&env).await.contains("berth_node_up{node=\"b\"} 1"));

    // Gone again: unreachable from this beat on, the last answer kept.
    forwarder.abort();
    let _ = std::fs::remove_file(&sock);
    env.berth.core().nodes().beat().await.unwrap();
    let b = node(&env, &admin, "b").await;
    assert_eq!(b["state"], "unreachable", "{b}");
    assert!(b["lastSeen"].is_string(), "{b}");
    assert_ne!(b["unreachableSince"], since.as_str());

    // Cordoned and unreachable: what needs acting on is shown.
    let (s, v) = patch(&env, &admin, "b", json!({ "cordoned": true })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["state"], "unreachable");
    assert_eq!(v["data"]["cordoned"], true);

    let (s, v) = env
        .call(Method::DELETE, "/api/nodes/b", Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = env.get("/api/nodes/b", &admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(nodes(&env, &admin).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_labels_and_removal_follow_the_rules() {
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    env.berth.core().nodes().beat().await.unwrap();

    let (s, v) = patch(&env, &admin, "local", json!({ "cordoned": true })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["state"], "cordoned");
    assert!(metrics(&env)
        .await
        .contains("berth_node_schedulable{node=\"local\"} 0"));
    let (s, v) = patch(
        &env,
        &admin,
        "local",
        json!({ "cordoned": false, "labels": { "disk": "ssd", "zone": "a" } }),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["state"], "ready");
    assert_eq!(v["data"]["labels"], json!({ "disk": "ssd", "zone": "a" }));
    // Labels are replaced, not merged.
    let (_, v) = patch(&env, &admin, "local", json!({ "labels": { "gpu": "1" } })).await;
    assert_eq!(v["data"]["labels"], json!({ "gpu": "1" }));

    let (s, v) = patch(&env, &admin, "local", json!({ "labels": { "Disk": "x" } })).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "label key");
    let (s, v) = patch(&env, &admin, "local", json!({ "address": "10.0.0.9" })).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "127.0.0.1");
    let (s, v) = patch(&env, &admin, "nope", json!({ "cordoned": true })).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "nope");
    let (s, v) = patch(&env, &admin, "local", json!({ "endpoint": "tcp://x:1" })).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    let (s, v) = env
        .call(Method::DELETE, "/api/nodes/local", Some(&admin), None)
        .await;
    assert_error(s, &v, StatusCode::CONFLICT, "cannot be removed");
    let (s, v) = env
        .call(Method::DELETE, "/api/nodes/nope", Some(&admin), None)
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "nope");

    // Members see no nodes.
    let member = env.member().await;
    let (s, _) = env.get("/api/nodes", &member).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_node_says_what_to_fix() {
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let key = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
    let cases = [
        (
            json!({ "name": "B", "endpoint": "tcp://10.0.0.2:2376" }),
            StatusCode::BAD_REQUEST,
            "lowercase",
        ),
        (
            json!({ "name": "b", "endpoint": "10.0.0.2:2376" }),
            StatusCode::BAD_REQUEST,
            "tcp://host:port",
        ),
        (
            json!({ "name": "b", "endpoint": "ssh://me@b" }),
            StatusCode::BAD_REQUEST,
            "not supported",
        ),
        (
            json!({ "name": "b", "endpoint": "tcp://10.0.0.2:2376", "address": "10.0.0.2:80" }),
            StatusCode::BAD_REQUEST,
            "address",
        ),
        (
            json!({ "name": "b", "endpoint": "unix:///run/x.sock",
                    "tls": { "ca": pem, "cert": pem, "key": key } }),
            StatusCode::BAD_REQUEST,
            "tcp://",
        ),
        (
            json!({ "name": "b", "endpoint": "tcp://10.0.0.2:2376",
                    "tls": { "ca": pem, "cert": "not a pem", "key": key } }),
            StatusCode::BAD_REQUEST,
            "tls.cert",
        ),
        (
            json!({ "name": "b", "endpoint": "tcp://10.0.0.2:2376",
                    "tls": { "ca": pem, "cert": pem } }),
            StatusCode::BAD_REQUEST,
            "key",
        ),
        (
            json!({ "name": "local", "endpoint": "tcp://10.0.0.2:2376" }),
            StatusCode::CONFLICT,
            "always exists",
        ),
    ];
    for (body, status, needle) in cases {
        let (s, v) = env.post("/api/nodes", &admin, body.clone()).await;
        assert_error(s, &v, status, needle);
    }
    assert_eq!(nodes(&env, &admin).await.len(), 1, "nothing was added");

    // The same name twice: 409. (Nothing listens on this loopback port.)
    let body = json!({ "name": "b", "endpoint": "tcp://127.0.0.1:9" });
    let (s, v) = env.post("/api/nodes", &admin, body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["address"], "127.0.0.1", "the endpoint's host");
    let (s, v) = env.post("/api/nodes", &admin, body).await;
    assert_error(s, &v, StatusCode::CONFLICT, "exists");
}

/// The namespace engines are shared by this file's tests, and some stop
/// one (SIGSTOP) or count on what the planner sees there: one such test
/// at a time.
static NAMESPACE_NODES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// For a test of the namespace engines: `None` (the test does nothing)
/// when `scripts/with-nodes` made none, which `BERTH_REQUIRE_NODES` makes a
/// failure; else the turn to use them (see [`NAMESPACE_NODES`]).
async fn namespace_test() -> Option<tokio::sync::MutexGuard<'static, ()>> {
    if namespace_nodes().is_empty() {
        assert!(
            std::env::var_os("BERTH_REQUIRE_NODES").is_none(),
            "BERTH_REQUIRE_NODES is set but no nodes were made"
        );
        return None;
    }
    Some(NAMESPACE_NODES.lock().await)
}

/// The engines `scripts/with-nodes` made: name, endpoint, address.
fn namespace_nodes() -> Vec<(String, String, String)> {
    let pairs = |var: &str| -> Vec<(String, String)> {
        std::env::var(var)
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    };
    let addrs = pairs("BERTH_TEST_NODE_ADDRS");
    pairs("BERTH_TEST_NODES")
        .into_iter()
        .map(|(name, endpoint)| {
            let addr = addrs.iter().find(|(n, _)| *n == name).unwrap().1.clone();
            (name, endpoint, addr)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_in_network_namespaces_answer_over_tcp_and_tls() {
    // `scripts/test` runs this file again under `scripts/with-nodes` (as
    // root) with BERTH_REQUIRE_NODES set.
    let Some(_serial) = namespace_test().await else {
        eprintln!("no extra engines: run under scripts/with-nodes for the TCP and TLS nodes");
        return;
    };
    let found = namespace_nodes();
    let tls_dir = std::path::PathBuf::from(std::env::var("BERTH_TEST_NODE_TLS").unwrap());
    let read = |f: &str| std::fs::read_to_string(tls_dir.join(f)).unwrap();
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    for (name, endpoint, addr) in &found {
        let tls = endpoint.ends_with(":2376");
        let mut body = json!({ "name": name, "endpoint": endpoint, "address": addr });
        if tls {
            body["tls"] =
                json!({ "ca": read("ca.pem"), "cert": read("cert.pem"), "key": read("key.pem") });
        }
        let (s, v) = env.post("/api/nodes", &admin, body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let n = &v["data"];
        assert_eq!(n["state"], "ready", "{name}: {n}");
        assert_eq!(n["tls"], tls, "{n}");
        assert!(n["capacity"]["memoryMb"].as_u64().unwrap() > 0, "{n}");
        assert!(n["engine"]["version"].as_str().unwrap().len() > 1, "{n}");
        // The key never comes back.
        assert!(!v.to_string().contains("PRIVATE KEY"));
        if tls {
            // The same engine without a client certificate: refused by
            // the engine, which the node's status says.
            let (s, v) = env
                .post(
                    "/api/nodes",
                    &admin,
                    json!({ "name": format!("{name}-plain"), "endpoint": endpoint }),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            assert_eq!(v["data"]["state"], "unreachable", "{v}");
        }
    }
    let m = metrics(&env).await;
    for (name, _, _) in &found {
        assert!(
            m.contains(&format!("berth_node_up{{node=\"{name}\"}} 1")),
            "{m}"
        );
    }
}

async fn plan(env: &TestEnv, admin: &str, body: Value) -> (StatusCode, Value) {
    env.post("/api/placement", admin, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planner_answers_from_the_nodes_as_the_heartbeat_saw_them() {
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    env.berth.core().nodes().beat().await.unwrap();
    let local = node(&env, &admin, "local").await;
    assert_eq!(local["types"]["box"], true, "{local}");
    assert_eq!(local["types"][common::MISSING_TYPE], false, "{local}");

    let (s, v) = plan(&env, &admin, json!({ "type": "box" })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["node"], "local");
    let (s, v) = plan(&env, &admin, json!({ "type": common::MISSING_TYPE })).await;
    assert_error(s, &v, StatusCode::CONFLICT, "local: has no image");

    // A second engine (this machine's, behind another socket), labelled.
    let sock = env.dir.path().join("engine-b.sock");
    let _forwarder = common::forward_engine(&sock);
    let (s, v) = env
        .post(
            "/api/nodes",
            &admin,
            json!({ "name": "b", "endpoint": format!("unix://{}", sock.display()),
                    "labels": { "disk": "ssd" } }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["state"], "ready", "{v}");
    assert_eq!(v["data"]["types"]["box"], true, "the same engine's images");

    // Equal capacity and nothing placed: the tie goes to the first name.
    let (_, v) = plan(&env, &admin, json!({ "type": "box" })).await;
    assert_eq!(v["data"]["node"], "b", "{v}");
    let fits: Vec<bool> = v["data"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["fits"].as_bool().unwrap())
        .collect();
    assert_eq!(fits, [true, true], "{v}");
    // Labels: only b has disk=ssd; nobody has zone=x.
    let (_, v) = plan(
        &env,
        &admin,
        json!({ "type": "box", "labels": { "disk": "ssd" } }),
    )
    .await;
    assert_eq!(v["data"]["node"], "b");
    let (s, v) = plan(
        &env,
        &admin,
        json!({ "type": "box", "labels": { "zone": "x" } }),
    )
    .await;
    assert_error(s, &v, StatusCode::CONFLICT, "local: lacks the label zone=x");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("b: lacks the label zone=x"));

    // A new project is placed as the planner says (b: the tie again),
    // and its volume pins its workspaces to b.
    let pid = env.project(&admin, "pinned").await;
    let (_, p) = env.get(&format!("/api/projects/{pid}"), &admin).await;
    assert_eq!(p["data"]["node"], "b", "{p}");
    let (_, v) = plan(&env, &admin, json!({ "type": "box", "projectId": pid })).await;
    assert_eq!(v["data"]["node"], "b", "{v}");
    let local = &v["data"]["nodes"][0];
    assert_eq!(local["node"], "local");
    assert_eq!(local["reason"], "the project's volume is on b", "{v}");

    // Cordoned: nothing new there.
    patch(&env, &admin, "b", json!({ "cordoned": true })).await;
    let (_, v) = plan(&env, &admin, json!({ "type": "box" })).await;
    assert_eq!(v["data"]["node"], "local");
    assert_eq!(v["data"]["nodes"][1]["reason"], "cordoned");

    // An unknown project is a 404, an unknown type says which exist;
    // members may not ask.
    let (s, v) = plan(
        &env,
        &admin,
        json!({ "type": "box", "projectId": uuid::Uuid::new_v4() }),
    )
    .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not found");
    let member = env.member().await;
    let (s, v) = plan(&env, &admin, json!({ "type": "nope" })).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "unknown workspace type");
    let (s, _) = plan(&env, &member, json!({ "type": "box" })).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// Stops and deletes a workspace a test made (the end of a test: what
/// the calls answer is not what it checks).
async fn remove_workspace(env: &TestEnv, admin: &str, id: &str) {
    env.call(
        Method::POST,
        &format!("/api/workspaces/{id}/stop"),
        Some(admin),
        None,
    )
    .await;
    env.call(
        Method::DELETE,
        &format!("/api/workspaces/{id}"),
        Some(admin),
        None,
    )
    .await;
}

/// `docker -H <node's socket> ARGS`, for looking at a node's engine from
/// outside Berth.
fn docker_on(node: &str, args: &[&str]) -> String {
    let socks = std::env::var("BERTH_TEST_NODE_SOCKS").unwrap();
    let sock = socks
        .split(',')
        .find_map(|p| p.strip_prefix(&format!("{node}=")))
        .unwrap_or_else(|| panic!("no socket for {node} in {socks}"));
    let out = std::process::Command::new("docker")
        .arg("-H")
        .arg(sock)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker -H {sock} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Adds every namespace node to `env` (the TLS one with its certificates).
async fn add_namespace_nodes(env: &TestEnv, admin: &str) -> Vec<(String, String, String)> {
    let found = namespace_nodes();
    let tls_dir = std::path::PathBuf::from(std::env::var("BERTH_TEST_NODE_TLS").unwrap());
    let read = |f: &str| std::fs::read_to_string(tls_dir.join(f)).unwrap();
    for (name, endpoint, addr) in &found {
        let mut body = json!({ "name": name, "endpoint": endpoint, "address": addr });
        if endpoint.ends_with(":2376") {
            body["tls"] =
                json!({ "ca": read("ca.pem"), "cert": read("cert.pem"), "key": read("key.pem") });
        }
        let (s, v) = env.post("/api/nodes", admin, body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["data"]["state"], "ready", "{v}");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_placed_on_another_node_runs_serves_logs_and_backs_up_there() {
    let Some(_serial) = namespace_test().await else {
        return;
    };
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    let found = add_namespace_nodes(&env, &admin).await;
    // The types say where their image is.
    let (_, types) = env.get("/api/workspaces/types", &admin).await;
    let boxed = types["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "box")
        .unwrap()
        .clone();
    for (name, _, _) in &found {
        assert_eq!(boxed["nodes"][name], true, "{boxed}");
    }
    let missing = types["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == common::MISSING_TYPE)
        .unwrap()
        .clone();
    assert_eq!(missing["nodes"][&found[0].0], false, "{missing}");
    // Nothing new on this host: the project goes to a namespace node (the
    // first by name, all being empty and alike).
    let (s, v) = patch(&env, &admin, "local", json!({ "cordoned": true })).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = env
        .post(
            "/api/projects",
            &admin,
            json!({ "name": "remote", "workspaceType": "box" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (node, _, addr) = found[0].clone();
    assert_eq!(v["data"]["node"], node.as_str(), "{v}");
    let pid = v["data"]["id"].as_str().unwrap().to_string();
    let volume = v["data"]["volumeName"].as_str().unwrap().to_string();
    // The volume is on that node's engine, not this host's.
    assert!(docker_on(&node, &["volume", "ls", "-q"]).contains(&volume));
    assert!(common::docker_inspect("volume", &volume).is_none());

    let (s, v) = env
        .post(
            "/api/workspaces",
            &admin,
            json!({ "name": "far", "type": "box", "projectId": pid }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["data"]["node"], node.as_str(), "{v}");
    env.start(&admin, &id).await;
    let st = env
        .wait_status(&admin, &id, "healthy on the node", |d| {
            d["health"]["status"] == "healthy"
        })
        .await;
    assert_eq!(st["status"], "running", "{st}");
    let (_, v) = env.get(&format!("/api/workspaces/{id}"), &admin).await;
    let url = v["data"]["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("http://{addr}:")), "{v}");
    assert!(v["data"]["nodeUnreachableSince"].is_null(), "{v}");
    // The container is there, published on the node's address.
    let cname = format!("berth-ws-{id}");
    let ports = docker_on(&node, &["port", &cname]);
    assert!(ports.contains(&format!("{addr}:")), "{ports}");
    assert!(common::docker_inspect("container", &cname).is_none());

    // Through the proxy, at the node's address.
    let r = Request::get(format!("/api/workspaces/{id}/proxy/healthz"))
        .header("authorization", format!("Bearer {admin}"))
        .body(Body::empty())
        .unwrap();
    let (s, _, body) = env.send_raw(r).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, b"ok\n");

    // Logs and figures from that engine.
    docker_on(
        &node,
        &["exec", &cname, "sh", "-c", "echo far-away >/proc/1/fd/1"],
    );
    let r = Request::get(format!("/api/workspaces/{id}/logs?tail=50"))
        .header("authorization", format!("Bearer {admin}"))
        .body(Body::empty())
        .unwrap();
    let (s, _, logs) = env.send_raw(r).await;
    let logs = String::from_utf8_lossy(&logs);
    assert_eq!(s, StatusCode::OK, "{logs}");
    assert!(logs.contains("far-away"), "{logs}");
    let (s, v) = env
        .get(&format!("/api/workspaces/{id}/stats"), &admin)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["data"]["memory"]["usage"].as_f64().unwrap() > 0.0, "{v}");
    // Another host's container is read through its engine, never through
    // this host's cgroup files.
    assert_eq!(v["data"]["source"], "engine", "{v}");

    // Live limits, changed on that engine in place.
    let (s, v) = env
        .call(
            Method::PATCH,
            &format!("/api/workspaces/{id}/resources"),
            Some(&admin),
            Some(json!({ "cpus": 0.3, "memory": 80, "memorySwap": 160 })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mem = docker_on(&node, &["inspect", "-f", "{{.HostConfig.Memory}}", &cname]);
    assert_eq!(mem.trim(), (80u64 << 20).to_string());

    // A backup through the node's archive API, and a restore of it.
    docker_on(
        &node,
        &["exec", &cname, "sh", "-c", "echo kept > /workspace/file"],
    );
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/backup"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["state"], "complete", "{v}");
    let bid = v["data"]["id"].as_str().unwrap().to_string();
    docker_on(&node, &["exec", &cname, "rm", "/workspace/file"]);
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/restore"),
            &admin,
            json!({ "backupId": bid, "stopWorkspace": true }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Restored into a new volume on the same node.
    let restored = v["data"]["volumeName"].as_str().unwrap().to_string();
    assert!(docker_on(&node, &["volume", "ls", "-q"]).contains(&restored));
    env.wait_status(&admin, &id, "running after the restore", |d| {
        d["status"] == "running"
    })
    .await;
    let back = docker_on(&node, &["exec", &cname, "cat", "/workspace/file"]);
    assert_eq!(back, "kept\n");
    let (s, v) = env
        .get(
            &format!("/api/workspaces/projects/{pid}/volume-size"),
            &admin,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // A clone into a project on another node: from one engine's archive
    // API into the other's.
    let other = found[1].0.clone();
    patch(&env, &admin, &node, json!({ "cordoned": true })).await;
    let (s, v) = env
        .post("/api/projects", &admin, json!({ "name": "copy" }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["node"], other.as_str(), "{v}");
    let copy = v["data"]["id"].as_str().unwrap().to_string();
    patch(&env, &admin, &node, json!({ "cordoned": false })).await;
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/clone"),
            &admin,
            json!({ "targetProjectId": copy }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let copied = v["data"]["volumeName"].as_str().unwrap().to_string();
    let cat = docker_on(
        &other,
        &[
            "run",
            "--rm",
            "-v",
            &format!("{copied}:/w"),
            common::TEST_IMAGE,
            "cat",
            "/w/file",
        ],
    );
    assert_eq!(cat, "kept\n");
    let (s, v) = env
        .call(
            Method::DELETE,
            &format!("/api/projects/{copy}?purge=true"),
            Some(&admin),
            None,
        )
        .await;
    assert!(s.is_success(), "{v}");

    // The inactive job asks its activity probe at the node's address: an
    // old record, a recent answer, so it keeps running with that time.
    let old = berth::domain::now_millis() - 25 * 3_600_000;
    env.berth
        .core()
        .store()
        .set_last_activity(uuid::Uuid::parse_str(&id).unwrap(), Some(old))
        .await
        .unwrap();
    let recent = berth::domain::now_millis() - 60_000;
    docker_on(
        &node,
        &[
            "exec",
            &cname,
            "sh",
            "-c",
            &format!("echo '{{\"lastHeartbeat\":{recent}}}' > /tmp/www/activity"),
        ],
    );
    let (s, v) = env
        .call(Method::POST, "/api/jobs/inactive/run", Some(&admin), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, w) = env.get(&format!("/api/workspaces/{id}"), &admin).await;
    assert_eq!(w["data"]["status"], "running", "{w} after {v}");
    let last = chrono::DateTime::parse_from_rfc3339(w["data"]["lastActivityAt"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert_eq!(last, recent, "the probe's answer is the last activity");

    // Stop, delete, purge: nothing of it is left on the node.
    let (s, v) = env
        .call(
            Method::POST,
            &format!("/api/workspaces/{id}/stop"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = env
        .call(
            Method::DELETE,
            &format!("/api/workspaces/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert!(s.is_success(), "{v}");
    let (s, v) = env
        .call(
            Method::DELETE,
            &format!("/api/projects/{pid}?purge=true"),
            Some(&admin),
            None,
        )
        .await;
    assert!(s.is_success(), "{v}");
    let left = docker_on(
        &node,
        &["ps", "-a", "--filter", "label=berth.managed", "-q"],
    );
    let volumes = docker_on(&node, &["volume", "ls", "-q"]);
    assert!(!volumes.contains(&restored), "{volumes}");
    // The volume the restore replaced is kept there for the retention
    // period (the cleanup job's); this test removes it itself.
    assert!(volumes.contains(&volume), "{volumes}");
    docker_on(&node, &["volume", "rm", &volume]);
    assert!(
        left.trim().is_empty() || !left.contains(&id[..12]),
        "{left}"
    );
}

/// The pid of a namespace node's dockerd.
fn dockerd_pid(node: &str) -> String {
    let pids = std::env::var("BERTH_TEST_NODE_PIDS").unwrap();
    let file = pids
        .split(',')
        .find_map(|p| p.strip_prefix(&format!("{node}=")))
        .unwrap_or_else(|| panic!("no pid file for {node} in {pids}"));
    std::fs::read_to_string(file).unwrap().trim().to_string()
}

fn signal(sig: &str, pid: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

/// Resumes a stopped dockerd when dropped (also when the test fails).
struct Resume(String);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_answering_is_reported_the_others_keep_working_and_it_is_reconciled_on_return(
) {
    let Some(_serial) = namespace_test().await else {
        return;
    };
    let env = TestEnv::with(|c| {
        c.nodes.heartbeat_s = 1;
        c.nodes.heartbeat_timeout_s = 1;
    })
    .await;
    let (_, admin) = env.user(Role::Admin).await;
    let found = add_namespace_nodes(&env, &admin).await;
    patch(&env, &admin, "local", json!({ "cordoned": true })).await;
    let heartbeat = env
        .berth
        .core()
        .nodes()
        .spawn_heartbeat(tokio_util::sync::CancellationToken::new());

    // One workspace on each namespace node: the first goes to n1 (a tie),
    // and once it runs, spread sends the second to n2.
    let mut ids = Vec::new();
    for (i, (node, _, _)) in found.iter().take(2).enumerate() {
        let (s, v) = env
            .post(
                "/api/projects",
                &admin,
                json!({ "name": format!("p{i}"), "workspaceType": "box" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["data"]["node"], node.as_str(), "{v}");
        let pid = v["data"]["id"].as_str().unwrap().to_string();
        let (s, v) = env
            .post(
                "/api/workspaces",
                &admin,
                json!({ "name": format!("w{i}"), "type": "box", "projectId": pid }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["data"]["id"].as_str().unwrap().to_string();
        env.start(&admin, &id).await;
        env.wait_status(&admin, &id, "healthy", |d| {
            d["health"]["status"] == "healthy"
        })
        .await;
        ids.push(id);
    }
    let (lost, kept) = (&ids[0], &ids[1]);
    let cname = format!("berth-ws-{lost}");
    let old_pid = docker_on(&found[0].0, &["inspect", "-f", "{{.State.Pid}}", &cname]);

    // n1's engine stops answering (its containers run on); while it does
    // not answer, the workspace's process dies.
    let dockerd = dockerd_pid(&found[0].0);
    signal("-STOP", &dockerd);
    let resume = Resume(dockerd.clone());
    signal("-KILL", old_pid.trim());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, v) = env.get(&format!("/api/workspaces/{lost}"), &admin).await;
        if v["data"]["nodeUnreachableSince"].is_string() {
            // Nothing was changed or deleted meanwhile.
            assert_eq!(v["data"]["status"], "running", "{v}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "n1 not reported unreachable within the heartbeat bound: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(node(&env, &admin, "n1").await["state"], "unreachable");
    // What needs the node says so; the other node's workspace works.
    let (s, v) = env
        .get(&format!("/api/workspaces/{lost}/status"), &admin)
        .await;
    assert_error(
        s,
        &v,
        StatusCode::SERVICE_UNAVAILABLE,
        "node n1 is unreachable since",
    );
    let (s, v) = env
        .call(
            Method::POST,
            &format!("/api/workspaces/{lost}/stop"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(s, &v, StatusCode::SERVICE_UNAVAILABLE, "node n1");
    let (s, v) = env
        .get(&format!("/api/workspaces/{kept}/status"), &admin)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "running", "{v}");
    let r = Request::get(format!("/api/workspaces/{kept}/proxy/healthz"))
        .header("authorization", format!("Bearer {admin}"))
        .body(Body::empty())
        .unwrap();
    let (s, _, _) = env.send_raw(r).await;
    assert_eq!(s, StatusCode::OK);

    // Back: reported ready, and the workspace whose process died while
    // nobody could see it is found down and restarted by recovery.
    drop(resume);
    // Only the record is read here (a status read would itself reconcile
    // the workspace): Berth must notice by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let (_, v) = env.get(&format!("/api/workspaces/{lost}"), &admin).await;
        let pid = docker_on(&found[0].0, &["inspect", "-f", "{{.State.Pid}}", &cname]);
        if v["data"]["nodeUnreachableSince"].is_null()
            && v["data"]["status"] == "running"
            && pid.trim() != "0"
            && pid != old_pid
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not restarted after n1 came back (pid {pid}): {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    env.wait_status(&admin, lost, "healthy again", |d| {
        d["health"]["status"] == "healthy"
    })
    .await;
    let (_, v) = env
        .get(&format!("/api/workspaces/{lost}/events"), &admin)
        .await;
    assert!(v.to_string().contains("recovery_restart"), "{v}");
    heartbeat.abort();

    for id in &ids {
        remove_workspace(&env, &admin, id).await;
    }
}

/// Every file under /workspace with its hash, mode and owner, and every
/// link with its target, as the workspace's own tools see them.
fn manifest_on(node: &str, container: &str) -> String {
    docker_on(
        node,
        &[
            "exec",
            container,
            "sh",
            "-c",
            "cd /workspace && find . -type f -exec sha256sum {} + | sort && \
             find . -exec stat -c '%n %a %u:%g %F' {} + | sort && \
             find . -type l -exec readlink {} + | sort",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_moves_to_another_node_with_its_files_and_its_running_workspace() {
    let Some(_serial) = namespace_test().await else {
        return;
    };
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    let found = add_namespace_nodes(&env, &admin).await;
    let (a, b) = (found[0].0.clone(), found[1].0.clone());
    patch(&env, &admin, "local", json!({ "cordoned": true })).await;
    let (s, v) = env
        .post(
            "/api/projects",
            &admin,
            json!({ "name": "mover", "workspaceType": "box" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["node"], a.as_str(), "{v}");
    let pid = v["data"]["id"].as_str().unwrap().to_string();
    let old_volume = v["data"]["volumeName"].as_str().unwrap().to_string();
    let (s, v) = env
        .post(
            "/api/workspaces",
            &admin,
            json!({ "name": "m", "type": "box", "projectId": pid }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    env.start(&admin, &id).await;
    let cname = format!("berth-ws-{id}");
    docker_on(
        &a,
        &[
            "exec",
            &cname,
            "sh",
            "-c",
            "cd /workspace && mkdir -p src/deep 'with space' && \
             for i in $(seq 1 40); do echo \"line $i\" > src/f$i.txt; done && \
             head -c 3000000 /dev/urandom > src/deep/blob.bin && \
             echo secret > private && chmod 600 private && chown 1000:1000 private && \
             ln -s src/f1.txt link && ln -s ../../escape 'with space/up' && \
             chmod 4755 src/f2.txt && : > empty",
        ],
    );
    let before = manifest_on(&a, &cname);
    assert!(before.contains("blob.bin"), "{before}");

    // What cannot be done says why.
    let mv = |to: &str| json!({ "node": to });
    let (s, v) = env
        .post(&format!("/api/projects/{pid}/move"), &admin, mv(&a))
        .await;
    assert_error(s, &v, StatusCode::CONFLICT, "already on node");
    let (s, v) = env
        .post(&format!("/api/projects/{pid}/move"), &admin, mv("nope"))
        .await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "no node named");
    let (s, v) = env
        .post(&format!("/api/projects/{pid}/move"), &admin, mv("local"))
        .await;
    assert_error(s, &v, StatusCode::CONFLICT, "cordoned");
    let member = env.member().await;
    let (s, _) = env
        .post(&format!("/api/projects/{pid}/move"), &member, mv(&b))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, v) = env
        .post(&format!("/api/projects/{pid}/move"), &admin, mv(&b))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let m = &v["data"];
    assert_eq!(m["from"], a.as_str(), "{v}");
    assert_eq!(m["to"], b.as_str(), "{v}");
    assert_eq!(m["project"]["node"], b.as_str(), "{v}");
    assert_eq!(m["previousVolume"], old_volume.as_str(), "{v}");
    assert_eq!(m["restartedWorkspaces"][0], id.as_str(), "{v}");
    assert!(m["entries"].as_u64().unwrap() > 45, "{v}");
    let new_volume = m["volumeName"].as_str().unwrap().to_string();

    // The workspace runs on b with the same files; a holds only the old
    // volume (kept for the retention period).
    env.wait_status(&admin, &id, "healthy on the new node", |d| {
        d["health"]["status"] == "healthy"
    })
    .await;
    let (_, w) = env.get(&format!("/api/workspaces/{id}"), &admin).await;
    assert_eq!(w["data"]["node"], b.as_str(), "{w}");
    let after = manifest_on(&b, &cname);
    assert_eq!(after, before, "the files changed in the move");
    assert!(docker_on(&b, &["volume", "ls", "-q"]).contains(&new_volume));
    let on_a = docker_on(&a, &["ps", "-aq", "--filter", &format!("name={cname}")]);
    assert!(on_a.trim().is_empty(), "old container left on {a}: {on_a}");
    assert!(docker_on(&a, &["volume", "ls", "-q"]).contains(&old_volume));

    // Cleanup: the workspace, the project, the kept volume.
    remove_workspace(&env, &admin, &id).await;
    let (s, v) = env
        .call(
            Method::DELETE,
            &format!("/api/projects/{pid}?purge=true"),
            Some(&admin),
            None,
        )
        .await;
    assert!(s.is_success(), "{v}");
    docker_on(&a, &["volume", "rm", &old_volume]);
}

/// Drains `node` and waits for the end. `moves`: the drain copies volumes
/// (seconds of work), so the node is seen draining right after the start.
async fn drain_until_done(env: &TestEnv, admin: &str, node: &str, moves: bool) -> Value {
    let (s, v) = env
        .post(&format!("/api/nodes/{node}/drain"), admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    if moves {
        assert_eq!(
            self::node(env, admin, node).await["state"],
            "draining",
            "{v}"
        );
    }
    env.wait_for(
        admin,
        &format!("/api/nodes/{node}/drain"),
        "the drain to end",
        120,
        |d| d["finishedAt"].is_string(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_a_node_moves_its_projects_one_by_one_and_leaves_it_cordoned() {
    let Some(_serial) = namespace_test().await else {
        return;
    };
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    let found = add_namespace_nodes(&env, &admin).await;
    let (a, b) = (found[0].0.clone(), found[1].0.clone());
    patch(&env, &admin, "local", json!({ "cordoned": true })).await;
    patch(&env, &admin, &b, json!({ "cordoned": true })).await;
    // Any other node takes nothing: the drain has one place to go.
    for (other, _, _) in &found[2..] {
        patch(&env, &admin, other, json!({ "cordoned": true })).await;
    }
    // Three projects on a, one with a running workspace.
    let mut pids = Vec::new();
    for i in 0..3 {
        let (s, v) = env
            .post(
                "/api/projects",
                &admin,
                json!({ "name": format!("d{i}"), "workspaceType": "box" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["data"]["node"], a.as_str(), "{v}");
        pids.push(v["data"]["id"].as_str().unwrap().to_string());
    }
    let (s, v) = env
        .post(
            "/api/workspaces",
            &admin,
            json!({ "name": "d", "type": "box", "projectId": pids[0] }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    env.start(&admin, &id).await;
    patch(&env, &admin, &b, json!({ "cordoned": false })).await;

    let d = drain_until_done(&env, &admin, &a, true).await;
    assert_eq!(d["total"], 3, "{d}");
    assert_eq!(d["failed"], json!([]), "{d}");
    let moved: Vec<&str> = d["moved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["to"].as_str().unwrap())
        .collect();
    assert_eq!(moved, [b.as_str(); 3], "{d}");
    let n = node(&env, &admin, &a).await;
    assert_eq!(n["state"], "cordoned", "{n}");
    assert_eq!(n["projects"], 0, "{n}");
    for pid in &pids {
        let (_, p) = env.get(&format!("/api/projects/{pid}"), &admin).await;
        assert_eq!(p["data"]["node"], b.as_str(), "{p}");
    }
    let st = env
        .wait_status(&admin, &id, "running on the new node", |d| {
            d["status"] == "running"
        })
        .await;
    assert_eq!(st["containerRunning"], true, "{st}");
    let (_, w) = env.get(&format!("/api/workspaces/{id}"), &admin).await;
    assert_eq!(w["data"]["node"], b.as_str(), "{w}");

    // Nowhere to go: every project stays, each with the planner's reason,
    // and the node ends cordoned all the same.
    let d = drain_until_done(&env, &admin, &b, false).await;
    assert_eq!(d["moved"], json!([]), "{d}");
    let failed = d["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 3, "{d}");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains(&format!("{a}: cordoned")),
        "{d}"
    );
    assert_eq!(node(&env, &admin, &b).await["state"], "cordoned");
    // Members may not drain.
    let member = env.member().await;
    let (s, _) = env
        .post(&format!("/api/nodes/{b}/drain"), &member, json!({}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    remove_workspace(&env, &admin, &id).await;
    for pid in &pids {
        env.call(
            Method::DELETE,
            &format!("/api/projects/{pid}?purge=true"),
            Some(&admin),
            None,
        )
        .await;
    }
    for v in docker_on(&a, &["volume", "ls", "-q"]).lines() {
        if pids.iter().any(|p| v.contains(p.as_str())) {
            docker_on(&a, &["volume", "rm", v]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_on_a_lost_node_is_recovered_onto_another_from_its_backup_by_an_admin() {
    let Some(_serial) = namespace_test().await else {
        return;
    };
    let env = TestEnv::with(|c| {
        c.nodes.heartbeat_s = 1;
        c.nodes.heartbeat_timeout_s = 1;
        c.cleanup.container_grace_min = 0;
    })
    .await;
    let (_, admin) = env.user(Role::Admin).await;
    let found = add_namespace_nodes(&env, &admin).await;
    let (a, b) = (found[0].0.clone(), found[1].0.clone());
    patch(&env, &admin, "local", json!({ "cordoned": true })).await;
    patch(&env, &admin, &b, json!({ "cordoned": true })).await;
    let (s, v) = env
        .post(
            "/api/projects",
            &admin,
            json!({ "name": "lost", "workspaceType": "box" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["node"], a.as_str(), "{v}");
    let pid = v["data"]["id"].as_str().unwrap().to_string();
    let old_volume = v["data"]["volumeName"].as_str().unwrap().to_string();
    patch(&env, &admin, &b, json!({ "cordoned": false })).await;
    let (_, v) = env
        .post(
            "/api/workspaces",
            &admin,
            json!({ "name": "l", "type": "box", "projectId": pid }),
        )
        .await;
    let id = v["data"]["id"].as_str().unwrap().to_string();
    env.start(&admin, &id).await;
    let cname = format!("berth-ws-{id}");
    docker_on(
        &a,
        &["exec", &cname, "sh", "-c", "echo saved > /workspace/before"],
    );
    // Nothing to recover from yet.
    let recover = |to: &str| json!({ "node": to });
    let (s, v) = env
        .post(&format!("/api/projects/{pid}/recover"), &admin, recover(&b))
        .await;
    assert_error(s, &v, StatusCode::CONFLICT, "no complete backup");
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/backup"),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let bid = v["data"]["id"].as_str().unwrap().to_string();
    docker_on(
        &a,
        &["exec", &cname, "sh", "-c", "echo lost > /workspace/after"],
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // n1 is lost.
    let heartbeat = env
        .berth
        .core()
        .nodes()
        .spawn_heartbeat(tokio_util::sync::CancellationToken::new());
    let dockerd = dockerd_pid(&a);
    signal("-STOP", &dockerd);
    let resume = Resume(dockerd);
    env.wait_for(
        &admin,
        &format!("/api/nodes/{a}"),
        "n1 unreachable",
        15,
        |n| n["state"] == "unreachable",
    )
    .await;
    let (s, v) = env
        .post(&format!("/api/projects/{pid}/recover"), &admin, recover(&a))
        .await;
    assert_error(s, &v, StatusCode::CONFLICT, "restore a backup instead");
    let member = env.member().await;
    let (s, _) = env
        .post(
            &format!("/api/projects/{pid}/recover"),
            &member,
            recover(&b),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = env
        .post(&format!("/api/projects/{pid}/recover"), &admin, recover(&b))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = &v["data"];
    assert_eq!(r["from"], a.as_str(), "{v}");
    assert_eq!(r["to"], b.as_str(), "{v}");
    assert_eq!(r["backupId"], bid.as_str(), "{v}");
    assert!(r["backupAgeSeconds"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(r["fetchedFromRemote"], false, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("old"),
        "the answer says how old the data is: {v}"
    );
    // The workspace switched too, stopped; it starts on n2 with the
    // backup's files (and not what was written after it).
    let (_, w) = env.get(&format!("/api/workspaces/{id}"), &admin).await;
    assert_eq!(w["data"]["node"], b.as_str(), "{w}");
    assert_eq!(w["data"]["status"], "stopped", "{w}");
    env.start(&admin, &id).await;
    assert_eq!(
        docker_on(&b, &["exec", &cname, "cat", "/workspace/before"]),
        "saved\n"
    );
    let ls = docker_on(&b, &["exec", &cname, "ls", "/workspace"]);
    assert!(!ls.contains("after"), "{ls}");

    // n1 returns: its old container of the workspace is an orphan there now.
    drop(resume);
    env.wait_for(&admin, &format!("/api/nodes/{a}"), "n1 back", 15, |n| {
        n["state"] == "ready"
    })
    .await;
    heartbeat.abort();
    let on_a = || docker_on(&a, &["ps", "-aq", "--filter", &format!("name={cname}")]);
    assert!(
        !on_a().trim().is_empty(),
        "the old container is still on n1"
    );
    let (s, v) = env
        .call(
            Method::POST,
            "/api/jobs/orphaned-containers/run",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(on_a().trim().is_empty(), "orphan left on n1: {v}");
    // The workspace on n2 was not touched.
    let (_, st) = env
        .get(&format!("/api/workspaces/{id}/status"), &admin)
        .await;
    assert_eq!(st["data"]["status"], "running", "{st}");

    remove_workspace(&env, &admin, &id).await;
    env.call(
        Method::DELETE,
        &format!("/api/projects/{pid}?purge=true"),
        Some(&admin),
        None,
    )
    .await;
    docker_on(&a, &["volume", "rm", &old_volume]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_by_reservation_fills_the_nodes_in_the_planned_order_then_says_why_not() {
    let Some(_serial) = namespace_test().await else {
        return;
    };
    // Every engine here reports this host's memory: a type reserving a
    // little under half of it fits twice on each node.
    let total_mb = (docker_info("MemTotal") / (1024 * 1024)) as u64;
    let half = total_mb / 2 - 64;
    let env = TestEnv::with(|c| {
        c.nodes.placement = berth::domain::placement::Strategy::Pack;
        let mut big = common::box_type();
        big.resources.memory_mb = half;
        big.resources.memory_swap_mb = None;
        big.resources.memory_reservation_mb = Some(half);
        big.resources.cpus = 0.1;
        c.types.insert("big".into(), big);
    })
    .await;
    let (_, admin) = env.user(Role::Admin).await;
    let found = add_namespace_nodes(&env, &admin).await;
    patch(&env, &admin, "local", json!({ "cordoned": true })).await;
    // Pack: a node fills before the next one is used; the names break ties.
    let mut want: Vec<String> = Vec::new();
    for (name, _, _) in &found {
        want.push(name.clone());
        want.push(name.clone());
    }
    let mut placed = Vec::new();
    let mut ids = Vec::new();
    for i in 0..want.len() {
        let (s, v) = env
            .post(
                "/api/projects",
                &admin,
                json!({ "name": format!("big{i}"), "workspaceType": "big" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{i}: {v}");
        placed.push(v["data"]["node"].as_str().unwrap().to_string());
        let pid = v["data"]["id"].as_str().unwrap().to_string();
        let (s, v) = env
            .post(
                "/api/workspaces",
                &admin,
                json!({ "name": format!("b{i}"), "type": "big", "projectId": pid }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["data"]["id"].as_str().unwrap().to_string();
        env.start(&admin, &id).await;
        ids.push((id, pid));
    }
    assert_eq!(placed, want);
    let n = node(&env, &admin, &found[0].0).await;
    assert_eq!(n["allocated"]["memoryMb"], 2 * half, "{n}");
    // Full: refused, with each node's reason (and this host's: cordoned).
    let (s, v) = env
        .post(
            "/api/projects",
            &admin,
            json!({ "name": "one-too-many", "workspaceType": "big" }),
        )
        .await;
    assert_error(s, &v, StatusCode::CONFLICT, "local: cordoned");
    let msg = v["error"]["message"].as_str().unwrap();
    for (name, _, _) in &found {
        assert!(
            msg.contains(&format!("{name}: ")) && msg.contains(&format!("needs {half} MB")),
            "{msg}"
        );
    }
    // A stopped workspace reserves nothing: its node takes one again.
    let (id, _) = &ids[0];
    env.call(
        Method::POST,
        &format!("/api/workspaces/{id}/stop"),
        Some(&admin),
        None,
    )
    .await;
    let (s, v) = env
        .post(
            "/api/projects",
            &admin,
            json!({ "name": "fits-again", "workspaceType": "big" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["node"], found[0].0.as_str(), "{v}");
    let last = v["data"]["id"].as_str().unwrap().to_string();

    for (id, pid) in &ids {
        remove_workspace(&env, &admin, id).await;
        env.call(
            Method::DELETE,
            &format!("/api/projects/{pid}?purge=true"),
            Some(&admin),
            None,
        )
        .await;
    }
    env.call(
        Method::DELETE,
        &format!("/api/projects/{last}?purge=true"),
        Some(&admin),
        None,
    )
    .await;
}

/// Issue 28's run: engines that each report this host's memory, a type
/// reserving 60 % of it, and projects made without a type (so placed
/// before anything says what will run on them). Each start lands where
/// there is room; when no node has any, the start is a 409 that names the
/// node and what is free, and no node's reservations pass its capacity.
/// With `pack` a typeless project goes to the fullest node: its first
/// workspace moves it (empty) to a node with room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_never_overcommit_a_node_and_an_empty_project_follows_its_first_workspace() {
    let Some(_serial) = namespace_test().await else {
        return;
    };
    let env = TestEnv::with(|c| {
        c.nodes.placement = berth::domain::placement::Strategy::Pack;
        c.types.insert("big".into(), share_of_host(60, 60));
    })
    .await;
    let (_, admin) = env.user(Role::Admin).await;
    let found = add_namespace_nodes(&env, &admin).await;
    patch(&env, &admin, "local", json!({ "cordoned": true })).await;
    let within_capacity = |list: &[Value]| {
        for n in list {
            let (a, c) = (&n["allocated"]["memoryMb"], &n["capacity"]["memoryMb"]);
            assert!(a.as_u64().unwrap() <= c.as_u64().unwrap(), "{n}");
        }
    };
    let mut made = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for i in 0..found.len() {
        let (ws, pid) = big_workspace(&env, &admin, "big", i).await;
        env.start(&admin, &ws).await;
        let (_, p) = env.get(&format!("/api/projects/{pid}"), &admin).await;
        let on = p["data"]["node"].as_str().unwrap().to_string();
        assert!(used.insert(on.clone()), "two on {on}: {used:?}");
        within_capacity(&nodes(&env, &admin).await);
        made.push((ws, pid));
    }
    // Every node full: the next start is refused, saying why and that no
    // other node has room.
    let (ws, pid) = big_workspace(&env, &admin, "big", 99).await;
    let (s, v) = env
        .call(
            Method::POST,
            &format!("/api/workspaces/{ws}/start"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(
        s,
        &v,
        StatusCode::CONFLICT,
        "has no room for this workspace",
    );
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("MB free of") && m.contains("no other node has room"),
        "{m}"
    );
    within_capacity(&nodes(&env, &admin).await);
    // Room on one node again: the refusal says where to move the project
    // (which pack put on the fullest node, and nothing could move).
    let (second, _) = &made[1];
    let (_, w) = env.get(&format!("/api/workspaces/{second}"), &admin).await;
    let freed = w["data"]["node"].as_str().unwrap().to_string();
    env.call(
        Method::POST,
        &format!("/api/workspaces/{second}/stop"),
        Some(&admin),
        None,
    )
    .await;
    let (_, p) = env.get(&format!("/api/projects/{pid}"), &admin).await;
    assert_ne!(p["data"]["node"], freed.as_str(), "{p}");
    let (s, v) = env
        .call(
            Method::POST,
            &format!("/api/workspaces/{ws}/start"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(s, &v, StatusCode::CONFLICT, &format!("--to {freed}"));
    // A new project with nothing in it goes to the fullest node (pack,
    // nothing reserved yet); its first workspace takes it, empty, where
    // there is room.
    let (ws2, pid2) = big_workspace(&env, &admin, "big", 100).await;
    let (_, p) = env.get(&format!("/api/projects/{pid2}"), &admin).await;
    assert_eq!(p["data"]["node"], freed.as_str(), "{p}");
    env.start(&admin, &ws2).await;
    within_capacity(&nodes(&env, &admin).await);
    made.push((ws, pid));
    made.push((ws2, pid2));
    for (id, pid) in &made {
        remove_workspace(&env, &admin, id).await;
        env.call(
            Method::DELETE,
            &format!("/api/projects/{pid}?purge=true"),
            Some(&admin),
            None,
        )
        .await;
    }
}

/// Debian's docker-registry on the bridge address the namespace engines
/// reach (10.231.0.1), until dropped.
struct BridgeRegistry {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for BridgeRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bridge_registry() -> BridgeRegistry {
    let bin = ["/usr/bin/docker-registry", "/usr/bin/registry"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Debian's docker-registry is installed (scripts/setup does it)");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("10.231.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("10.231.0.1:{port}");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = std::process::Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr.as_str()).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the registry never came up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    BridgeRegistry {
        child,
        addr,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_types_image_pulls_it_from_the_registry_when_a_workspace_starts() {
    let Some(_serial) = namespace_test().await else {
        return;
    };
    let found = namespace_nodes();
    let (source, target) = (found[1].0.clone(), found[found.len() - 1].0.clone());
    // The image goes to the registry from one node (the engines trust the
    // bridge's registries; this host's engine does not) and exists on no
    // other.
    let reg = bridge_registry();
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let image = format!("{}/berth-test/pulled:{tag}", reg.addr);
    docker_on(&source, &["tag", common::TEST_IMAGE, &image]);
    docker_on(&source, &["push", &image]);
    docker_on(&source, &["rmi", &image]);
    let env = TestEnv::with(|c| {
        let mut t = common::box_type();
        t.image = image.clone();
        c.types.insert("pulled".into(), t);
        c.images.pull_on_start = true;
    })
    .await;
    let (_, admin) = env.user(Role::Admin).await;
    add_namespace_nodes(&env, &admin).await;
    for n in std::iter::once("local").chain(found.iter().map(|f| f.0.as_str())) {
        if n != target {
            patch(&env, &admin, n, json!({ "cordoned": true })).await;
        }
    }
    let (_, types) = env.get("/api/workspaces/types", &admin).await;
    let pulled = types["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "pulled")
        .unwrap()
        .clone();
    assert_eq!(pulled["nodes"][&target], false, "{pulled}");
    // The planner may place it where the image is missing: it can be pulled.
    let (s, v) = env
        .post(
            "/api/projects",
            &admin,
            json!({ "name": "pull", "workspaceType": "pulled" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["node"], target.as_str(), "{v}");
    let pid = v["data"]["id"].as_str().unwrap().to_string();
    let (s, v) = env
        .post(
            "/api/workspaces",
            &admin,
            json!({ "name": "p", "type": "pulled", "projectId": pid }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    env.start(&admin, &id).await;
    env.wait_status(&admin, &id, "healthy from the pulled image", |d| {
        d["health"]["status"] == "healthy"
    })
    .await;
    // Pulled onto that node's engine, not this host's.
    docker_on(&target, &["image", "inspect", &image]);
    assert!(common::docker_inspect("image", &image).is_none());
    env.berth.core().nodes().beat().await.unwrap();
    assert_eq!(node(&env, &admin, &target).await["types"]["pulled"], true);

    remove_workspace(&env, &admin, &id).await;
    env.call(
        Method::DELETE,
        &format!("/api/projects/{pid}?purge=true"),
        Some(&admin),
        None,
    )
    .await;
    docker_on(&target, &["rmi", "-f", &image]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_engine_stopped_and_started_again_is_reported_then_reconciled() {
    let Some(_serial) = namespace_test().await else {
        return;
    };
    let env = TestEnv::with(|c| {
        c.nodes.heartbeat_s = 1;
        c.nodes.heartbeat_timeout_s = 1;
    })
    .await;
    let (_, admin) = env.user(Role::Admin).await;
    let found = add_namespace_nodes(&env, &admin).await;
    let victim = found[found.len() - 1].0.clone();
    let other = found[1].0.clone();
    patch(&env, &admin, "local", json!({ "cordoned": true })).await;
    let heartbeat = env
        .berth
        .core()
        .nodes()
        .spawn_heartbeat(tokio_util::sync::CancellationToken::new());
    // One workspace on the victim, one on another node.
    let mut ids = Vec::new();
    for n in [&victim, &other] {
        for (name, _, _) in &found {
            let c = name != n;
            patch(&env, &admin, name, json!({ "cordoned": c })).await;
        }
        let (s, v) = env
            .post(
                "/api/projects",
                &admin,
                json!({ "name": format!("on-{n}"), "workspaceType": "box" }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["data"]["node"], n.as_str(), "{v}");
        let pid = v["data"]["id"].as_str().unwrap().to_string();
        let (_, v) = env
            .post(
                "/api/workspaces",
                &admin,
                json!({ "name": "k", "type": "box", "projectId": pid }),
            )
            .await;
        let id = v["data"]["id"].as_str().unwrap().to_string();
        env.start(&admin, &id).await;
        ids.push(id);
    }
    let (lost, kept) = (ids[0].clone(), ids[1].clone());
    let cname = format!("berth-ws-{lost}");

    // The victim's dockerd is stopped (it stops its containers as it goes).
    let pidfile = std::env::var("BERTH_TEST_NODE_PIDS")
        .unwrap()
        .split(',')
        .find_map(|p| p.strip_prefix(&format!("{victim}=")).map(str::to_string))
        .unwrap();
    let dockerd = dockerd_pid(&victim);
    signal("-TERM", &dockerd);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = env.get(&format!("/api/workspaces/{lost}"), &admin).await;
        if v["data"]["nodeUnreachableSince"].is_string() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{victim} not reported unreachable: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, v) = env
        .get(&format!("/api/workspaces/{lost}/status"), &admin)
        .await;
    assert_error(
        s,
        &v,
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("node {victim} is unreachable since"),
    );
    let (s, v) = env
        .get(&format!("/api/workspaces/{kept}/status"), &admin)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "running", "{v}");
    // Gone for good before it is started again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::process::Command::new("kill")
        .args(["-0", &dockerd])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(std::time::Instant::now() < deadline, "dockerd did not stop");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Started again: Berth sees the workspace's container down (the engine
    // stopped it) and recovery starts it, without anyone asking.
    let start = std::path::Path::new(&pidfile).with_file_name("start");
    // -f: setsid forks and returns, the engine runs on in its own session.
    let st = std::process::Command::new("setsid")
        .arg("-f")
        .arg(&start)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "starting {victim}'s engine again");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, v) = env.get(&format!("/api/workspaces/{lost}"), &admin).await;
        let running = std::process::Command::new("docker")
            .args([
                "-H",
                &sock_of(&victim),
                "inspect",
                "-f",
                "{{.State.Running}}",
                &cname,
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
            .unwrap_or(false);
        if v["data"]["nodeUnreachableSince"].is_null()
            && v["data"]["status"] == "running"
            && running
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not reconciled after {victim} came back: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, v) = env
        .get(&format!("/api/workspaces/{lost}/events"), &admin)
        .await;
    assert!(v.to_string().contains("recovery_restart"), "{v}");
    heartbeat.abort();
    for id in &ids {
        remove_workspace(&env, &admin, id).await;
    }
}

fn sock_of(node: &str) -> String {
    std::env::var("BERTH_TEST_NODE_SOCKS")
        .unwrap()
        .split(',')
        .find_map(|p| p.strip_prefix(&format!("{node}=")).map(str::to_string))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_moves_between_two_nodes_behind_sockets_and_back() {
    // Two "nodes" that are this machine's engine behind two sockets: the
    // move runs its whole path (helpers, copy, digests, switch) without
    // root; a volume's data is checked on this host.
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    let sock = env.dir.path().join("engine-m.sock");
    let _forwarder = common::forward_engine(&sock);
    let (s, v) = env
        .post(
            "/api/nodes",
            &admin,
            json!({ "name": "m", "endpoint": format!("unix://{}", sock.display()) }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    patch(&env, &admin, "m", json!({ "cordoned": true })).await;
    let pid = env.project(&admin, "moving").await;
    let (_, p) = env.get(&format!("/api/projects/{pid}"), &admin).await;
    assert_eq!(p["data"]["node"], "local", "{p}");
    let vol = p["data"]["volumeName"].as_str().unwrap().to_string();
    let mp = common::docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &vol]);
    std::fs::write(Path::new(mp.trim()).join("note.txt"), "moved with me\n").unwrap();

    // Cordoned: refused with the reason; then moved, and back.
    let (s, v) = env
        .post(
            &format!("/api/projects/{pid}/move"),
            &admin,
            json!({ "node": "m" }),
        )
        .await;
    assert_error(s, &v, StatusCode::CONFLICT, "node m cannot take project");
    patch(&env, &admin, "m", json!({ "cordoned": false })).await;
    let mut volumes = vec![vol.clone()];
    for to in ["m", "local"] {
        let (s, v) = env
            .post(
                &format!("/api/projects/{pid}/move"),
                &admin,
                json!({ "node": to }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["data"]["to"], to, "{v}");
        let now = v["data"]["volumeName"].as_str().unwrap().to_string();
        let mp = common::docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", &now]);
        assert_eq!(
            std::fs::read_to_string(Path::new(mp.trim()).join("note.txt")).unwrap(),
            "moved with me\n"
        );
        volumes.push(now);
    }
    let (_, p) = env.get(&format!("/api/projects/{pid}"), &admin).await;
    assert_eq!(p["data"]["node"], "local", "{p}");
    let (s, _) = env
        .call(
            Method::DELETE,
            &format!("/api/projects/{pid}?purge=true"),
            Some(&admin),
            None,
        )
        .await;
    assert!(s.is_success());
    // The volumes the moves left behind (kept for the retention period).
    for v in &volumes[..volumes.len() - 1] {
        common::docker(&["volume", "rm", v]);
    }
}

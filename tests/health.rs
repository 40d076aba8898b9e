//! Health reporting, custom health checks, live resource limits and
//! automatic recovery, against the real engine. The test config uses 1 s
//! health intervals and a recovery budget of 2 restarts per 10 min with
//! 1–2 s backoff, so every scenario settles in seconds.

mod common;

use axum::http::{Method, StatusCode};
use common::{docker, docker_inspect, EngineRelay, TestEnv};
use serde_json::{json, Value};

async fn start(env: &TestEnv, t: &str, id: &str) -> Value {
    env.start(t, id).await
}

async fn create(env: &TestEnv, t: &str, body: Value) -> String {
    let (s, v) = env.post("/api/workspaces", t, body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["data"]["id"].as_str().unwrap().to_string()
}

async fn events(env: &TestEnv, t: &str, id: &str) -> Vec<Value> {
    let (s, v) = env.get(&format!("/api/workspaces/{id}/events"), t).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn health_reports_every_state_of_a_workspace() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let (id, pid) = env.workspace(&t).await;
    let health = format!("/api/workspaces/{id}/health");

    let (_, v) = env.get(&health, &t).await;
    assert_eq!(v["data"]["status"], "no_container");
    assert_eq!(v["data"]["healthy"], false);

    start(&env, &t, &id).await;
    let h = env
        .wait_for(&t, &health, "healthy", 30, |d| d["status"] == "healthy")
        .await;
    assert_eq!(h["healthy"], true);
    assert_eq!(h["failingStreak"], 0);
    assert_eq!(h["lastCheck"]["exitCode"], 0);
    assert!(h["lastCheck"]["timestamp"]
        .as_str()
        .unwrap()
        .starts_with("20"));

    // The status shows the last checks and live resources.
    let (_, st) = env.get(&format!("/api/workspaces/{id}/status"), &t).await;
    let st = &st["data"];
    assert!(st["health"]["log"].as_array().unwrap().len() <= 3);
    assert_eq!(st["resources"]["memoryLimit"], 64.0);
    assert!(
        st["resources"]["memoryUsage"].as_f64().unwrap() > 0.0,
        "{st}"
    );
    assert!(st["resources"]["cpuUsage"].as_f64().is_some(), "{st}");
    assert_eq!(st["containerInfo"]["OOMKilled"], false);
    assert_eq!(st["containerInfo"]["restartCount"], 0);

    env.call(
        Method::POST,
        &format!("/api/workspaces/{id}/stop"),
        Some(&t),
        None,
    )
    .await;
    let (_, v) = env.get(&health, &t).await;
    assert_eq!(v["data"]["status"], "stopped");

    // A running container without any health check.
    let plain = create(
        &env,
        &t,
        json!({ "name": "p", "type": "plain", "projectId": pid }),
    )
    .await;
    start(&env, &t, &plain).await;
    let (_, v) = env
        .get(&format!("/api/workspaces/{plain}/health"), &t)
        .await;
    assert_eq!(v["data"]["status"], "none");
    assert_eq!(v["data"]["healthy"], false);
    assert!(v["data"]["lastCheck"].is_null());
}

#[tokio::test]
async fn an_unhealthy_workspace_is_restarted_and_comes_back_healthy() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let (id, _) = env.workspace(&t).await;
    let name = format!("berth-ws-{id}");
    let health = format!("/api/workspaces/{id}/health");
    start(&env, &t, &id).await;
    env.wait_for(&t, &health, "healthy", 30, |d| d["status"] == "healthy")
        .await;
    let cid = docker_inspect("container", &name).unwrap()["Id"].clone();

    // Break the health endpoint; the container stays up.
    docker(&["exec", &name, "rm", "/tmp/www/healthz"]);
    let evs_path = format!("/api/workspaces/{id}/events");
    let evs = env
        .wait_for(&t, &evs_path, "a recovery restart", 30, |d| {
            d.as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "recovery_restart")
        })
        .await;
    let restart = evs
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "recovery_restart")
        .unwrap();
    assert!(
        restart["message"]
            .as_str()
            .unwrap()
            .contains("health check failing"),
        "{restart}"
    );
    // The restart wrote the file again: healthy, same container.
    env.wait_for(&t, &health, "healthy again", 30, |d| {
        d["status"] == "healthy"
    })
    .await;
    let c = docker_inspect("container", &name).unwrap();
    assert_eq!(c["Id"], cid, "restarted in place, not recreated");
    let (_, w) = env.get(&format!("/api/workspaces/{id}"), &t).await;
    assert_eq!(w["data"]["status"], "running");
    assert!(w["data"]["statusReason"].is_null());
}

#[tokio::test]
async fn a_workspace_that_keeps_failing_ends_in_error_and_stays_there() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let pid = env.project(&t, "p").await;
    let id = create(
        &env,
        &t,
        json!({
            "name": "sick", "type": "box", "projectId": pid,
            "healthCheck": { "command": "exit 1", "interval": 1, "retries": 1 }
        }),
    )
    .await;
    start(&env, &t, &id).await;
    let w = env
        .wait_for(&t, &format!("/api/workspaces/{id}"), "error", 60, |d| {
            d["status"] == "error"
        })
        .await;
    let reason = w["statusReason"].as_str().unwrap();
    assert!(
        reason.starts_with("unhealthy 3 times in 10 min"),
        "reason: {reason}"
    );
    let evs = events(&env, &t, &id).await;
    let count = |k: &str| evs.iter().filter(|e| e["kind"] == k).count();
    assert_eq!(count("recovery_restart"), 2, "{evs:?}");
    assert_eq!(count("recovery_gave_up"), 1, "{evs:?}");
    assert_eq!(
        count("recovery_scheduled"),
        1,
        "second restart waited: {evs:?}"
    );

    // Given up: the container is stopped and nothing restarts it.
    let name = format!("berth-ws-{id}");
    let c = docker_inspect("container", &name).unwrap();
    assert_eq!(c["State"]["Running"], false);
    let started_at = c["State"]["StartedAt"].clone();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let c = docker_inspect("container", &name).unwrap();
    assert_eq!(c["State"]["StartedAt"], started_at, "no restart loop");
    assert_eq!(events(&env, &t, &id).await.len(), evs.len());

    // A person starting it again gets a fresh budget.
    let v = start(&env, &t, &id).await;
    assert_eq!(v["data"]["status"], "running");
}

#[tokio::test]
async fn an_oom_killed_workspace_is_reported_as_such() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let pid = env.project(&t, "p").await;

    // A process inside a healthy workspace outgrows the limit: recorded, the
    // workspace keeps running.
    let ok = create(
        &env,
        &t,
        json!({ "name": "ok", "type": "box", "projectId": pid }),
    )
    .await;
    start(&env, &t, &ok).await;
    let name = format!("berth-ws-{ok}");
    let out = std::process::Command::new("docker")
        .args([
            "exec",
            &name,
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=256M",
            "count=1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "dd must be killed");
    let evs = env
        .wait_for(
            &t,
            &format!("/api/workspaces/{ok}/events"),
            "an oom event",
            20,
            |d| d.as_array().unwrap().iter().any(|e| e["kind"] == "oom"),
        )
        .await;
    let oom = evs
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "oom")
        .unwrap();
    assert!(oom["message"].as_str().unwrap().contains("64 MB"), "{oom}");
    let (_, v) = env.get(&format!("/api/workspaces/{ok}"), &t).await;
    assert_eq!(v["data"]["status"], "running");

    // The main process is OOM killed every time: recovery gives up, says why.
    let hog = create(
        &env,
        &t,
        json!({ "name": "hog", "type": "hog", "projectId": pid }),
    )
    .await;
    start(&env, &t, &hog).await;
    let w = env
        .wait_for(&t, &format!("/api/workspaces/{hog}"), "error", 60, |d| {
            d["status"] == "error"
        })
        .await;
    let reason = w["statusReason"].as_str().unwrap();
    assert!(reason.starts_with("OOM killed 3 times"), "reason: {reason}");
    let (_, st) = env.get(&format!("/api/workspaces/{hog}/status"), &t).await;
    assert_eq!(st["data"]["containerInfo"]["OOMKilled"], true, "{st}");
    assert_eq!(st["data"]["containerInfo"]["exitCode"], 137);
}

#[tokio::test]
async fn limits_change_live_on_the_same_container() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let (id, _) = env.workspace(&t).await;
    let name = format!("berth-ws-{id}");
    start(&env, &t, &id).await;
    let before = docker_inspect("container", &name).unwrap();

    let path = format!("/api/workspaces/{id}/resources");
    let (s, v) = env
        .call(
            Method::PATCH,
            &path,
            Some(&t),
            Some(json!({ "cpus": 0.3, "memory": 80, "memorySwap": 160, "memoryReservation": 20 })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["config"]["resourceLimits"]["memory"], 80);
    let after = docker_inspect("container", &name).unwrap();
    assert_eq!(after["Id"], before["Id"], "same container");
    assert_eq!(
        after["State"]["StartedAt"], before["State"]["StartedAt"],
        "not restarted"
    );
    assert_eq!(after["HostConfig"]["NanoCpus"], 300_000_000i64);
    assert_eq!(after["HostConfig"]["Memory"], 80i64 * 1024 * 1024);
    assert_eq!(after["HostConfig"]["MemorySwap"], 160i64 * 1024 * 1024);
    assert_eq!(
        after["HostConfig"]["MemoryReservation"],
        20i64 * 1024 * 1024
    );
    let (_, st) = env.get(&format!("/api/workspaces/{id}/status"), &t).await;
    assert_eq!(st["data"]["resources"]["memoryLimit"], 80.0);

    // Lowering memory below the old swap works too (order matters to the kernel).
    let (s, v) = env
        .call(
            Method::PATCH,
            &path,
            Some(&t),
            Some(json!({ "memory": 48, "memorySwap": 48 })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let after = docker_inspect("container", &name).unwrap();
    assert_eq!(after["HostConfig"]["Memory"], 48i64 * 1024 * 1024);

    // Persisted: survives a stop and a fresh container.
    env.call(
        Method::POST,
        &format!("/api/workspaces/{id}/stop"),
        Some(&t),
        None,
    )
    .await;
    docker(&["rm", "-f", &name]);
    start(&env, &t, &id).await;
    let fresh = docker_inspect("container", &name).unwrap();
    assert_eq!(fresh["HostConfig"]["NanoCpus"], 300_000_000i64);
    assert_eq!(fresh["HostConfig"]["Memory"], 48i64 * 1024 * 1024);

    // Inconsistent values are a 400 that says what to fix; nothing changes.
    let cases = [
        (json!({ "memoryReservation": 100 }), "memoryReservation"),
        (json!({ "memory": 200 }), "memorySwap"),
        (json!({ "cpus": 0 }), "cpus"),
        (json!({ "cpus": 10000 }), "exceeds the host"),
        (json!({ "memory": -1 }), "memory"),
        (json!({ "gpus": 1 }), "gpus"),
    ];
    for (body, needle) in cases {
        let (s, v) = env
            .call(Method::PATCH, &path, Some(&t), Some(body.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let still = docker_inspect("container", &name).unwrap();
    assert_eq!(still["HostConfig"]["Memory"], 48i64 * 1024 * 1024);
    let evs = events(&env, &t, &id).await;
    assert_eq!(
        evs.iter().filter(|e| e["kind"] == "limits_changed").count(),
        2
    );
}

#[tokio::test]
async fn custom_health_checks_are_applied_validated_and_changeable() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let pid = env.project(&t, "p").await;
    let id = create(
        &env,
        &t,
        json!({
            "name": "w", "type": "box", "projectId": pid,
            "healthCheck": { "interval": 2, "retries": 5, "startPeriod": 3 }
        }),
    )
    .await;
    let (_, v) = env.get(&format!("/api/workspaces/{id}"), &t).await;
    assert_eq!(v["data"]["config"]["healthCheck"]["interval"], 2);
    start(&env, &t, &id).await;
    let name = format!("berth-ws-{id}");
    let c = docker_inspect("container", &name).unwrap();
    let h = &c["Config"]["Healthcheck"];
    assert_eq!(h["Interval"], 2_000_000_000i64);
    assert_eq!(h["Retries"], 5);
    assert_eq!(h["StartPeriod"], 3_000_000_000i64);
    assert!(
        h["Test"][1].as_str().unwrap().contains("/healthz"),
        "command kept"
    );

    // Turning it off recreates the running container, which keeps running.
    let (s, v) = env
        .call(
            Method::PUT,
            &format!("/api/workspaces/{id}"),
            Some(&t),
            Some(json!({ "healthCheck": { "enabled": false } })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "running");
    assert_eq!(v["data"]["config"]["healthCheck"]["enabled"], false);
    let c2 = docker_inspect("container", &name).unwrap();
    assert_ne!(c2["Id"], c["Id"]);
    assert_eq!(c2["State"]["Running"], true);
    assert_eq!(c2["Config"]["Healthcheck"]["Test"][0], "NONE");
    let (_, hv) = env.get(&format!("/api/workspaces/{id}/health"), &t).await;
    assert_eq!(hv["data"]["status"], "none");

    // Bad values are 400s with a message; nothing changes.
    let bad = [
        (json!({ "interval": 0 }), "interval"),
        (json!({ "retries": 0 }), "retries"),
        (json!({ "command": "  " }), "command"),
        (json!({ "timeout": 100000 }), "timeout"),
        (json!({ "bogus": 1 }), "bogus"),
        (json!({ "interval": "fast" }), "interval"),
    ];
    for (hc, needle) in bad {
        let (s, v) = env
            .post(
                "/api/workspaces",
                &t,
                json!({ "name": "x", "type": "box", "healthCheck": hc }),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{hc}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{v}"
        );
        let (s, _) = env
            .call(
                Method::PUT,
                &format!("/api/workspaces/{id}"),
                Some(&t),
                Some(json!({ "healthCheck": hc })),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
    // A type with no check of its own needs a command.
    let (s, v) = env
        .post(
            "/api/workspaces",
            &t,
            json!({ "name": "x", "type": "plain", "healthCheck": { "interval": 5 } }),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("command"));
    assert_eq!(
        docker_inspect("container", &name).unwrap()["Id"],
        c2["Id"],
        "refused changes leave the container alone"
    );
}

#[tokio::test]
async fn a_refused_update_changes_nothing_it_was_given() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let first = env.project(&t, "first").await;
    let second = env.project(&t, "second").await;
    let id = create(
        &env,
        &t,
        json!({ "name": "w", "type": "box", "projectId": first }),
    )
    .await;
    start(&env, &t, &id).await;
    let name = format!("berth-ws-{id}");
    let before = docker_inspect("container", &name).unwrap()["Id"].clone();
    // A valid project switch with an invalid health check; then with an
    // archive the running workspace refuses: each whole request is refused.
    for (body, status) in [
        (
            json!({ "currentProjectId": second, "healthCheck": { "interval": 0 } }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "currentProjectId": second, "name": "renamed", "archived": true }),
            StatusCode::CONFLICT,
        ),
    ] {
        let (s, v) = env
            .call(
                Method::PUT,
                &format!("/api/workspaces/{id}"),
                Some(&t),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, status, "{body}: {v}");
        let (_, v) = env.get(&format!("/api/workspaces/{id}"), &t).await;
        assert_eq!(v["data"]["currentProjectId"], first, "{body}: project kept");
        assert_eq!(v["data"]["name"], "w", "{body}: name kept");
        assert_eq!(v["data"]["status"], "running", "{body}");
        assert_eq!(
            docker_inspect("container", &name).unwrap()["Id"],
            before,
            "{body}: the container was left alone"
        );
    }
}

#[tokio::test]
async fn another_members_health_events_and_limits_are_404() {
    let env = TestEnv::new().await;
    let a = env.member().await;
    let b = env.member().await;
    let (id, _) = env.workspace(&a).await;
    for path in ["health", "events"] {
        let (s, _) = env.get(&format!("/api/workspaces/{id}/{path}"), &b).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let (s, _) = env
        .call(
            Method::PATCH,
            &format!("/api/workspaces/{id}/resources"),
            Some(&b),
            Some(json!({ "cpus": 0.1 })),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_engine_comes_back_the_watcher_recovers_what_should_run() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let (id, _) = env.workspace(&t).await;
    start(&env, &t, &id).await;
    let name = format!("berth-ws-{id}");

    // A second Berth on the same database, talking to the engine through a
    // relay, with its own watcher. The test env's own watcher is stopped.
    let mut env = env;
    env.stop_watcher();
    let sock = env.dir.path().join("engine.sock");
    let mut relay = EngineRelay::start(&sock);
    let relayed = env.relayed(&sock);
    let watcher = relayed.spawn_watcher();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // The engine "restarts": connections drop, and the container is down
    // when it comes back (no restart policy, as after a daemon restart).
    relay.cut();
    docker(&["kill", &name]);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        docker_inspect("container", &name).unwrap()["State"]["Running"],
        false,
        "nobody can have restarted it while the engine was away"
    );
    let _relay = EngineRelay::start(&sock);

    // The watcher reconnects, reconciles, and recovers the workspace.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let c = docker_inspect("container", &name).unwrap();
        if c["State"]["Running"] == true {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let evs = events(&env, &t, &id).await;
    assert!(
        evs.iter().any(|e| e["kind"] == "recovery_restart"
            && e["message"]
                .as_str()
                .unwrap()
                .contains("exited with code 137")),
        "{evs:?}"
    );
    watcher.abort();
}

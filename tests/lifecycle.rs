//! Workspace containers on the real engine: what `docker inspect` shows
//! (limits, health check, labels, mount, port, env), lifecycle transitions,
//! idempotency and serialisation, health, switch-project, reconcile.

mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{docker, docker_inspect, TestEnv};
use serde_json::{json, Value};

async fn post(env: &TestEnv, t: &str, path: String) -> (StatusCode, Value) {
    env.call(Method::POST, &path, Some(t), None).await
}

#[tokio::test]
async fn the_container_carries_limits_health_check_labels_mount_port_and_env() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let pid = env.project(&t, "p").await;
    let (s, v) = env
        .post(
            "/api/workspaces",
            &t,
            json!({
                "name": "w", "type": "box", "projectId": pid,
                "resourceLimits": { "cpus": 0.25, "memory": 48, "memorySwap": 96 }
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();

    let (s, v) = post(&env, &t, format!("/api/workspaces/{id}/start")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "running");
    let host_port = v["data"]["hostPort"].as_u64().expect("host port");

    let c = docker_inspect("container", &format!("berth-ws-{id}")).expect("container exists");
    let hc = &c["HostConfig"];
    assert_eq!(hc["NanoCpus"], 250_000_000i64);
    assert_eq!(hc["Memory"], 48i64 * 1024 * 1024);
    assert_eq!(hc["MemorySwap"], 96i64 * 1024 * 1024);
    // Reservation comes from the type (16 MB): overrides merge, not replace.
    assert_eq!(hc["MemoryReservation"], 16i64 * 1024 * 1024);

    let h = &c["Config"]["Healthcheck"];
    assert_eq!(h["Test"][0], "CMD-SHELL");
    assert!(h["Test"][1].as_str().unwrap().contains("/healthz"));
    assert_eq!(h["Interval"], 1_000_000_000i64);
    assert_eq!(h["Timeout"], 2_000_000_000i64);
    assert_eq!(h["Retries"], 2);

    let labels = &c["Config"]["Labels"];
    assert_eq!(labels["berth.managed"], "true");
    assert_eq!(labels["berth.workspace.id"], id.as_str());
    assert_eq!(labels["berth.workspace.type"], "box");
    assert_eq!(labels["berth.instance"], env.instance.as_str());

    let mounts = c["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Name"], format!("berth-project-{pid}").as_str());
    assert_eq!(mounts[0]["Destination"], "/workspace");

    let binding = &hc["PortBindings"]["8080/tcp"][0];
    assert_eq!(binding["HostIp"], "127.0.0.1");
    let published = &c["NetworkSettings"]["Ports"]["8080/tcp"][0];
    assert_eq!(published["HostIp"], "127.0.0.1");
    assert_eq!(published["HostPort"], host_port.to_string().as_str());

    let envs: Vec<&str> = c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        envs.contains(&format!("WORKSPACE_ID={id}").as_str()),
        "{envs:?}"
    );
    assert!(envs.contains(&"WORKSPACE_TYPE=box"), "{envs:?}");
    assert!(
        envs.contains(&format!("PROJECT_ID={pid}").as_str()),
        "{envs:?}"
    );
    assert!(envs.contains(&"FROM_TYPE=yes"), "{envs:?}");

    // The workspace answers on its published loopback port once its server
    // is up (`running` means the process started, not that it listens yet:
    // until then Docker's port forwarder accepts and closes).
    env.wait_for(
        &t,
        &format!("/api/workspaces/{id}/health"),
        "healthy",
        30,
        |d| d["status"] == "healthy",
    )
    .await;
    let body = reqwest::get(format!("http://127.0.0.1:{host_port}/healthz"))
        .await
        .expect("workspace answers on 127.0.0.1")
        .text()
        .await
        .unwrap();
    assert_eq!(body.trim(), "ok");
}

#[tokio::test]
async fn lifecycle_is_idempotent_reports_health_and_delete_keeps_the_volume() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let (id, pid) = env.workspace(&t).await;
    let name = format!("berth-ws-{id}");

    // Status before any container exists.
    let (_, v) = env.get(&format!("/api/workspaces/{id}/status"), &t).await;
    assert_eq!(v["data"]["status"], "stopped");
    assert_eq!(v["data"]["containerRunning"], false);
    assert!(v["data"]["containerInfo"].is_null());

    let (s, v) = post(&env, &t, format!("/api/workspaces/{id}/start")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let cid = v["data"]["containerId"].as_str().unwrap().to_string();
    // Starting again: same container, still running.
    let (s, v) = post(&env, &t, format!("/api/workspaces/{id}/start")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["containerId"], cid.as_str());
    assert_eq!(v["data"]["status"], "running");

    let st = env
        .wait_status(&t, &id, "healthy", |d| d["health"]["status"] == "healthy")
        .await;
    assert_eq!(st["status"], "running");
    assert_eq!(st["containerRunning"], true);
    assert_eq!(st["health"]["failingStreak"], 0);
    let log = st["health"]["log"].as_array().unwrap();
    assert!(!log.is_empty() && log.len() <= 3, "{log:?}");
    assert_eq!(log.last().unwrap()["exitCode"], 0);
    assert_eq!(st["containerInfo"]["id"], cid.as_str());

    let (s, v) = post(&env, &t, format!("/api/workspaces/{id}/restart")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "running");
    let c = docker_inspect("container", &name).unwrap();
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(c["Id"], cid.as_str(), "restart keeps the container");

    let (s, v) = post(&env, &t, format!("/api/workspaces/{id}/stop")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "stopped");
    assert!(v["data"]["hostPort"].is_null());
    let c = docker_inspect("container", &name).unwrap();
    assert_eq!(c["State"]["Running"], false);
    // Stopping again is fine.
    let (s, v) = post(&env, &t, format!("/api/workspaces/{id}/stop")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "stopped");
    let (_, v) = env.get(&format!("/api/workspaces/{id}/status"), &t).await;
    assert_eq!(v["data"]["status"], "stopped");
    assert_eq!(
        v["data"]["statusReason"],
        Value::Null,
        "a stop we asked for is no error"
    );

    // Restart of a stopped workspace starts it (same container).
    let (s, v) = post(&env, &t, format!("/api/workspaces/{id}/restart")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "running");
    assert_eq!(v["data"]["containerId"], cid.as_str());

    // Delete removes the container, never the volume.
    let (s, _) = env
        .call(
            Method::DELETE,
            &format!("/api/workspaces/{id}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        docker_inspect("container", &name).is_none(),
        "container removed"
    );
    assert!(
        docker_inspect("volume", &format!("berth-project-{pid}")).is_some(),
        "volume kept"
    );
    let (s, _) = env.get(&format!("/api/workspaces/{id}"), &t).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concurrent_starts_and_stops_on_one_workspace_are_serialised() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let (id, _) = env.workspace(&t).await;
    let path = format!("/api/workspaces/{id}/start");
    let calls = (0..6).map(|_| post(&env, &t, path.clone()));
    let results = futures_util::future::join_all(calls).await;
    let mut ids = std::collections::HashSet::new();
    for (s, v) in &results {
        assert_eq!(*s, StatusCode::OK, "{v}");
        assert_eq!(v["data"]["status"], "running");
        ids.insert(v["data"]["containerId"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "exactly one container: {ids:?}");
    let listed = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=berth.workspace.id={id}"),
    ]);
    assert_eq!(listed.lines().count(), 1);

    // Interleaved stops and starts end in a state the engine agrees with.
    let stop = format!("/api/workspaces/{id}/stop");
    let mixed = (0..6).map(|i| {
        let p = if i % 2 == 0 {
            stop.clone()
        } else {
            path.clone()
        };
        post(&env, &t, p)
    });
    for (s, v) in futures_util::future::join_all(mixed).await {
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (_, v) = env.get(&format!("/api/workspaces/{id}/status"), &t).await;
    let running = docker_inspect("container", &format!("berth-ws-{id}")).unwrap()["State"]
        ["Running"]
        .as_bool()
        .unwrap();
    assert_eq!(v["data"]["containerRunning"], running);
    assert_eq!(
        v["data"]["status"],
        if running { "running" } else { "stopped" }
    );
}

#[tokio::test]
async fn switch_project_remounts_the_new_volume_and_keeps_it_running() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let (id, p1) = env.workspace(&t).await;
    let p2 = env.project(&t, "second").await;
    let name = format!("berth-ws-{id}");

    // Stopped: the switch is recorded and the next start mounts p2.
    let (s, v) = env
        .post(
            &format!("/api/workspaces/{id}/switch-project"),
            &t,
            json!({ "projectId": p2 }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["currentProjectId"], p2.as_str());
    assert_eq!(v["data"]["status"], "stopped");
    let (s, _) = post(&env, &t, format!("/api/workspaces/{id}/start")).await;
    assert_eq!(s, StatusCode::OK);
    let c = docker_inspect("container", &name).unwrap();
    assert_eq!(
        c["Mounts"][0]["Name"],
        format!("berth-project-{p2}").as_str()
    );
    docker(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo from-p2 > /workspace/marker",
    ]);

    // Running: recreated on p1 and running again, p2's data stays in p2.
    let (s, v) = env
        .post(
            &format!("/api/workspaces/{id}/switch-project"),
            &t,
            json!({ "projectId": p1 }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "running");
    let c = docker_inspect("container", &name).unwrap();
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(
        c["Mounts"][0]["Name"],
        format!("berth-project-{p1}").as_str()
    );
    let listing = docker(&["exec", &name, "ls", "-a", "/workspace"]);
    assert!(
        !listing.contains("marker"),
        "p1 must not show p2's files: {listing}"
    );
    let env_vars = c["Config"]["Env"].to_string();
    assert!(env_vars.contains(&format!("PROJECT_ID={p1}")), "{env_vars}");

    // Back to p2: the file written there is still there.
    env.post(
        &format!("/api/workspaces/{id}/switch-project"),
        &t,
        json!({ "projectId": p2 }),
    )
    .await;
    let content = docker(&["exec", &name, "cat", "/workspace/marker"]);
    assert_eq!(content, "from-p2");

    // A project in use by a running workspace cannot be deleted.
    let (s, v) = env
        .call(
            Method::DELETE,
            &format!("/api/projects/{p2}?purge=true"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
}

#[tokio::test]
async fn status_follows_the_engine_and_a_restart_recovers_what_should_run() {
    let mut env = TestEnv::new().await;
    let t = env.member().await;
    let (id, _) = env.workspace(&t).await;
    let (gone, _) = env.workspace(&t).await;
    let (exited, _) = env.workspace(&t).await;
    for w in [&id, &gone, &exited] {
        let (s, v) = post(&env, &t, format!("/api/workspaces/{w}/start")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    // Removed behind Berth's back: status says so within the event's
    // latency (status answers from the engine view the events keep).
    docker(&["rm", "-f", &format!("berth-ws-{id}")]);
    let v = env
        .wait_status(&t, &id, "the removal", |d| d["status"] == "stopped")
        .await;
    assert_eq!(v["statusReason"], "container no longer exists");
    assert_eq!(v["containerRunning"], false);

    // Starting again recreates it.
    let (s, v) = post(&env, &t, format!("/api/workspaces/{id}/start")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["status"], "running");

    // While Berth is down, one container vanishes and one is killed.
    env.stop_watcher();
    docker(&["rm", "-f", &format!("berth-ws-{gone}")]);
    docker(&["kill", &format!("berth-ws-{exited}")]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let restarted = env.reopen().await;
    let changed = restarted.reconcile_all().await.unwrap();
    // The vanished one is now stopped; the killed one runs again on a new port.
    assert_eq!(changed, 2);
    let store = restarted.core().store();
    let rec = |w: &str| {
        let w = uuid::Uuid::parse_str(w).unwrap();
        async move { store.workspace(w).await.unwrap().unwrap() }
    };
    let g = rec(&gone).await;
    assert_eq!(g.status.as_str(), "stopped");
    assert_eq!(
        g.status_reason.as_deref(),
        Some("container no longer exists")
    );
    let e = rec(&exited).await;
    assert_eq!(
        e.status.as_str(),
        "running",
        "should run, so it was recovered"
    );
    let c = docker_inspect("container", &format!("berth-ws-{exited}")).unwrap();
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(
        e.host_port.map(u64::from),
        c["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
            .as_str()
            .and_then(|p| p.parse().ok())
    );
    let events = store.events(e.id, 10).await.unwrap();
    assert!(
        events
            .iter()
            .any(|ev| ev.kind.as_str() == "recovery_restart"
                && ev.message.contains("exited with code 137")),
        "{events:?}"
    );
    let r = rec(&id).await;
    assert_eq!(r.status.as_str(), "running");
}

#[tokio::test]
async fn a_workspace_without_a_project_or_with_a_missing_image_cannot_start() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let (s, v) = env
        .post(
            "/api/workspaces",
            &t,
            json!({ "name": "loose", "type": "box" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["data"]["id"].as_str().unwrap();
    let (s, v) = post(&env, &t, format!("/api/workspaces/{id}/start")).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no project"));
    let (_, v) = env.get(&format!("/api/workspaces/{id}"), &t).await;
    assert_eq!(
        v["data"]["status"], "stopped",
        "a refused start changes nothing"
    );
}

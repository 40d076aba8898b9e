//! The engine view (issue 19): status reads answer from what the event
//! watcher saw, not from an engine call per request, and follow changes
//! made behind Berth's back (`docker stop`, `start`, `kill`, `rm`, a health
//! check flipping) within the event latency; an event stream that drops is
//! noticed at once (readers ask the engine again) and the view rebuilt when
//! the engine answers, catching what happened in between; and the view is
//! rebuilt periodically besides. Against the real engine.

mod common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{docker, EngineRelay, TestEnv};
use serde_json::{json, Value};

/// A workspace of `type_name` on a new project, started; its id.
async fn started(env: &TestEnv, t: &str, type_name: &str) -> String {
    let pid = env.project(t, "p").await;
    let (s, v) = env
        .post(
            "/api/workspaces",
            t,
            json!({ "name": "w", "type": type_name, "projectId": pid }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    env.start(t, &id).await;
    id
}

async fn wait_synced(berth: &berth::service::Berth) -> berth::service::ViewState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = berth.observe().view().view_state("local");
        if v.synced {
            return v;
        }
        assert!(Instant::now() < deadline, "the view never synced: {v:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the status until `pred` holds; returns it and how long it took.
async fn status_until(
    env: &TestEnv,
    t: &str,
    id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let since = Instant::now();
    let deadline = since + Duration::from_secs(10);
    loop {
        let (s, v) = env.get(&format!("/api/workspaces/{id}/status"), t).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if pred(&v["data"]) {
            return (v["data"].clone(), since.elapsed());
        }
        assert!(Instant::now() < deadline, "status never showed {what}: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn status_follows_the_engine_without_asking_it() {
    // Nothing restarts what the test stops: the record must follow.
    let env = TestEnv::with(|c| c.recovery.enabled = false).await;
    let t = env.member().await;
    // No health check: no probe events while the reads are counted.
    let id = started(&env, &t, "plain").await;
    let name = format!("berth-ws-{id}");
    wait_synced(&env.berth).await;

    // The watcher looks at the container once for the `start` event of our
    // own start: let that pass before counting.
    let engine = env.berth.core().local_engine().clone();
    let mut before = engine.inspect_count();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = engine.inspect_count();
        if now == before {
            break;
        }
        before = now;
    }
    for _ in 0..50 {
        let (s, v) = env.get(&format!("/api/workspaces/{id}/status"), &t).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["data"]["status"], "running", "{v}");
        assert_eq!(v["data"]["containerRunning"], true, "{v}");
        assert!(v["data"]["resources"]["memoryUsage"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(
        engine.inspect_count(),
        before,
        "50 status reads of a running workspace asked the engine"
    );

    // Behind Berth's back, through the docker CLI.
    docker(&["stop", "-t", "1", &name]);
    let (st, took) = status_until(&env, &t, &id, "the stop", |d| {
        d["containerRunning"] == false && d["status"] == "stopped"
    })
    .await;
    assert!(
        st["statusReason"]
            .as_str()
            .is_some_and(|r| r.contains("exited with code")),
        "{st}"
    );
    eprintln!("docker stop seen by status after {took:?}");

    docker(&["start", &name]);
    let (st, took) = status_until(&env, &t, &id, "the start", |d| {
        d["containerRunning"] == true && d["status"] == "running"
    })
    .await;
    assert!(st["resources"].is_object(), "{st}");
    eprintln!("docker start seen by status after {took:?}");

    docker(&["kill", &name]);
    let (st, _) = status_until(&env, &t, &id, "the kill", |d| {
        d["containerRunning"] == false && d["status"] == "stopped"
    })
    .await;
    assert_eq!(st["containerInfo"]["exitCode"], 137, "{st}");

    docker(&["rm", "-f", &name]);
    let (st, _) = status_until(&env, &t, &id, "the removal", |d| {
        d["containerInfo"].is_null()
    })
    .await;
    assert_eq!(st["containerRunning"], false, "{st}");
    assert_eq!(env.berth.observe().view().view_state("local").containers, 0);
}

#[tokio::test]
async fn a_health_check_flip_shows_in_status_and_health() {
    let env = TestEnv::with(|c| c.recovery.enabled = false).await;
    let t = env.member().await;
    let id = started(&env, &t, "box").await;
    let name = format!("berth-ws-{id}");
    wait_synced(&env.berth).await;
    let (st, _) = status_until(&env, &t, &id, "healthy", |d| {
        d["health"]["status"] == "healthy"
    })
    .await;
    // Every probe is an event: the probe log grows without an engine call
    // on the read path.
    let probes = st["health"]["log"].as_array().unwrap().len();
    assert!(probes >= 1, "{st}");

    // The check reads this file (see `box_type`).
    docker(&["exec", &name, "rm", "/tmp/www/healthz"]);
    let (st, took) = status_until(&env, &t, &id, "unhealthy", |d| {
        d["health"]["status"] == "unhealthy"
    })
    .await;
    assert_eq!(st["containerRunning"], true, "{st}");
    eprintln!("unhealthy seen after {took:?} (2 failing probes 1 s apart)");
    let (s, h) = env.get(&format!("/api/workspaces/{id}/health"), &t).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["data"]["status"], "unhealthy", "{h}");
    assert!(h["data"]["failingStreak"].as_i64().unwrap() >= 2, "{h}");

    docker(&["exec", &name, "sh", "-c", "echo ok > /tmp/www/healthz"]);
    status_until(&env, &t, &id, "healthy again", |d| {
        d["health"]["status"] == "healthy"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_event_stream_is_noticed_and_the_view_rebuilt() {
    let env = TestEnv::with(|c| c.recovery.enabled = false).await;
    let (uid, t) = env.user(berth::domain::Role::Member).await;
    let id = started(&env, &t, "plain").await;
    let name = format!("berth-ws-{id}");

    // A second Berth on the same database, talking to the engine through a
    // relay the test can cut; the test env's own watcher is stopped.
    let mut env = env;
    env.stop_watcher();
    let sock = env.dir.path().join("engine.sock");
    let mut relay = EngineRelay::start(&sock);
    let relayed = env.relayed(&sock);
    let watcher = relayed.spawn_watcher();
    let first = wait_synced(&relayed).await;
    let user = relayed.core().store().user(uid).await.unwrap().unwrap();
    let wid = id.parse().unwrap();
    let st = relayed.workspace_status(&user, wid).await.unwrap();
    assert!(st.container.as_ref().unwrap().running);

    // The stream drops: noticed at once, and the view no longer answers.
    relay.cut();
    let deadline = Instant::now() + Duration::from_secs(5);
    while relayed.observe().view().view_state("local").synced {
        assert!(
            Instant::now() < deadline,
            "the dropped stream went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = relayed.workspace_status(&user, wid).await.err();
    assert!(
        matches!(err, Some(berth::service::ServiceError::Unavailable(_))),
        "a status read while the engine is away must not answer from memory: {err:?}"
    );

    // Meanwhile, behind Berth's back; long enough before the engine comes
    // back that the replayed events (from a second before reconnecting) do
    // not include it: only the rebuilt view can tell.
    docker(&["stop", "-t", "1", &name]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _relay = EngineRelay::start(&sock);
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let v = relayed.observe().view().view_state("local");
        if v.synced && v.resyncs > first.resyncs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the view was never rebuilt: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = relayed.workspace_status(&user, wid).await.unwrap();
    assert!(
        !st.container.as_ref().unwrap().running,
        "{:?}",
        st.container
    );
    assert_eq!(
        st.workspace.status,
        berth::domain::WorkspaceStatus::Stopped,
        "the record follows the rebuilt view"
    );
    watcher.abort();
}

#[tokio::test]
async fn the_view_is_rebuilt_periodically() {
    let env = TestEnv::with(|c| c.nodes.resync_s = 1).await;
    let first = wait_synced(&env.berth).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let later = env.berth.observe().view().view_state("local");
    assert!(later.synced);
    assert!(
        later.resyncs >= first.resyncs + 2,
        "resync_s = 1, yet {first:?} -> {later:?} in 3.5 s"
    );
}

#[tokio::test]
async fn a_stopped_watcher_leaves_no_view_that_looks_current() {
    let mut env = TestEnv::new().await;
    let t = env.member().await;
    let id = started(&env, &t, "plain").await;
    wait_synced(&env.berth).await;
    env.stop_watcher();
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.berth.observe().view().view_state("local").synced {
        assert!(Instant::now() < deadline, "still synced without a watcher");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Readers ask the engine again.
    let engine = env.berth.core().local_engine().clone();
    let before = engine.inspect_count();
    let (s, v) = env
        .call(
            Method::GET,
            &format!("/api/workspaces/{id}/status"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(engine.inspect_count() > before);
}

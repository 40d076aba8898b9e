//! Logs (plain and SSE) and resource statistics against the real engine.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{docker, TestEnv};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn talker(env: &TestEnv, t: &str) -> String {
    let pid = env.project(t, "p").await;
    let (s, v) = env
        .post(
            "/api/workspaces",
            t,
            json!({ "name": "talk", "type": "talker", "projectId": pid }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    let (s, v) = env
        .call(
            Method::POST,
            &format!("/api/workspaces/{id}/start"),
            Some(t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    id
}

async fn text(env: &TestEnv, t: &str, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let req = Request::get(path)
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    let (s, h, b) = env.send_raw(req).await;
    (s, h, String::from_utf8(b).expect("logs are text"))
}

/// Waits until the plain logs hold `needle`.
async fn logs_contain(env: &TestEnv, t: &str, id: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, body) = text(env, t, &format!("/api/workspaces/{id}/logs?tail=all")).await;
        if body.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "logs never showed {needle:?}: {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn plain_logs_are_demultiplexed_and_filtered_exactly() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let id = talker(&env, &t).await;
    let base = format!("/api/workspaces/{id}/logs");
    logs_contain(&env, &t, &id, "err-2").await;

    let (s, h, body) = text(&env, &t, &base).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let mut lines: Vec<&str> = body.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["err-1", "err-2", "out-1", "out-2"], "{body:?}");
    assert!(
        !body.bytes().any(|b| b < 0x20 && b != b'\n'),
        "no frame headers or control bytes: {body:?}"
    );

    let (_, _, body) = text(&env, &t, &format!("{base}?stream=stderr")).await;
    assert_eq!(body, "err-1\nerr-2\n");
    let (_, _, body) = text(&env, &t, &format!("{base}?stream=stdout&tail=all")).await;
    assert_eq!(body, "out-1\nout-2\n");
    let (_, _, body) = text(&env, &t, &format!("{base}?tail=0")).await;
    assert_eq!(body, "");

    let (_, _, body) = text(&env, &t, &format!("{base}?timestamps=true&stream=stdout")).await;
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body:?}");
    for (line, want) in lines.iter().zip(["out-1", "out-2"]) {
        let (ts, msg) = line.split_once(' ').unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{line}");
        assert_eq!(msg, want);
    }

    let future = chrono::Utc::now().timestamp() + 3600;
    let (_, _, body) = text(&env, &t, &format!("{base}?since={future}")).await;
    assert_eq!(body, "");
    let (_, _, body) = text(&env, &t, &format!("{base}?until=1")).await;
    assert_eq!(body, "");
    let past = chrono::Utc::now().timestamp() - 3600;
    let (_, _, body) = text(&env, &t, &format!("{base}?since={past}&stream=stderr")).await;
    assert_eq!(body, "err-1\nerr-2\n");

    let (_, h, _) = text(&env, &t, &format!("{base}?download=true")).await;
    let cd = h["content-disposition"].to_str().unwrap();
    assert!(cd.starts_with("attachment;") && cd.contains(&id), "{cd}");

    for bad in [
        "tail=abc",
        "tail=-1",
        "stream=bogus",
        "since=-5",
        "since=10&until=5",
        "nope=1",
    ] {
        let (s, v) = env.get(&format!("{base}?{bad}"), &t).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }

    // Still readable once stopped.
    env.call(
        Method::POST,
        &format!("/api/workspaces/{id}/stop"),
        Some(&t),
        None,
    )
    .await;
    let (s, _, body) = text(&env, &t, &format!("{base}?stream=stderr")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, "err-1\nerr-2\n");
}

#[tokio::test]
async fn logs_need_a_container_and_ownership() {
    let env = TestEnv::new().await;
    let a = env.member().await;
    let b = env.member().await;
    let (id, _) = env.workspace(&a).await;
    let (s, v) = env.get(&format!("/api/workspaces/{id}/logs"), &a).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("start it first"));
    for path in [
        "logs",
        "logs/stream",
        "stats",
        "container-stats",
        "stats/stream",
    ] {
        let (s, _) = env.get(&format!("/api/workspaces/{id}/{path}"), &b).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    // Stats of a workspace that is not running: 409 that says so.
    let (s, v) = env.get(&format!("/api/workspaces/{id}/stats"), &a).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
}

/// Reads SSE frames from a body until `pred` says stop (bounded).
async fn read_events(body: &mut Body, secs: u64, mut stop: impl FnMut(&str) -> bool) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; got so far: {seen:?}");
        match tokio::time::timeout(left, body.frame()).await {
            Ok(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    seen.push_str(&String::from_utf8_lossy(d));
                    if stop(&seen) {
                        return seen;
                    }
                }
            }
            Ok(None) => return seen,
            Ok(Some(Err(e))) => panic!("body error: {e}"),
            Err(_) => panic!("timed out; got so far: {seen:?}"),
        }
    }
}

fn data_lines(sse: &str) -> Vec<String> {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(|s| s.trim_start().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_logs_stream_new_lines_resume_and_close_the_engine_stream() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let id = talker(&env, &t).await;
    logs_contain(&env, &t, &id, "err-2").await;
    let name = format!("berth-ws-{id}");
    assert_eq!(env.berth.observe().active_log_streams(), 0);

    // `since` rather than `tail=0`: lines written between the request and
    // the engine connection opening still count, so the test cannot race.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let since = chrono::Utc::now().timestamp();
    let req = Request::get(format!("/api/workspaces/{id}/logs/stream?since={since}"))
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    let resp = env.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(env.berth.observe().active_log_streams(), 1);
    let mut body = resp.into_body();

    // Lines printed after connecting arrive in order, one event each; a
    // two-line write becomes two events.
    docker(&[
        "exec", &name, "sh", "-c",
        "echo live-1 > /proc/1/fd/1; printf 'live-2\\nlive-3\\n' > /proc/1/fd/1; echo live-err > /proc/1/fd/2",
    ]);
    let got = read_events(&mut body, 20, |s| {
        data_lines(s)
            .iter()
            .filter(|d| d.starts_with("live-"))
            .count()
            >= 4
    })
    .await;
    let data = data_lines(&got);
    let live: Vec<&str> = data
        .iter()
        .map(String::as_str)
        .filter(|d| d.starts_with("live-"))
        .collect();
    assert_eq!(live.len(), 4, "{got:?}");
    let out: Vec<&str> = live.iter().copied().filter(|d| *d != "live-err").collect();
    assert_eq!(
        out,
        ["live-1", "live-2", "live-3"],
        "stdout in order: {got:?}"
    );
    assert!(live.contains(&"live-err"));
    let ids: Vec<&str> = got.lines().filter_map(|l| l.strip_prefix("id: ")).collect();
    assert_eq!(ids.len(), 4, "every event carries an id: {got:?}");
    for id in &ids {
        assert!(chrono::DateTime::parse_from_rfc3339(id).is_ok(), "{id}");
    }
    // The id of the live-1 event (stderr lines may come first).
    let first_id = got
        .split("\n\n")
        .find(|ev| ev.contains("data: live-1"))
        .and_then(|ev| ev.lines().find_map(|l| l.strip_prefix("id: ")))
        .expect("live-1 has an id")
        .to_string();
    assert!(!got.contains("out-1"), "nothing from before `since`");

    // The client goes away: the engine stream is dropped with it.
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.berth.observe().active_log_streams() != 0 {
        assert!(Instant::now() < deadline, "log stream leaked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A reconnect with Last-Event-ID resumes after that line, by cookie.
    let req = Request::get(format!("/api/workspaces/{id}/logs/stream"))
        .header("cookie", format!("berth_session={t}"))
        .header("last-event-id", &first_id)
        .body(Body::empty())
        .unwrap();
    let resp = env.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let got = read_events(&mut body, 20, |s| s.contains("live-3")).await;
    let data: Vec<String> = data_lines(&got)
        .into_iter()
        .filter(|d| d != "live-err")
        .collect();
    assert_eq!(data.first().map(String::as_str), Some("live-2"), "{got:?}");
    assert!(!data.iter().any(|d| d == "live-1"), "{got:?}");

    // The container stops: an `end` event, then the stream closes.
    env.call(
        Method::POST,
        &format!("/api/workspaces/{id}/stop"),
        Some(&t),
        None,
    )
    .await;
    let got = read_events(&mut body, 20, |s| s.contains("event: end")).await;
    assert!(got.contains("event: end"), "{got:?}");
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.berth.observe().active_log_streams() != 0 {
        assert!(Instant::now() < deadline, "log stream leaked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stats(env: &TestEnv, t: &str, id: &str) -> Value {
    let (s, v) = env.get(&format!("/api/workspaces/{id}/stats"), t).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    v["data"].clone()
}

#[tokio::test]
async fn stats_show_limits_cpu_load_and_memory_without_cache() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let (busy, _) = env.workspace(&t).await;
    let (idle, _) = env.workspace(&t).await;
    for id in [&busy, &idle] {
        env.call(
            Method::POST,
            &format!("/api/workspaces/{id}/start"),
            Some(&t),
            None,
        )
        .await;
    }
    let s = stats(&env, &t, &idle).await;
    assert_eq!(s["memory"]["limit"], 64.0);
    assert!(s["memory"]["usage"].as_f64().unwrap() > 0.0);
    assert!(s["pids"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["network"]["interfaces"]["eth0"].is_object(), "{s}");
    assert!(s["cpu"]["usage"].as_u64().unwrap() > 0);
    let alias = {
        let (st, v) = env
            .get(&format!("/api/workspaces/{idle}/container-stats"), &t)
            .await;
        assert_eq!(st, StatusCode::OK);
        v["data"].clone()
    };
    assert_eq!(alias["memory"]["limit"], 64.0);

    docker(&[
        "exec",
        "-d",
        &format!("berth-ws-{busy}"),
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    // A percentage is over the time since the previous sample: take one
    // once the loop runs, so the next covers the loop alone (the first
    // sample, taken at the start, would mix in the idle time before it).
    tokio::time::sleep(Duration::from_millis(500)).await;
    stats(&env, &t, &busy).await;
    stats(&env, &t, &idle).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let b = stats(&env, &t, &busy).await;
    let i = stats(&env, &t, &idle).await;
    let (bc, ic) = (
        b["cpu"]["percent"].as_f64().unwrap(),
        i["cpu"]["percent"].as_f64().unwrap(),
    );
    // The busy loop is capped at 0.5 CPUs by its limit.
    assert!(bc > 25.0 && bc < 75.0, "busy cpu {bc}");
    assert!(ic < 10.0, "idle cpu {ic}");

    // A 40 MB file fills the page cache, not the reported usage.
    let before = stats(&env, &t, &idle).await;
    docker(&[
        "exec",
        &format!("berth-ws-{idle}"),
        "dd",
        "if=/dev/zero",
        "of=/tmp/big",
        "bs=1M",
        "count=40",
    ]);
    let after = stats(&env, &t, &idle).await;
    let grew =
        after["memory"]["usage"].as_f64().unwrap() - before["memory"]["usage"].as_f64().unwrap();
    let cache = after["memory"]["cache"].as_f64().unwrap();
    assert!(cache > 20.0, "page cache should hold the file: {after}");
    assert!(grew < 20.0, "usage grew {grew} MB: {before} -> {after}");

    // The sampler keeps a history for charts.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = stats(&env, &t, &busy).await;
        if s["history"].as_array().unwrap().len() >= 2 {
            let p = &s["history"][0];
            assert!(p["cpuPercent"].is_number() && p["memoryUsage"].is_number());
            break;
        }
        assert!(Instant::now() < deadline, "no history: {s}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn stats_stream_sends_figures_until_the_client_leaves() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let (id, _) = env.workspace(&t).await;
    env.call(
        Method::POST,
        &format!("/api/workspaces/{id}/start"),
        Some(&t),
        None,
    )
    .await;
    let (s, _) = env
        .get(&format!("/api/workspaces/{id}/stats/stream?interval=0"), &t)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let req = Request::get(format!("/api/workspaces/{id}/stats/stream?interval=1"))
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    let resp = env.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let got = read_events(&mut body, 15, |s| data_lines(s).len() >= 3).await;
    for d in data_lines(&got) {
        let v: Value = serde_json::from_str(&d).unwrap();
        assert_eq!(v["memory"]["limit"], 64.0);
    }
    assert!(env.berth.observe().active_log_streams() >= 1);
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(5);
    while env.berth.observe().active_log_streams() != 0 {
        assert!(Instant::now() < deadline, "stats stream leaked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn fleet_stats_cover_every_running_workspace_in_one_call() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let pid = env.project(&t, "fleet").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let mem = 48 + i; // a distinct limit per workspace, to check the pairing
        let (s, v) = env
            .post(
                "/api/workspaces",
                &t,
                json!({ "name": format!("w{i}"), "type": "box", "projectId": pid,
                        "resourceLimits": { "memory": mem, "memorySwap": mem, "memoryReservation": 8 } }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        ids.push((v["data"]["id"].as_str().unwrap().to_string(), mem));
    }
    for chunk in ids.chunks(5) {
        let paths: Vec<String> = chunk
            .iter()
            .map(|(id, _)| format!("/api/workspaces/{id}/start"))
            .collect();
        let starts = paths
            .iter()
            .map(|p| env.call(Method::POST, p, Some(&t), None));
        for (s, v) in futures_util::future::join_all(starts).await {
            assert_eq!(s, StatusCode::OK, "{v}");
        }
    }
    // One stopped workspace is left out.
    let (stopped, _) = env.workspace(&t).await;

    let started = Instant::now();
    let (s, v) = env.get("/api/workspaces/stats/live", &t).await;
    let cold = started.elapsed();
    assert_eq!(s, StatusCode::OK, "{v}");
    let list = v["data"].as_array().unwrap();
    assert_eq!(list.len(), 20);
    for (id, mem) in &ids {
        let e = list
            .iter()
            .find(|e| e["workspaceId"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!(e["memory"]["limit"], *mem as f64, "{e}");
        assert!(e["cpu"]["percent"].is_number(), "{e}");
        assert!(e["memory"]["usage"].as_f64().unwrap() > 0.0);
    }
    assert!(!list.iter().any(|e| e["workspaceId"] == stopped.as_str()));
    let started = Instant::now();
    let (s, _) = env.get("/api/workspaces/stats/live", &t).await;
    assert_eq!(s, StatusCode::OK);
    eprintln!(
        "fleet stats for 20 workspaces: first call {:?}, second call {:?}",
        cold,
        started.elapsed()
    );
}

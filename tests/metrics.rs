//! `GET /metrics` parses as Prometheus text and moves when a workspace
//! starts, a backup completes and a cleanup job acts. One test in this
//! binary: the recorder is process-wide.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use berth::domain::{now_millis, Role};
use common::TestEnv;
use serde_json::json;

/// Parses Prometheus text into (series, value), checking every line.
fn parse(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels in {line:?}");
        }
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        out.push((series.to_string(), v));
    }
    out
}

async fn scrape(env: &TestEnv, token: Option<&str>) -> (StatusCode, Vec<(String, f64)>) {
    let mut r = Request::get("/metrics");
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    let (s, _, body) = env.send_raw(r.body(Body::empty()).unwrap()).await;
    let text = String::from_utf8(body).unwrap();
    if s != StatusCode::OK {
        return (s, Vec::new());
    }
    (s, parse(&text))
}

fn value(m: &[(String, f64)], name: &str, labels: &[&str]) -> f64 {
    m.iter()
        .filter(|(s, _)| s.split('{').next() == Some(name) && labels.iter().all(|l| s.contains(l)))
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_what_happens() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let a = env.user(Role::Admin).await.1;
    let (id, pid) = env.workspace(&t).await;
    let (s, m) = scrape(&env, Some(env.berth.core().metrics_token())).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        value(
            &m,
            "berth_workspaces",
            &["type=\"box\"", "status=\"stopped\""]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "berth_workspaces",
            &["type=\"box\"", "status=\"running\""]
        ),
        0.0
    );

    env.start(&t, &id).await;
    let (_, m) = scrape(&env, Some(env.berth.core().metrics_token())).await;
    assert_eq!(
        value(
            &m,
            "berth_workspaces",
            &["type=\"box\"", "status=\"running\""]
        ),
        1.0
    );
    assert!(
        value(
            &m,
            "berth_http_requests_total",
            &["route=\"/api/workspaces/{id}/start\"", "status=\"200\""]
        ) >= 1.0
    );
    assert!(
        value(
            &m,
            "berth_http_request_duration_seconds_count",
            &["route=\"/api/workspaces/{id}/start\""]
        ) >= 1.0
    );

    let before = value(&m, "berth_backups_total", &["outcome=\"complete\""]);
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/backup"),
            &t,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, m) = scrape(&env, Some(env.berth.core().metrics_token())).await;
    assert_eq!(
        value(&m, "berth_backups_total", &["outcome=\"complete\""]),
        before + 1.0
    );
    let last = value(
        &m,
        "berth_backup_last_success_timestamp_seconds",
        &[&format!("project=\"{pid}\"")],
    );
    assert!((last - now_millis() as f64 / 1000.0).abs() < 60.0, "{last}");

    // A stale workspace stopped by the inactive job shows as a cleanup action.
    env.berth
        .core()
        .store()
        .set_last_activity(
            uuid::Uuid::parse_str(&id).unwrap(),
            Some(now_millis() - 48 * 3_600_000),
        )
        .await
        .unwrap();
    let labels = [
        "job=\"inactive\"",
        "action=\"stop_workspace\"",
        "outcome=\"done\"",
    ];
    let before = value(&m, "berth_cleanup_actions_total", &labels);
    let (s, v) = env
        .call(Method::POST, "/api/jobs/inactive/run", Some(&a), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, m) = scrape(&env, Some(env.berth.core().metrics_token())).await;
    assert_eq!(
        value(&m, "berth_cleanup_actions_total", &labels),
        before + 1.0
    );
    assert!(
        value(
            &m,
            "berth_job_runs_total",
            &["job=\"inactive\"", "outcome=\"ok\""]
        ) >= 1.0
    );
    assert_eq!(
        value(
            &m,
            "berth_workspaces",
            &["type=\"box\"", "status=\"running\""]
        ),
        0.0
    );

    // With a token configured, scraping needs it.
    let locked = TestEnv::with(|c| c.metrics.token = Some("scrape-secret".into())).await;
    assert_eq!(scrape(&locked, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        scrape(&locked, Some("wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        scrape(&locked, Some("scrape-secret")).await.0,
        StatusCode::OK
    );
}

/// The per-workspace health gauge behind the "unhealthy for 10 minutes"
/// alert: 1 while the check fails, back to 0 once the workspace stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unhealthy_gauge_follows_the_health_check() {
    let env = TestEnv::with(|c| c.recovery.enabled = false).await;
    let t = env.member().await;
    let (id, _) = env.workspace(&t).await;
    env.start(&t, &id).await;
    let series = format!("workspace=\"{id}\"");
    let gauge = |m: &[(String, f64)]| {
        m.iter()
            .find(|(s, _)| s.starts_with("berth_workspace_unhealthy{") && s.contains(&series))
            .map(|(_, v)| *v)
    };
    let wait_for = |want: f64, what: &'static str| {
        let env = &env;
        let gauge = &gauge;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let (_, m) = scrape(env, Some(env.berth.core().metrics_token())).await;
                if gauge(&m) == Some(want) {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "gauge never {what}: {:?}",
                    gauge(&m)
                );
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        }
    };
    env.wait_for(
        &t,
        &format!("/api/workspaces/{id}/health"),
        "healthy",
        30,
        |d| d["status"] == "healthy",
    )
    .await;
    wait_for(0.0, "0 while healthy").await;
    common::docker(&["exec", &format!("berth-ws-{id}"), "rm", "/tmp/www/healthz"]);
    wait_for(1.0, "1 while unhealthy").await;
    let (s, v) = env
        .call(
            Method::POST,
            &format!("/api/workspaces/{id}/stop"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    wait_for(0.0, "back to 0 when stopped").await;
}

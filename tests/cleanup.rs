//! The cleanup jobs and the job API against the real engine. The planners'
//! boundaries are unit-tested in `domain::cleanup`; here the executors act
//! on real containers and volumes, and only on this test's own.

mod common;

use axum::http::{Method, StatusCode};
use berth::domain::{now_millis, Role, WorkspaceStatus};
use berth::jobs::JobName;
use common::{docker, docker_inspect, TestEnv, TEST_IMAGE};
use serde_json::{json, Value};
use uuid::Uuid;

const H: i64 = 3_600_000;

async fn admin(env: &TestEnv) -> String {
    env.user(Role::Admin).await.1
}

async fn run_job(env: &TestEnv, t: &str, job: &str) -> Value {
    let (s, v) = env
        .call(Method::POST, &format!("/api/jobs/{job}/run"), Some(t), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"].clone()
}

async fn started(env: &TestEnv, t: &str) -> (String, String) {
    let (id, pid) = env.workspace(t).await;
    env.start(t, &id).await;
    (id, pid)
}

fn running(name: &str) -> bool {
    docker_inspect("container", name).is_some_and(|c| c["State"]["Running"] == true)
}

#[tokio::test]
async fn the_inactive_job_stops_idle_workspaces_only() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let a = admin(&env).await;
    let (stale, _) = started(&env, &t).await;
    let (fresh, _) = started(&env, &t).await;
    let (reports_use, _) = started(&env, &t).await;
    let store = env.berth.core().store();
    let old = now_millis() - 25 * H;
    for id in [&stale, &reports_use] {
        store
            .set_last_activity(Uuid::parse_str(id).unwrap(), Some(old))
            .await
            .unwrap();
    }
    // This one tells its activity probe it was used a minute ago.
    let recent = now_millis() - 60_000;
    docker(&[
        "exec",
        &format!("berth-ws-{reports_use}"),
        "sh",
        "-c",
        &format!("echo '{{\"status\":\"alive\",\"lastHeartbeat\":{recent}}}' > /tmp/www/activity"),
    ]);

    let run = run_job(&env, &a, "inactive").await;
    assert_eq!(run["outcome"], "ok", "{run}");
    assert_eq!(run["counts"]["inactiveContainers"], 1, "{run}");
    assert_eq!(run["details"][0]["resource"], stale.as_str());
    assert!(run["details"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("no activity for 25"));

    assert!(!running(&format!("berth-ws-{stale}")));
    assert!(running(&format!("berth-ws-{fresh}")));
    assert!(running(&format!("berth-ws-{reports_use}")));
    let (_, v) = env.get(&format!("/api/workspaces/{stale}"), &t).await;
    assert_eq!(v["data"]["status"], "stopped");
    let (_, v) = env.get(&format!("/api/workspaces/{reports_use}"), &t).await;
    let last = chrono::DateTime::parse_from_rfc3339(v["data"]["lastActivityAt"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert_eq!(last, recent, "the probe's answer is the last activity");
    // The volume stays.
    let (_, evs) = env
        .get(&format!("/api/workspaces/{stale}/events"), &t)
        .await;
    assert!(evs["data"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("stopped by cleanup"));
}

#[tokio::test]
async fn viewing_logs_counts_as_activity_and_status_polling_does_not() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let (id, _) = started(&env, &t).await;
    let wid = Uuid::parse_str(&id).unwrap();
    let old = now_millis() - 25 * H;
    env.berth
        .core()
        .store()
        .set_last_activity(wid, Some(old))
        .await
        .unwrap();
    env.get(&format!("/api/workspaces/{id}/status"), &t).await;
    env.get(&format!("/api/workspaces/{id}/health"), &t).await;
    let ws = env
        .berth
        .core()
        .store()
        .workspace(wid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ws.last_activity_at, Some(old), "status polling is not use");
    env.get(&format!("/api/workspaces/{id}/logs"), &t).await;
    let ws = env
        .berth
        .core()
        .store()
        .workspace(wid)
        .await
        .unwrap()
        .unwrap();
    assert!(ws.last_activity_at.unwrap() > now_millis() - 60_000);
    // An admin looking is not the owner using it.
    env.berth
        .core()
        .store()
        .set_last_activity(wid, Some(old))
        .await
        .unwrap();
    let a = admin(&env).await;
    env.get(&format!("/api/workspaces/{id}/logs"), &a).await;
    let ws = env
        .berth
        .core()
        .store()
        .workspace(wid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ws.last_activity_at, Some(old));
}

fn create_container(env: &TestEnv, labels: &[String]) -> String {
    let mut args = vec!["create".to_string()];
    for l in labels {
        args.push("--label".into());
        args.push(l.clone());
    }
    args.push("--label".into());
    args.push(format!("berth.instance={}", env.instance));
    args.push(TEST_IMAGE.into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&refs)
}

#[tokio::test]
async fn orphaned_containers_past_the_grace_period_are_removed_and_nothing_else() {
    let env = TestEnv::with(|c| c.cleanup.container_grace_min = 0).await;
    let t = env.member().await;
    let a = admin(&env).await;
    let (ws, _) = started(&env, &t).await;
    let orphan = create_container(
        &env,
        &[
            "berth.managed=true".into(),
            format!("berth.workspace.id={}", Uuid::new_v4()),
        ],
    );
    let unmanaged = create_container(&env, &[format!("berth.workspace.id={}", Uuid::new_v4())]);
    let run = run_job(&env, &a, "orphaned-containers").await;
    assert_eq!(run["counts"]["orphanedContainers"], 1, "{run}");
    assert!(
        docker_inspect("container", &orphan).is_none(),
        "orphan removed"
    );
    assert!(
        docker_inspect("container", &unmanaged).is_some(),
        "unmanaged kept"
    );
    assert!(
        running(&format!("berth-ws-{ws}")),
        "a workspace's container is kept"
    );

    // With the default grace period, a young orphan is left alone.
    let env2 = TestEnv::new().await;
    let a2 = admin(&env2).await;
    let young = create_container(
        &env2,
        &[
            "berth.managed=true".into(),
            format!("berth.workspace.id={}", Uuid::new_v4()),
        ],
    );
    let run = run_job(&env2, &a2, "orphaned-containers").await;
    assert_eq!(run["counts"]["orphanedContainers"], 0, "{run}");
    assert!(docker_inspect("container", &young).is_some());
}

#[tokio::test]
async fn orphaned_volumes_past_retention_are_removed_unless_mounted_or_unmanaged() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let a = admin(&env).await;
    let store = env.berth.core().store();
    let long_ago = now_millis() - 8 * 24 * H;

    // A deleted project past retention: its volume goes, and its record.
    let gone = env.project(&t, "gone").await;
    env.call(
        Method::DELETE,
        &format!("/api/projects/{gone}"),
        Some(&t),
        None,
    )
    .await;
    store
        .set_project_deleted_at(Uuid::parse_str(&gone).unwrap(), long_ago)
        .await
        .unwrap();
    // Deleted just now: kept.
    let recent = env.project(&t, "recent").await;
    env.call(
        Method::DELETE,
        &format!("/api/projects/{recent}"),
        Some(&t),
        None,
    )
    .await;
    // Deleted long ago but still mounted by some container: kept.
    let mounted = env.project(&t, "mounted").await;
    env.call(
        Method::DELETE,
        &format!("/api/projects/{mounted}"),
        Some(&t),
        None,
    )
    .await;
    store
        .set_project_deleted_at(Uuid::parse_str(&mounted).unwrap(), long_ago)
        .await
        .unwrap();
    let holder = docker(&[
        "create",
        "--label",
        &format!("berth.instance={}", env.instance),
        "-v",
        &format!("berth-project-{mounted}:/data"),
        TEST_IMAGE,
    ]);
    // Unmanaged, with a project label that means nothing: kept.
    let unmanaged = format!("test-unmanaged-{}", Uuid::new_v4().simple());
    docker(&[
        "volume",
        "create",
        "--label",
        &format!("berth.instance={}", env.instance),
        "--label",
        &format!("berth.project.id={}", Uuid::new_v4()),
        &unmanaged,
    ]);
    // Managed but no project record at all: its clock starts, it stays.
    let stray = format!("berth-project-{}", Uuid::new_v4());
    docker(&[
        "volume",
        "create",
        "--label",
        "berth.managed=true",
        "--label",
        &format!("berth.instance={}", env.instance),
        "--label",
        &format!("berth.project.id={}", Uuid::new_v4()),
        &stray,
    ]);

    let run = run_job(&env, &a, "orphaned-volumes").await;
    assert_eq!(run["counts"]["orphanedVolumes"], 1, "{run}");
    assert_eq!(
        run["details"][0]["resource"],
        format!("berth-project-{gone}").as_str()
    );
    assert!(docker_inspect("volume", &format!("berth-project-{gone}")).is_none());
    for kept in [
        format!("berth-project-{recent}"),
        format!("berth-project-{mounted}"),
        unmanaged,
        stray.clone(),
    ] {
        assert!(
            docker_inspect("volume", &kept).is_some(),
            "{kept} must stay"
        );
    }
    let clocks = store.volume_clocks().await.unwrap();
    assert!(clocks.contains_key(&stray), "{clocks:?}");
    assert!(store
        .projects_seen()
        .await
        .unwrap()
        .iter()
        .all(|p| p.id.to_string() != gone));

    // Once the stray volume's clock has run out, it goes too.
    store.clear_volume_clock(&stray).await.unwrap();
    store.start_volume_clock(&stray, long_ago).await.unwrap();
    let run = run_job(&env, &a, "orphaned-volumes").await;
    assert_eq!(run["counts"]["orphanedVolumes"], 1, "{run}");
    assert!(docker_inspect("volume", &stray).is_none());
    docker(&["rm", "-f", &holder]);
}

#[tokio::test]
async fn error_workspaces_are_recovered_or_cleaned() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let a = admin(&env).await;
    let (alive, _) = started(&env, &t).await;
    let (dead, _) = started(&env, &t).await;
    env.wait_status(&t, &alive, "healthy", |d| {
        d["health"]["status"] == "healthy"
    })
    .await;
    env.call(
        Method::POST,
        &format!("/api/workspaces/{dead}/stop"),
        Some(&t),
        None,
    )
    .await;
    let store = env.berth.core().store();
    for id in [&alive, &dead] {
        let mut w = store
            .workspace(Uuid::parse_str(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        w.status = WorkspaceStatus::Error;
        w.status_reason = Some("boom".into());
        store.save_workspace(&w).await.unwrap();
    }
    let run = run_job(&env, &a, "error-recovery").await;
    assert_eq!(run["counts"]["errorWorkspaces"], 2, "{run}");
    let (_, v) = env.get(&format!("/api/workspaces/{alive}"), &t).await;
    assert_eq!(v["data"]["status"], "running");
    assert!(running(&format!("berth-ws-{alive}")));
    let (_, v) = env.get(&format!("/api/workspaces/{dead}"), &t).await;
    assert_eq!(v["data"]["status"], "stopped");
    assert!(
        docker_inspect("container", &format!("berth-ws-{dead}")).is_none(),
        "container removed"
    );
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_predicts_the_real_run() {
    let env = TestEnv::with(|c| c.cleanup.container_grace_min = 0).await;
    let t = env.member().await;
    let a = admin(&env).await;
    let (stale, _) = started(&env, &t).await;
    env.berth
        .core()
        .store()
        .set_last_activity(
            Uuid::parse_str(&stale).unwrap(),
            Some(now_millis() - 48 * H),
        )
        .await
        .unwrap();
    let orphan = create_container(&env, &["berth.managed=true".into()]);

    let (s, dry) = env
        .call(
            Method::POST,
            "/api/workspaces/cleanup?dryRun=true",
            Some(&a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{dry}");
    let dry = &dry["data"];
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["inactiveContainers"], 1);
    assert_eq!(dry["orphanedContainers"], 1);
    assert_eq!(dry["orphanedVolumes"], 0);
    assert_eq!(dry["errorWorkspaces"], 0);
    assert!(dry["details"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["outcome"] == "planned"));
    assert!(
        running(&format!("berth-ws-{stale}")),
        "dry run stops nothing"
    );
    assert!(
        docker_inspect("container", &orphan).is_some(),
        "dry run removes nothing"
    );

    let (s, real) = env
        .call(Method::POST, "/api/workspaces/cleanup", Some(&a), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{real}");
    let real = &real["data"];
    assert_eq!(real["dryRun"], false);
    for k in [
        "inactiveContainers",
        "orphanedContainers",
        "orphanedVolumes",
        "errorWorkspaces",
    ] {
        assert_eq!(real[k], dry[k], "{k}");
    }
    let key = |d: &Value| (d["job"].clone(), d["action"].clone(), d["resource"].clone());
    let dk: Vec<_> = dry["details"].as_array().unwrap().iter().map(key).collect();
    let rk: Vec<_> = real["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    assert_eq!(dk, rk);
    assert!(
        real["details"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["outcome"] == "done"),
        "{real}"
    );
    assert!(!running(&format!("berth-ws-{stale}")));
    assert!(docker_inspect("container", &orphan).is_none());
}

#[tokio::test]
async fn a_failing_job_is_recorded_and_the_others_still_run() {
    let env = TestEnv::new().await;
    // A socket nobody listens on: every engine call is refused.
    let sock = env.dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let broken_engine = berth::engine::Engine::at_unix_socket(sock.to_str().unwrap()).unwrap();
    let broken = berth::service::Berth::new(
        env.berth.core().store().clone(),
        broken_engine,
        env.berth.core().config().clone(),
        2,
    );
    let report = berth::app::App::around(broken)
        .scheduler
        .run_cleanup(false)
        .await;
    assert_eq!(report.runs.len(), 4, "every job ran");
    for run in &report.runs {
        assert_eq!(run.outcome.as_str(), "failed");
        assert!(
            run.error.as_deref().unwrap().contains("unreachable"),
            "{:?}",
            run.error
        );
    }
    for job in JobName::CLEANUP {
        let runs = env
            .berth
            .core()
            .store()
            .job_runs(job.as_str(), 5)
            .await
            .unwrap();
        assert_eq!(runs.len(), 1, "{job:?} recorded");
        assert_eq!(runs[0].outcome.as_str(), "failed");
    }
    // The healthy service runs the same jobs fine afterwards.
    let report = env.scheduler.run_cleanup(false).await;
    assert!(!report.failed(), "{:?}", report.runs);
}

#[tokio::test]
async fn jobs_are_listed_never_overlap_and_are_admin_only() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let a = admin(&env).await;
    for (m, p) in [
        (Method::GET, "/api/jobs"),
        (Method::POST, "/api/jobs/inactive/run"),
        (Method::POST, "/api/workspaces/cleanup"),
    ] {
        let (s, v) = env.call(m, p, Some(&t), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{p}: {v}");
    }
    let (s, v) = env
        .call(Method::POST, "/api/jobs/nope/run", Some(&a), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("orphaned-volumes"));

    // A run that finds the previous one still going is skipped, not queued.
    let held = env.scheduler.locks().try_hold(JobName::Inactive).unwrap();
    let run = run_job(&env, &a, "inactive").await;
    assert_eq!(run["outcome"], "skipped", "{run}");
    drop(held);
    // Runs are listed by start time (ms): keep the two apart.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let run = run_job(&env, &a, "inactive").await;
    assert_eq!(run["outcome"], "ok", "{run}");

    let (s, v) = env.get("/api/jobs", &a).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let jobs = v["data"].as_array().unwrap();
    let names: Vec<&str> = jobs.iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "inactive",
            "orphaned-containers",
            "orphaned-volumes",
            "error-recovery",
            "backups",
            "volume-sizes",
            "audit-retention"
        ]
    );
    let inactive = &jobs[0];
    assert_eq!(inactive["schedule"], "0 * * * *");
    assert_eq!(inactive["enabled"], true);
    assert!(chrono::DateTime::parse_from_rfc3339(inactive["nextRun"].as_str().unwrap()).is_ok());
    let runs = inactive["recentRuns"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["outcome"], "ok", "newest first");
    assert_eq!(runs[1]["outcome"], "skipped");
    assert_eq!(jobs[2]["schedule"], "0 2 * * *");
    assert_eq!(jobs[3]["schedule"], "*/30 * * * *");
}

#[tokio::test]
async fn disabled_schedules_show_as_such() {
    let env = TestEnv::with(|c| c.cleanup.schedules.orphaned_volumes = "off".into()).await;
    let a = admin(&env).await;
    let (_, v) = env.get("/api/jobs", &a).await;
    let j = &v["data"][2];
    assert_eq!(j["name"], "orphaned-volumes");
    assert_eq!(j["enabled"], false);
    assert!(j["nextRun"].is_null());
    let _ = json!({});
}

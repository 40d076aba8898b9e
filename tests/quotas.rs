//! Quotas against the real engine: each limit refused at the limit (a 409
//! `quota_exceeded` that says what is used, what is needed and the limit)
//! and accepted below it; concurrent starts against a limit of one —
//! exactly one passes; stopping frees CPU and memory at once, deleting
//! backups frees storage; a user's limits and usage survive a restart;
//! the site's caps count everyone; only admins see or set others' quotas.

mod common;

use axum::http::{Method, StatusCode};
use berth::domain::Role;
use common::TestEnv;
use serde_json::{json, Value};

async fn quota(env: &TestEnv, token: &str) -> Value {
    let (s, v) = env.get("/api/auth/me/quota", token).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"].clone()
}

async fn set_quota(env: &TestEnv, admin: &str, user: uuid::Uuid, body: Value) -> Value {
    let (s, v) = env
        .call(
            Method::PUT,
            &format!("/api/users/{user}/quota"),
            Some(admin),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"].clone()
}

async fn start(env: &TestEnv, token: &str, id: &str) -> (StatusCode, Value) {
    env.call(
        Method::POST,
        &format!("/api/workspaces/{id}/start"),
        Some(token),
        None,
    )
    .await
}

fn refused(s: StatusCode, v: &Value, says: &str) {
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "quota_exceeded", "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains(says), "{m:?} should say {says:?}");
}

#[tokio::test]
async fn workspaces_and_running_limits_refuse_at_the_limit_and_stopping_frees() {
    let env = TestEnv::with(|c| c.quotas.member.running = Some(1)).await;
    let (_, admin) = env.user(Role::Admin).await;
    let (member_id, member) = env.user(Role::Member).await;
    set_quota(&env, &admin, member_id, json!({ "workspaces": 2 })).await;
    let q = quota(&env, &member).await;
    assert_eq!(q["workspaces"]["limit"], 2.0);
    assert_eq!(q["workspaces"]["source"], "user");
    assert_eq!(q["running"]["limit"], 1.0);
    assert_eq!(q["running"]["source"], "role");
    assert!(q["cpus"]["limit"].is_null());
    // Two workspaces, then no third.
    let (a, _) = env.workspace(&member).await;
    let (b, _) = env.workspace(&member).await;
    let pid = env.project(&member, "third").await;
    let (s, v) = env
        .post(
            "/api/workspaces",
            &member,
            json!({ "name": "c", "type": "box", "projectId": pid }),
        )
        .await;
    refused(s, &v, "2 of 2 workspaces: delete one first");
    // One running, then no second.
    let (s, v) = start(&env, &member, &a).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = start(&env, &member, &b).await;
    refused(s, &v, "running 1 of 1 workspaces: stop one first");
    // Starting what runs already needs nothing more.
    let (s, v) = start(&env, &member, &a).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(quota(&env, &member).await["running"]["used"], 1.0);
    // Stopping frees it at once.
    let (s, v) = env
        .post(&format!("/api/workspaces/{a}/stop"), &member, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(quota(&env, &member).await["running"]["used"], 0.0);
    let (s, v) = start(&env, &member, &b).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Deleting frees a workspace.
    let (s, v) = env
        .call(
            Method::DELETE,
            &format!("/api/workspaces/{a}"),
            Some(&member),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = env
        .post(
            "/api/workspaces",
            &member,
            json!({ "name": "c", "type": "box", "projectId": pid }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // The admin lifts the limit: "unlimited" over the role's.
    let q = set_quota(&env, &admin, member_id, json!({ "running": "unlimited" })).await;
    assert!(q["running"]["limit"].is_null(), "{q}");
    assert_eq!(q["running"]["source"], "user");
    // … and back to the role's default.
    let q = set_quota(&env, &admin, member_id, json!({})).await;
    assert_eq!(q["running"]["limit"], 1.0);
    assert_eq!(q["workspaces"]["source"], "role");
}

#[tokio::test]
async fn concurrent_starts_against_a_limit_of_one_let_exactly_one_through() {
    let env = TestEnv::with(|c| c.quotas.member.running = Some(1)).await;
    let (_, member) = env.user(Role::Member).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(env.workspace(&member).await.0);
    }
    let starts = ids.iter().map(|id| start(&env, &member, id));
    let answers = futures_util::future::join_all(starts).await;
    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let quota_refusals = answers
        .iter()
        .filter(|(s, v)| *s == StatusCode::CONFLICT && v["error"]["code"] == "quota_exceeded")
        .count();
    assert_eq!((ok, quota_refusals), (1, 3), "{answers:?}");
    let running = common::docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.instance={}", env.instance),
    ]);
    assert_eq!(running.split_whitespace().count(), 1, "one container runs");
}

#[tokio::test]
async fn cpu_and_memory_count_what_running_workspaces_reserve_and_resizes_too() {
    // The box type: 0.5 CPUs, 64 MB with a 16 MB reservation.
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    let (member_id, member) = env.user(Role::Member).await;
    set_quota(
        &env,
        &admin,
        member_id,
        json!({ "cpus": 1.0, "memoryMb": 48 }),
    )
    .await;
    let (a, _) = env.workspace(&member).await;
    let (b, _) = env.workspace(&member).await;
    let (c, _) = env.workspace(&member).await;
    assert_eq!(start(&env, &member, &a).await.0, StatusCode::OK);
    assert_eq!(start(&env, &member, &b).await.0, StatusCode::OK);
    let q = quota(&env, &member).await;
    assert_eq!(q["cpus"]["used"], 1.0);
    assert_eq!(q["memoryMb"]["used"], 32.0);
    let (s, v) = start(&env, &member, &c).await;
    refused(s, &v, "reserve 1 of 1 CPUs and this needs 0.5 more");
    // More CPU for a running one: refused at the limit…
    let (s, v) = env
        .call(
            Method::PATCH,
            &format!("/api/workspaces/{a}/resources"),
            Some(&member),
            Some(json!({ "cpus": 1.0 })),
        )
        .await;
    refused(s, &v, "CPUs");
    // …less is always fine, and frees room.
    let (s, v) = env
        .call(
            Method::PATCH,
            &format!("/api/workspaces/{a}/resources"),
            Some(&member),
            Some(json!({ "cpus": 0.25 })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Now memory is what stops the third: 2 × 16 MB of 48, and it needs 16…
    set_quota(&env, &admin, member_id, json!({ "memoryMb": 40 })).await;
    let (s, v) = start(&env, &member, &c).await;
    refused(
        s,
        &v,
        "reserve 32 of 40 MB of memory and this needs 16 MB more",
    );
    set_quota(
        &env,
        &admin,
        member_id,
        json!({ "memoryMb": 48, "cpus": 1.25 }),
    )
    .await;
    let (s, v) = start(&env, &member, &c).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn storage_counts_volumes_and_backups_and_deleting_a_backup_frees_it() {
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    let (member_id, member) = env.user(Role::Member).await;
    let pid = env.project(&member, "data").await;
    // 3 MB of data that does not compress, measured.
    let (_, p) = env.get(&format!("/api/projects/{pid}"), &member).await;
    let volume = p["data"]["volumeName"].as_str().unwrap().to_string();
    common::docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/data"),
        common::TEST_IMAGE,
        "sh",
        "-c",
        "head -c 3000000 /dev/urandom > /data/blob",
    ]);
    let (s, v) = env
        .get(
            &format!("/api/workspaces/projects/{pid}/volume-size"),
            &member,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let q = quota(&env, &member).await;
    assert!(
        q["storage"]["volumes"].as_u64().unwrap() >= 3_000_000,
        "{q}"
    );
    assert!(q["storage"]["measuredAt"].is_string(), "{q}");
    // Room for the volume and one backup of it, not two.
    set_quota(&env, &admin, member_id, json!({ "storageMb": 8 })).await;
    let backup = || {
        let (env, member, pid) = (&env, member.clone(), pid.clone());
        async move {
            env.post(
                &format!("/api/workspaces/projects/{pid}/backup"),
                &member,
                json!({}),
            )
            .await
        }
    };
    let (s, first) = backup().await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    let (s, v) = backup().await;
    refused(s, &v, "delete backups or data first");
    // Deleting the backup frees its storage.
    let id = first["data"]["id"].as_str().unwrap();
    let (s, v) = env
        .call(
            Method::DELETE,
            &format!("/api/backups/{id}"),
            Some(&member),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = backup().await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // A clone would double the volume: refused.
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/clone"),
            &member,
            json!({ "name": "copy" }),
        )
        .await;
    refused(s, &v, "storage");
    // The volume-sizes job measures every volume.
    let (s, v) = env
        .post("/api/jobs/volume-sizes/run", &admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["outcome"], "ok", "{v}");
}

#[tokio::test]
async fn limits_and_usage_survive_a_restart() {
    let env = TestEnv::new().await;
    let (_, admin) = env.user(Role::Admin).await;
    let (member_id, member) = env.user(Role::Member).await;
    set_quota(
        &env,
        &admin,
        member_id,
        json!({ "running": 3, "storageMb": 100, "cpus": 2.5 }),
    )
    .await;
    let (a, _) = env.workspace(&member).await;
    assert_eq!(start(&env, &member, &a).await.0, StatusCode::OK);
    let again = env.reopen().await;
    let u = again.core().store().user(member_id).await.unwrap().unwrap();
    let q = again.quotas().quota(&u).await.unwrap();
    assert_eq!(q.limits.running.0, Some(3));
    assert_eq!(q.limits.cpus.0, Some(2.5));
    assert_eq!(q.limits.storage_mb.0, Some(100));
    assert_eq!(q.usage.running, 1);
    assert_eq!(q.usage.workspaces, 1);
}

#[tokio::test]
async fn the_sites_caps_count_everyone() {
    let env = TestEnv::with(|c| c.quotas.site.cpus = Some(1.0)).await;
    let (_, one) = env.user(Role::Member).await;
    let (_, two) = env.user(Role::Member).await;
    let (a, _) = env.workspace(&one).await;
    let (b, _) = env.workspace(&two).await;
    let (c, _) = env.workspace(&two).await;
    assert_eq!(start(&env, &one, &a).await.0, StatusCode::OK);
    assert_eq!(start(&env, &two, &b).await.0, StatusCode::OK);
    let (s, v) = start(&env, &two, &c).await;
    refused(
        s,
        &v,
        "all running workspaces reserve 1 of the site's 1 CPUs",
    );
    let q = quota(&env, &two).await;
    assert_eq!(q["site"]["cpus"]["used"], 1.0);
    assert_eq!(q["site"]["cpus"]["limit"], 1.0);
}

#[tokio::test]
async fn only_admins_see_and_set_others_quotas() {
    let env = TestEnv::with(|c| c.quotas.member.workspaces = Some(5)).await;
    let (_, admin) = env.user(Role::Admin).await;
    let (member_id, member) = env.user(Role::Member).await;
    let (s, _) = env
        .get(&format!("/api/users/{member_id}/quota"), &member)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = env
        .call(
            Method::PUT,
            &format!("/api/users/{member_id}/quota"),
            Some(&member),
            Some(json!({ "running": "unlimited" })),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = env.get("/api/quotas", &member).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = env.get("/api/quotas", &admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mine = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["userId"] == member_id.to_string())
        .unwrap()
        .clone();
    assert_eq!(mine["workspaces"]["limit"], 5.0);
    // A bad limit says what to give.
    let (s, v) = env
        .call(
            Method::PUT,
            &format!("/api/users/{member_id}/quota"),
            Some(&admin),
            Some(json!({ "running": "lots" })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = env
        .call(
            Method::PUT,
            &format!("/api/users/{}/quota", uuid::Uuid::new_v4()),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

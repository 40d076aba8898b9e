//! Pagination of the lists that grow (issue 19): `limit` and an opaque
//! `cursor`, the list's own order kept across pages, stable while items
//! come and go, the total, clear 400s for a bad limit or cursor, and the
//! whole list as before when no `limit` is given. Real router, real store.

mod common;

use axum::http::StatusCode;
use common::TestEnv;
use serde_json::{json, Value};

/// Follows `nextCursor` from `path` (which has no query) with `limit`.
async fn all_pages(env: &TestEnv, t: &str, path: &str, limit: u32) -> (Vec<Value>, Vec<usize>) {
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit={limit}&cursor={c}"),
            None => format!("{path}?limit={limit}"),
        };
        let (s, v) = env.get(&url, t).await;
        assert_eq!(s, StatusCode::OK, "{url}: {v}");
        let page = v["data"].as_array().unwrap();
        assert!(page.len() <= limit as usize);
        assert_eq!(v["page"]["limit"], limit, "{v}");
        sizes.push(page.len());
        items.extend(page.iter().cloned());
        match v["page"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (items, sizes),
        }
        assert!(sizes.len() < 100, "pages never end");
    }
}

fn ids(v: &[Value]) -> Vec<String> {
    v.iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn workspaces_page_in_the_lists_order_with_a_total() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let other = env.member().await;
    let pid = env.project(&t, "p").await;
    for i in 0..7 {
        let (s, v) = env
            .post(
                "/api/workspaces",
                &t,
                json!({ "name": format!("w{i}"), "type": "box", "projectId": pid, "isDefault": i == 2 }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // Someone else's: never on this member's pages, nor in the total.
    let opid = env.project(&other, "o").await;
    env.post(
        "/api/workspaces",
        &other,
        json!({ "name": "theirs", "type": "box", "projectId": opid }),
    )
    .await;

    let (s, whole) = env.get("/api/workspaces", &t).await;
    assert_eq!(s, StatusCode::OK);
    assert!(whole.get("page").is_none(), "no limit, no page: {whole}");
    let whole = whole["data"].as_array().unwrap().clone();
    assert_eq!(whole.len(), 7);
    assert_eq!(whole[0]["name"], "w2", "the default comes first");

    let (paged, sizes) = all_pages(&env, &t, "/api/workspaces", 3).await;
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(ids(&paged), ids(&whole), "pages are the list, in its order");
    let (_, first) = env.get("/api/workspaces?limit=3", &t).await;
    assert_eq!(first["page"]["total"], 7, "{first}");

    // Items removed before the cursor, and added, do not shift the rest.
    let (_, p1) = env.get("/api/workspaces?limit=3", &t).await;
    let cursor = p1["page"]["nextCursor"].as_str().unwrap().to_string();
    let gone = p1["data"][1]["id"].as_str().unwrap().to_string();
    let (s, _) = env
        .call(
            axum::http::Method::DELETE,
            &format!("/api/workspaces/{gone}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    env.post(
        "/api/workspaces",
        &t,
        json!({ "name": "new", "type": "box", "projectId": pid }),
    )
    .await;
    let (_, p2) = env
        .get(&format!("/api/workspaces?limit=3&cursor={cursor}"), &t)
        .await;
    assert_eq!(
        ids(p2["data"].as_array().unwrap()),
        ids(&whole[3..6]),
        "the second page is what followed the first"
    );
    assert_eq!(p2["page"]["total"], 7, "one removed, one added");
}

#[tokio::test]
async fn bad_limits_and_cursors_are_clear_400s() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    for (url, says) in [
        ("/api/workspaces?limit=0", "between 1 and 500"),
        ("/api/workspaces?limit=501", "between 1 and 500"),
        (
            "/api/projects?limit=10&cursor=abc",
            "cursor: not one this API gave out",
        ),
        (
            "/api/workspaces?limit=10&cursor=c1.bm9wZQ",
            "cursor: not one this API gave out",
        ),
        ("/api/workspaces?cursor=c1.MDo1Ong", "give limit too"),
        ("/api/workspaces?limit=x", "limit"),
        ("/api/workspaces?page=2", "page"),
    ] {
        let (s, v) = env.get(url, &t).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{url}: {v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains(says), "{url}: {m}");
    }
}

#[tokio::test]
async fn projects_users_backups_and_events_page_too() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(env.project(&t, &format!("p{i}")).await);
    }
    let (_, whole) = env.get("/api/projects", &t).await;
    let whole = whole["data"].as_array().unwrap().clone();
    let (paged, sizes) = all_pages(&env, &t, "/api/projects", 2).await;
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(ids(&paged), ids(&whole));

    // Users: admins only, oldest first.
    let (_, admin) = env.session(berth::domain::Role::Admin).await;
    for _ in 0..3 {
        env.member().await;
    }
    let (_, every) = env.get("/api/users", &admin).await;
    let every = every["data"].as_array().unwrap().clone();
    let (paged, _) = all_pages(&env, &admin, "/api/users", 2).await;
    assert_eq!(ids(&paged), ids(&every));
    let (s, _) = env.get("/api/users?limit=2", &t).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A project without backups: an empty last page.
    let (s, v) = env
        .get(&format!("/api/projects/{}/backups?limit=5", made[0]), &t)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"], json!([]));
    assert_eq!(v["page"]["total"], 0);
    assert!(v["page"].get("nextCursor").is_none());

    // Events: 120 of them, newest first, by pages of 50.
    let (id, _) = env.workspace(&t).await;
    let wid = id.parse().unwrap();
    for i in 0..120 {
        env.berth
            .core()
            .store()
            .insert_event(
                wid,
                1_000_000 + i,
                &berth::domain::transition::Note::new(
                    berth::domain::EventKind::Started,
                    format!("e{i}"),
                ),
            )
            .await
            .unwrap();
    }
    let path = format!("/api/workspaces/{id}/events");
    let (_, newest) = env.get(&path, &t).await;
    assert!(newest.get("page").is_none());
    assert_eq!(
        newest["data"].as_array().unwrap().len(),
        50,
        "as before: the newest 50"
    );
    let (paged, sizes) = all_pages(&env, &t, &path, 50).await;
    assert_eq!(sizes, vec![50, 50, 20]);
    assert_eq!(paged[0]["message"], "e119");
    assert_eq!(paged[119]["message"], "e0");
}

#[tokio::test]
async fn a_jobs_history_pages() {
    let env = TestEnv::new().await;
    let (_, admin) = env.session(berth::domain::Role::Admin).await;
    for _ in 0..3 {
        let (s, v) = env
            .post(
                "/api/jobs/error-recovery/run?dryRun=true",
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (paged, sizes) = all_pages(&env, &admin, "/api/jobs/error-recovery/runs", 2).await;
    assert_eq!(sizes, vec![2, 1]);
    let (_, whole) = env.get("/api/jobs/error-recovery/runs", &admin).await;
    assert_eq!(ids(&paged), ids(whole["data"].as_array().unwrap()));
    let (s, v) = env.get("/api/jobs/nope/runs?limit=2", &admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let t = env.member().await;
    let (s, _) = env.get("/api/jobs/error-recovery/runs", &t).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

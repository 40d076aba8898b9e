//! The store on its own (no engine): what concurrent writers of one
//! workspace row leave behind, and that rows written by earlier versions
//! still load. Runs on SQLite, and on PostgreSQL under `scripts/test`
//! (`BERTH_TEST_DATABASE_URL`).

use berth::domain::{Role, Workspace, WorkspaceSettings, WorkspaceStatus};
use berth::store::Store;
use uuid::Uuid;

/// A fresh store: a SQLite file in `dir`, or a database of its own on the
/// PostgreSQL server the test run was given.
async fn store(dir: &std::path::Path) -> (Store, String) {
    let url = match std::env::var("BERTH_TEST_DATABASE_URL") {
        Ok(server) => {
            use sqlx::Connection;
            let server = server.trim_end_matches('/');
            let db = format!("store_{}", Uuid::new_v4().simple());
            let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
                .await
                .expect("the PostgreSQL server of BERTH_TEST_DATABASE_URL");
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&mut admin)
                .await
                .expect("a database of its own");
            format!("{server}/{db}")
        }
        Err(_) => format!("sqlite://{}?mode=rwc", dir.join("berth.db").display()),
    };
    (Store::connect(&url).await.expect("store"), url)
}

fn workspace(owner: Uuid, name: &str, is_default: bool) -> Workspace {
    Workspace {
        id: Uuid::new_v4(),
        owner_id: owner,
        name: name.into(),
        description: String::new(),
        type_name: "box".into(),
        project_id: None,
        node: "local".into(),
        is_default,
        settings: WorkspaceSettings::default(),
        status: WorkspaceStatus::Stopped,
        status_reason: None,
        container_id: None,
        host_port: None,
        last_activity_at: Some(1_000),
        created_at: 1_000,
        updated_at: 1_000,
    }
}

#[tokio::test]
async fn a_stale_record_saved_later_keeps_newer_activity_and_default() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path()).await;
    let owner = store
        .insert_user("owner@test.example", "x", Role::Member, 1_000)
        .await
        .unwrap();
    let first = workspace(owner.id, "first", true);
    let second = workspace(owner.id, "second", false);
    store.insert_workspace(&first).await.unwrap();
    store.insert_workspace(&second).await.unwrap();

    // A status change reads the record (under the workspace's lock)…
    let mut stale = store.workspace(second.id).await.unwrap().unwrap();
    // …meanwhile the proxy records activity and the owner makes it the
    // default, neither of which takes that lock…
    store.touch_activity(second.id, 5_000).await.unwrap();
    store
        .set_default_workspace(owner.id, second.id, 5_000)
        .await
        .unwrap();
    // …and then the status change is saved from what it read.
    stale.status = WorkspaceStatus::Running;
    stale.container_id = Some("c1".into());
    stale.description = "what it is for".into();
    stale.updated_at = 6_000;
    store.save_workspace(&stale).await.unwrap();

    let now = store.workspace(second.id).await.unwrap().unwrap();
    assert_eq!(now.status, WorkspaceStatus::Running);
    assert_eq!(now.container_id.as_deref(), Some("c1"));
    assert_eq!(now.description, "what it is for");
    assert_eq!(now.name, "second");
    assert_eq!(now.last_activity_at, Some(5_000), "activity kept");
    assert!(now.is_default, "default kept");
    let first_now = store.workspace(first.id).await.unwrap().unwrap();
    assert!(!first_now.is_default, "one default only");

    // A save with newer activity (a start) moves it forward, never back.
    let mut started = now.clone();
    started.last_activity_at = Some(7_000);
    store.save_workspace(&started).await.unwrap();
    let mut older = started.clone();
    older.last_activity_at = Some(2_000);
    store.save_workspace(&older).await.unwrap();
    assert_eq!(
        store
            .workspace(second.id)
            .await
            .unwrap()
            .unwrap()
            .last_activity_at,
        Some(7_000)
    );
    store.close().await;
}

#[tokio::test]
async fn settings_rows_written_by_earlier_versions_load() {
    let dir = tempfile::tempdir().unwrap();
    let (store, url) = store(dir.path()).await;
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&url).await.unwrap();
    let owner = store
        .insert_user("old@test.example", "x", Role::Member, 1_000)
        .await
        .unwrap();
    let w = workspace(owner.id, "old", true);
    store.insert_workspace(&w).await.unwrap();
    // `workspaces.settings` as versions up to this one wrote it; renaming a
    // field of the API's request body must not make these fail to load.
    for stored in [
        r#"{"resources":{}}"#,
        r#"{"resources":{"cpus":1.5,"memory":512,"memorySwap":1024,"memoryReservation":256}}"#,
        r#"{"resources":{"cpus":2.0},"health_check":{"enabled":true,"command":"true","interval":5,"timeout":3,"retries":2,"startPeriod":1}}"#,
    ] {
        sqlx::query("UPDATE workspaces SET settings = $1 WHERE id = $2")
            .bind(stored)
            .bind(w.id.to_string())
            .execute(&raw)
            .await
            .unwrap();
        let loaded = store.workspace(w.id).await;
        assert!(
            matches!(loaded, Ok(Some(_))),
            "{stored} loads: {:?}",
            loaded.err()
        );
    }
    let loaded = store.workspace(w.id).await.unwrap().unwrap();
    assert_eq!(loaded.settings.resources.cpus, Some(2.0));
    assert_eq!(loaded.settings.health_check.interval, Some(5));

    // What this version writes: row format 1, named as above (a change
    // here is a new row format, with a reader for this one).
    let mut w2 = loaded.clone();
    w2.settings.resources.memory_swap = Some(2048);
    w2.settings.health_check.start_period = Some(7);
    store.save_workspace(&w2).await.unwrap();
    let text: String = sqlx::query_scalar("SELECT settings FROM workspaces WHERE id = $1")
        .bind(w.id.to_string())
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(
        text,
        r#"{"v":1,"resources":{"cpus":2.0,"memorySwap":2048},"health_check":{"enabled":true,"command":"true","interval":5,"timeout":3,"retries":2,"startPeriod":7}}"#
    );
    assert_eq!(
        store.workspace(w.id).await.unwrap().unwrap().settings,
        w2.settings
    );

    // A row from a newer Berth is refused with a message, not half-read.
    sqlx::query("UPDATE workspaces SET settings = $1 WHERE id = $2")
        .bind(r#"{"v":2,"limits":{}}"#)
        .bind(w.id.to_string())
        .execute(&raw)
        .await
        .unwrap();
    let err = store.workspace(w.id).await.unwrap_err().to_string();
    assert!(err.contains("newer Berth"), "{err}");
    raw.close().await;
    store.close().await;
}

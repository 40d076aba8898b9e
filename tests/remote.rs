//! Remote copies of backups (`backups.remote`) against a real S3 API on
//! loopback: moto's server (PyPI `moto[server]`, installed into
//! `target/pytools` on first use). A copy is sent after each backup with its
//! catalogue entry, fetched back (checksum checked) when the local archive
//! is gone, refused when damaged, deleted with the backup, and retried by
//! the backups job after the store was down.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use berth::config::RemoteConfig;
use berth::domain::Role;
use common::moto::{free_port, Moto, BUCKET};
use common::{docker, TestEnv};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn env_with_remote(port: u16, keep_local: Option<u32>) -> TestEnv {
    TestEnv::with(|c| {
        c.backups.remote = RemoteConfig {
            url: format!("s3://{BUCKET}/team"),
            endpoint: format!("http://127.0.0.1:{port}"),
            region: "us-east-1".into(),
            access_key_id: "berth-test".into(),
            secret_access_key: "berth-test-secret".into(),
            allow_http: true,
            keep_local,
        };
    })
    .await
}

/// Polls a backup until its remote copy is in `state`.
async fn remote_state(env: &TestEnv, token: &str, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v) = env.get(&format!("/api/backups/{id}"), token).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["data"]["remote"]["state"] == state {
            return v["data"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "remote copy never became {state}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn backup(env: &TestEnv, token: &str, pid: &str) -> Value {
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/backup"),
            token,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["remote"]["state"], "pending", "{v}");
    v["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_go_offsite_come_back_when_lost_and_go_with_their_entry() {
    let moto = Moto::start(free_port()).await;
    let env = env_with_remote(moto.port, None).await;
    let token = env.member().await;
    let pid = env.project(&token, "offsite").await;
    // Over 64 MiB of incompressible data: the archive goes up in parts.
    let dir = PathBuf::from(docker(&[
        "volume",
        "inspect",
        "-f",
        "{{.Mountpoint}}",
        &format!("berth-project-{pid}"),
    ]));
    let mut blob = vec![0u8; 72 * 1024 * 1024];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in blob.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(dir.join("blob"), &blob).unwrap();
    std::fs::write(dir.join("notes.txt"), "keep me\n").unwrap();

    let made = backup(&env, &token, &pid).await;
    let id = made["id"].as_str().unwrap().to_string();
    let b = remote_state(&env, &token, &id, "stored").await;
    assert!(b["remote"]["storedAt"].is_string(), "{b}");
    assert!(b["remote"]["error"].is_null(), "{b}");
    let want = b["sha256"].as_str().unwrap().to_string();
    assert!(b["sizeBytes"].as_u64().unwrap() > 64 * 1024 * 1024, "{b}");

    // In the bucket: the archive, byte for byte, and its catalogue entry.
    let archive_key = format!("team/{pid}/{id}.tar.zst");
    let entry_key = format!("team/{pid}/{id}.json");
    let bytes = moto.get(&archive_key).await.expect("the archive is stored");
    assert_eq!(sha(&bytes), want, "the remote archive is the local one");
    let entry = moto.get(&entry_key).await.expect("the entry is stored");
    let entry: Value = serde_json::from_slice(&entry).unwrap();
    assert_eq!(entry["sha256"], want.as_str());
    assert_eq!(entry["projectName"], "offsite");
    assert_eq!(entry["archive"], format!("{id}.tar.zst"));
    assert_eq!(entry["v"], 1, "the entry's format is versioned: {entry}");

    // The local archive is lost: a download fetches it back.
    let local = env.dir.path().join(format!("backups/{id}.tar.zst"));
    assert!(local.exists(), "{}", local.display());
    std::fs::remove_file(&local).unwrap();
    let req = axum::http::Request::builder()
        .uri(format!("/api/backups/{id}/download"))
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let (s, _, body) = env.send_raw(req).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sha(&body), want);
    assert!(local.exists(), "the fetched archive is kept");

    // A damaged remote copy is refused, and nothing half-fetched stays.
    std::fs::remove_file(&local).unwrap();
    moto.put(&archive_key, b"not an archive".to_vec()).await;
    let (s, v) = env
        .post(&format!("/api/backups/{id}/verify"), &token, json!({}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("damaged"),
        "{v}"
    );
    assert!(!local.exists());
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path().join("backups"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".berth-archive-dir")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Put right, it restores the project.
    moto.put(&archive_key, bytes).await;
    std::fs::write(dir.join("notes.txt"), "changed\n").unwrap();
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/restore"),
            &token,
            json!({ "backupId": id }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let volume = v["data"]["volumeName"].as_str().unwrap();
    let restored = PathBuf::from(docker(&[
        "volume",
        "inspect",
        "-f",
        "{{.Mountpoint}}",
        volume,
    ]));
    assert_eq!(
        std::fs::read_to_string(restored.join("notes.txt")).unwrap(),
        "keep me\n"
    );

    // Deleting the backup deletes its remote copy and entry.
    let (s, v) = env
        .call(
            Method::DELETE,
            &format!("/api/backups/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(moto.get(&archive_key).await.is_none());
    assert!(moto.get(&entry_key).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_failed_while_the_store_was_down_is_sent_by_the_backups_job() {
    let port = free_port();
    let moto = Moto::start(port).await;
    let env = env_with_remote(port, None).await;
    let (_, admin) = env.user(Role::Admin).await;
    let pid = env.project(&admin, "outage").await;
    drop(moto);

    let made = backup(&env, &admin, &pid).await;
    let id = made["id"].as_str().unwrap().to_string();
    let b = remote_state(&env, &admin, &id, "failed").await;
    let error = b["remote"]["error"].as_str().unwrap();
    assert!(error.contains("remote store"), "{b}");
    // The backup itself is fine.
    assert_eq!(b["state"], "complete");

    // A dry run says what it would send; the run sends it.
    let moto = Moto::start(port).await;
    let (s, v) = env
        .post("/api/jobs/backups/run?dryRun=true", &admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let planned: Vec<&Value> = v["data"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "send_remote" && d["resource"] == id.as_str())
        .collect();
    assert_eq!(planned.len(), 1, "{v}");
    assert_eq!(planned[0]["outcome"], "planned");
    assert!(
        planned[0]["reason"].as_str().unwrap().contains("failed"),
        "{v}"
    );
    assert_eq!(
        env.get(&format!("/api/backups/{id}"), &admin).await.1["data"]["remote"]["state"],
        "failed",
        "a dry run changes nothing"
    );

    let (s, v) = env.post("/api/jobs/backups/run", &admin, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let sent = v["data"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["action"] == "send_remote" && d["resource"] == id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(sent["outcome"], "done", "{v}");
    let b = remote_state(&env, &admin, &id, "stored").await;
    let bytes = moto
        .get(&format!("team/{pid}/{id}.tar.zst"))
        .await
        .expect("sent");
    assert_eq!(sha(&bytes), b["sha256"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keep_local_older_archives_live_only_remotely_until_needed() {
    let moto = Moto::start(free_port()).await;
    let env = env_with_remote(moto.port, Some(1)).await;
    let (_, admin) = env.user(Role::Admin).await;
    let pid = env.project(&admin, "lean").await;
    let first = backup(&env, &admin, &pid).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let want = remote_state(&env, &admin, &first, "stored").await["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let second = backup(&env, &admin, &pid).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    remote_state(&env, &admin, &second, "stored").await;
    let file = |id: &str| env.dir.path().join(format!("backups/{id}.tar.zst"));

    let evictions = |v: &Value| -> Vec<(String, String)> {
        v["data"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["action"] == "evict_local")
            .map(|d| {
                (
                    d["resource"].as_str().unwrap().to_string(),
                    d["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (s, v) = env
        .post("/api/jobs/backups/run?dryRun=true", &admin, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(evictions(&v), [(first.clone(), "planned".to_string())]);
    assert!(file(&first).exists(), "a dry run removes nothing");

    let (s, v) = env.post("/api/jobs/backups/run", &admin, json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(evictions(&v), [(first.clone(), "done".to_string())]);
    assert!(!file(&first).exists());
    assert!(file(&second).exists(), "the newest stays here");
    let (_, v) = env.get(&format!("/api/backups/{first}"), &admin).await;
    assert_eq!(v["data"]["storedLocally"], false, "{v}");
    assert_eq!(v["data"]["remote"]["state"], "stored", "{v}");

    // Needed again: fetched back, checksum checked.
    let req = axum::http::Request::builder()
        .uri(format!("/api/backups/{first}/download"))
        .header("authorization", format!("Bearer {admin}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let (s, _, body) = env.send_raw(req).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sha(&body), want);
    let (_, v) = env.get(&format!("/api/backups/{first}"), &admin).await;
    assert_eq!(v["data"]["storedLocally"], true, "{v}");
}

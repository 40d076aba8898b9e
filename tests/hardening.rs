//! What an attack on the running service found, each as a test against the
//! real engine: hostile archives (a hard link to a symlink, a bomb, a huge
//! declared header, set-id bits), volumes written to while they are backed
//! up and cloned, login throttling, the metrics endpoint, and input with
//! control characters or out-of-range numbers.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use berth::domain::Role;
use common::{docker, TestEnv};
use serde_json::{json, Value};
use uuid::Uuid;

fn mountpoint(env: &TestEnv, project: &str) -> PathBuf {
    let rt = tokio::runtime::Handle::current();
    let p = tokio::task::block_in_place(|| {
        rt.block_on(
            env.berth
                .core()
                .store()
                .project(Uuid::parse_str(project).unwrap()),
        )
    })
    .unwrap()
    .unwrap();
    PathBuf::from(docker(&[
        "volume",
        "inspect",
        "-f",
        "{{.Mountpoint}}",
        &p.volume_name,
    ]))
}

fn zstd(tar: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(tar, 3).unwrap()
}

/// A tar built entry by entry with the `tar` crate.
fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().unwrap()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h
}

async fn upload(env: &TestEnv, token: &str, project: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let r = Request::post(format!("/api/projects/{project}/backups/upload"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/octet-stream")
        .body(Body::from(body))
        .unwrap();
    env.send(r).await
}

async fn restore(env: &TestEnv, token: &str, project: &str, backup: &str) -> (StatusCode, Value) {
    env.post(
        &format!("/api/workspaces/projects/{project}/restore"),
        token,
        json!({ "backupId": backup, "stopWorkspace": true }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_verification_accepts_restore_restores() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let p = env.project(&t, "p").await;
    // A symlink, then a hard link to that symlink (as `ln` makes of a
    // symlink, and as the engine's archive API writes it).
    let tar = tar_of(|b| {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, "s", "target-elsewhere").unwrap();
        let mut h = header(tar::EntryType::Link, 0o777, 0);
        b.append_link(&mut h, "h", "s").unwrap();
        let mut h = header(tar::EntryType::Regular, 0o644, 3);
        b.append_data(&mut h, "f", &b"hi\n"[..]).unwrap();
    });
    let (s, v) = upload(&env, &t, &p, zstd(&tar)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    let (s, v) = restore(&env, &t, &p, &id).await;
    assert_eq!(s, StatusCode::OK, "what upload verified must restore: {v}");
    let dir = mountpoint(&env, &p);
    assert_eq!(
        std::fs::read_link(dir.join("h")).unwrap(),
        PathBuf::from("target-elsewhere")
    );
    assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"hi\n");

    // A hard link to nothing the archive holds is refused at upload.
    let tar = tar_of(|b| {
        let mut h = header(tar::EntryType::Link, 0o644, 0);
        b.append_link(&mut h, "h", "not-in-the-archive").unwrap();
    });
    let (s, v) = upload(&env, &t, &p, zstd(&tar)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("hard link"),
        "{v}"
    );
}

/// A zstd stream of a tar holding one file of `mb` MiB of zeros (tiny
/// compressed).
fn bomb(mb: u64) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    let mut h = header(tar::EntryType::Regular, 0o644, mb << 20);
    h.set_path("zeros").unwrap();
    h.set_cksum();
    enc.write_all(h.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..mb {
        enc.write_all(&zeros).unwrap();
    }
    enc.write_all(&[0u8; 1024]).unwrap();
    enc.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_restore_writes_is_bounded() {
    let env = TestEnv::with(|c| c.backups.max_unpacked_mb = 64).await;
    let t = env.member().await;
    let p = env.project(&t, "p").await;
    let small = bomb(600);
    assert!(small.len() < 200_000, "{} bytes", small.len());
    // Refused at upload, naming the limit.
    let (s, v) = upload(&env, &t, &p, small).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("backups.max_unpacked_mb") && m.contains("64"),
        "{m}"
    );
    // Within the limit it is taken, and the catalogue says how much it
    // unpacks to.
    let (s, v) = upload(&env, &t, &p, bomb(10)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["unpackedBytes"], 10 << 20);
    // An archive that came in before sizes were recorded (or was swapped
    // for a bigger one) is stopped at the limit while it is extracted.
    let id = Uuid::new_v4();
    let archive = bomb(100);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&archive))
    };
    std::fs::write(
        env.dir.path().join(format!("backups/{id}.tar.zst")),
        &archive,
    )
    .unwrap();
    let now = berth::domain::now_millis();
    let owner = {
        let (s, v) = env.get(&format!("/api/projects/{p}"), &t).await;
        assert_eq!(s, StatusCode::OK);
        Uuid::parse_str(v["data"]["userId"].as_str().unwrap()).unwrap()
    };
    env.berth
        .core()
        .store()
        .insert_backup(&berth::domain::backups::Backup {
            id,
            project_id: Uuid::parse_str(&p).unwrap(),
            owner_id: owner,
            created_at: now,
            completed_at: Some(now),
            state: berth::domain::backups::BackupState::Complete,
            compression: berth::domain::backups::Compression::Zstd,
            size_bytes: Some(archive.len() as u64),
            sha256: Some(sha),
            crash_consistent: false,
            error: None,
            remote: None,
            ..Default::default()
        })
        .await
        .unwrap();
    let before = std::fs::read_dir(mountpoint(&env, &p)).unwrap().count();
    let (s, v) = restore(&env, &t, &p, &id.to_string()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // The project keeps its volume.
    assert_eq!(
        std::fs::read_dir(mountpoint(&env, &p)).unwrap().count(),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_declared_header_is_refused_before_it_is_buffered() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let p = env.project(&t, "p").await;
    // A GNU long-name entry declaring 256 MiB of name.
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    let mut h = header(tar::EntryType::GNULongName, 0o644, 256 << 20);
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_cksum();
    enc.write_all(h.as_bytes()).unwrap();
    let a = vec![b'a'; 1 << 20];
    for _ in 0..256 {
        enc.write_all(&a).unwrap();
    }
    enc.write_all(&[0u8; 1024]).unwrap();
    let body = enc.finish().unwrap();
    assert!(body.len() < 100_000);
    let started = std::time::Instant::now();
    let (s, v) = upload(&env, &t, &p, body).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("long name") || m.contains("header"), "{m}");
    // Refused at the header, not after reading 256 MiB through.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_id_bits_come_back_only_from_archives_berth_or_an_admin_made() {
    let env = TestEnv::new().await;
    let (_, member) = env.user(Role::Member).await;
    let (_, admin) = env.user(Role::Admin).await;
    let tar = tar_of(|b| {
        let mut h = header(tar::EntryType::Regular, 0o4755, 2);
        b.append_data(&mut h, "suid", &b"x\n"[..]).unwrap();
        let mut h = header(tar::EntryType::Directory, 0o2775, 0);
        b.append_data(&mut h, "sgid-dir", std::io::empty()).unwrap();
    });
    for (token, kept) in [(&member, false), (&admin, true)] {
        let p = env.project(token, "p").await;
        let (s, v) = upload(&env, token, &p, zstd(&tar)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["data"]["uploaded"], true);
        let (s, v) = restore(&env, token, &p, v["data"]["id"].as_str().unwrap()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let dir = mountpoint(&env, &p);
        let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o7777;
        if kept {
            assert_eq!((mode("suid"), mode("sgid-dir")), (0o4755, 0o2775));
        } else {
            assert_eq!((mode("suid"), mode("sgid-dir")), (0o755, 0o775));
        }
    }
    // Berth's own backups keep them (a volume may hold a set-id tool).
    let p = env.project(&member, "own").await;
    let dir = mountpoint(&env, &p);
    std::fs::write(dir.join("tool"), "x").unwrap();
    std::fs::set_permissions(dir.join("tool"), std::fs::Permissions::from_mode(0o4750)).unwrap();
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{p}/backup"),
            &member,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["uploaded"], false);
    let (s, _) = restore(&env, &member, &p, v["data"]["id"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let mode = std::fs::metadata(mountpoint(&env, &p).join("tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o4750);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_volume_written_to_while_it_is_backed_up_and_cloned() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let p = env.project(&t, "busy").await;
    let dir = mountpoint(&env, &p);
    for i in 0..2000 {
        std::fs::write(dir.join(format!("f{i}")), format!("{i}")).unwrap();
    }
    // A writer that keeps renaming, removing and recreating files, in
    // sweeps over all of them, so that at any moment some files a walk has
    // listed are about to go.
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (stop, dir) = (stop.clone(), dir.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for i in 0..2000 {
                    let _ = std::fs::rename(dir.join(format!("f{i}")), dir.join(format!("g{i}")));
                }
                for i in 0..2000 {
                    let _ = std::fs::remove_file(dir.join(format!("g{i}")));
                }
                for i in 0..2000 {
                    let _ =
                        std::fs::write(dir.join(format!("f{i}")), vec![b'x'; (n % 5000) as usize]);
                    n += 1;
                }
            }
        })
    };
    // Whether a walk meets a vanished file is a race the writer wins often,
    // but not on every walk of a loaded machine: go on (bounded) until one
    // has, and check every backup and clone on the way.
    let mut skipped_seen = 0u64;
    let mut round = 0;
    while round < 4 || (skipped_seen == 0 && round < 40) {
        let (s, v) = env
            .post(
                &format!("/api/workspaces/projects/{p}/backup"),
                &t,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "backup {round}: {v}");
        assert_eq!(v["data"]["state"], "complete");
        let skipped = v["data"]["skipped"]["count"].as_u64().unwrap();
        // Files vanished under the walk: the volume was in use.
        assert_eq!(v["data"]["crashConsistent"], skipped > 0, "{v}");
        assert!(v["data"]["skipped"]["sample"].as_array().unwrap().len() as u64 <= skipped.min(5));
        skipped_seen += skipped;
        if round < 4 {
            let (s, v) = env
                .post(
                    &format!("/api/workspaces/projects/{p}/clone"),
                    &t,
                    json!({ "name": format!("copy-{round}") }),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "clone {round}: {v}");
        }
        round += 1;
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    // Some file vanished under one of the walks; it was skipped and said
    // so, not fatal.
    assert!(skipped_seen > 0, "no walk ever met a vanished file");
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_without_telling_accounts_apart() {
    let env = TestEnv::with(|c| {
        c.auth.login_free_attempts = 5;
        c.auth.login_lock_base_s = 30;
    })
    .await;
    let (_, session) = env.session(Role::Member).await;
    let (s, me) = env.get("/api/auth/me", &session).await;
    assert_eq!(s, StatusCode::OK);
    let email = me["data"]["email"].as_str().unwrap().to_string();
    let (_, other_session) = env.session(Role::Member).await;
    let (_, other) = env.get("/api/auth/me", &other_session).await;
    let other_email = other["data"]["email"].as_str().unwrap().to_string();
    let login = |email: &str, password: &str| {
        Request::post("/api/auth/login")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({ "email": email, "password": password }).to_string(),
            ))
            .unwrap()
    };
    for who in [email.as_str(), "nobody@test.example"] {
        for i in 0..5 {
            let (s, _) = env.send(login(who, "wrong-password")).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "attempt {i} for {who}");
        }
        // Locked: known and unknown emails alike, the right password too.
        let (s, h, body) = env.send_raw(login(who, "password123")).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{who}");
        let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=30).contains(&retry), "{retry}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "too_many_attempts");
    }
    // Another account is not affected.
    let (s, _) = env.send(login(&other_email, "password123")).await;
    assert_eq!(s, StatusCode::OK);
    // Counted.
    let (s, _, text) = env
        .send_raw(
            Request::get("/metrics")
                .header(
                    "authorization",
                    format!("Bearer {}", env.berth.core().metrics_token()),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("berth_login_throttled_total"), "{text}");
}

#[tokio::test]
async fn metrics_need_a_token_by_default() {
    let env = TestEnv::new().await;
    let get = |auth: Option<String>| {
        let mut r = Request::get("/metrics");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.body(Body::empty()).unwrap()
    };
    let (s, _, _) = env.send_raw(get(None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let member = env.member().await;
    let (s, _, _) = env.send_raw(get(Some(format!("Bearer {member}")))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = env
        .send_raw(get(Some(format!(
            "Bearer {}",
            env.berth.core().metrics_token()
        ))))
        .await;
    assert_eq!(s, StatusCode::OK);
    // The token is generated once, kept in the data directory (0600).
    let file = env.dir.path().join("metrics-token");
    let md = std::fs::metadata(&file).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        env.berth.core().metrics_token()
    );
}

#[tokio::test]
async fn names_and_numbers_out_of_bounds_are_clear_400s() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    for body in [
        json!({ "name": "x\r\nSet-Cookie: pwn=1" }),
        json!({ "name": "ok", "description": "bad\u{0}" }),
        json!({ "name": "tab\there" }),
    ] {
        let (s, v) = env.post("/api/projects", &t, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("control characters"),
            "{v}"
        );
    }
    let (id, _) = env.workspace(&t).await;
    for body in [
        json!({ "healthCheck": { "command": "\u{0}" } }),
        json!({ "name": "a\u{7}b" }),
        json!({ "description": "line\u{1b}[31m" }),
    ] {
        let (s, v) = env
            .call(
                Method::PUT,
                &format!("/api/workspaces/{id}"),
                Some(&t),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
    }
    for q in ["limit=-1", "limit=0", "limit=100000000"] {
        let (s, v) = env
            .get(&format!("/api/workspaces/{id}/events?{q}"), &t)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("limit"),
            "{v}"
        );
    }
    let (s, _) = env
        .get(&format!("/api/workspaces/{id}/events?limit=5"), &t)
        .await;
    assert_eq!(s, StatusCode::OK);
}

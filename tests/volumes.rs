//! Backup, restore, clone and size of project volumes against the real
//! engine, compared by a manifest of every entry (path, type, mode, owner,
//! mtime, content hash or link target).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use berth::domain::backups::{Backup, BackupState, Compression};
use common::{docker, TestEnv, TEST_IMAGE};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn volume_of(env: &TestEnv, project: &str) -> String {
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
    p.volume_name
}

fn mountpoint(volume: &str) -> PathBuf {
    PathBuf::from(docker(&[
        "volume",
        "inspect",
        "-f",
        "{{.Mountpoint}}",
        volume,
    ]))
}

/// Fills a volume with files of several owners, modes, links and times.
fn populate(volume: &str) {
    let script = "set -e; cd /data; \
        mkdir -p dir/sub 'with space'; echo hello > dir/a.txt; \
        busybox dd if=/dev/urandom of=dir/sub/blob bs=1024 count=300 2>/dev/null; \
        echo x > 'with space/f'; busybox chmod 640 dir/a.txt; busybox chmod 700 dir/sub; \
        busybox chown 1000:1001 dir/a.txt; busybox chown -h 1234:1234 dir; \
        busybox ln -s a.txt dir/link; busybox ln -s /usr/bin/python3 abs-link; busybox ln -s ../../lib/file/magic.mgc dir/out-link; \
        busybox touch -d '2001-02-03 04:05:06' dir/a.txt; \
        busybox touch -h -d '2002-02-03 04:05:06' dir/link";
    docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/data"),
        TEST_IMAGE,
        "sh",
        "-c",
        script,
    ]);
}

type Manifest = BTreeMap<String, String>;

fn manifest(root: &Path) -> Manifest {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let what = if md.file_type().is_symlink() {
            format!("link->{}", std::fs::read_link(&p).unwrap().display())
        } else if md.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            "dir".into()
        } else {
            hex::encode(Sha256::digest(std::fs::read(&p).unwrap()))
        };
        // Directory mtimes of the root itself are the volume's, not data.
        let mtime = if rel.is_empty() { 0 } else { md.mtime() };
        out.insert(
            rel,
            format!(
                "{what} mode={:o} uid={} gid={} mtime={mtime}",
                md.mode(),
                md.uid(),
                md.gid()
            ),
        );
    }
    out
}

async fn backup(env: &TestEnv, t: &str, project: &str, body: Value) -> (StatusCode, Value) {
    env.post(
        &format!("/api/workspaces/projects/{project}/backup"),
        t,
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_round_trip_exactly_for_zstd_and_gzip() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    for compression in ["zstd", "gzip"] {
        let pid = env.project(&t, compression).await;
        let vol = volume_of(&env, &pid);
        populate(&vol);
        let before = manifest(&mountpoint(&vol));
        assert!(before.len() >= 8, "{before:?}");

        let (s, v) = backup(&env, &t, &pid, json!({ "compression": compression })).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let b = &v["data"];
        assert_eq!(b["state"], "complete");
        assert_eq!(b["compression"], compression);
        assert_eq!(b["crashConsistent"], false);
        let path = PathBuf::from(b["backupPath"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(b["sizeBytes"], bytes.len() as u64);
        assert_eq!(b["sha256"], hex::encode(Sha256::digest(&bytes)).as_str());
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let bid = b["id"].as_str().unwrap().to_string();

        if compression == "gzip" {
            let out = tempfile::tempdir().unwrap();
            let st = std::process::Command::new("tar")
                .arg("xzf")
                .arg(&path)
                .arg("-C")
                .arg(out.path())
                .status()
                .unwrap();
            assert!(st.success(), "tar xzf opens the gzip backup");
            assert_eq!(
                std::fs::read_to_string(out.path().join("dir/a.txt")).unwrap(),
                "hello\n"
            );
        }

        // Change the data after the backup: add, remove, modify.
        let mp = mountpoint(&vol);
        std::fs::write(mp.join("new-after-backup"), "x").unwrap();
        std::fs::remove_file(mp.join("with space/f")).unwrap();
        std::fs::write(mp.join("dir/a.txt"), "changed").unwrap();

        let (s, v) = env
            .post(
                &format!("/api/workspaces/projects/{pid}/restore"),
                &t,
                json!({ "backupId": bid }),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let new_vol = v["data"]["volumeName"].as_str().unwrap().to_string();
        assert_ne!(new_vol, vol);
        assert_eq!(v["data"]["previousVolume"], vol.as_str());
        assert_eq!(volume_of(&env, &pid), new_vol);
        let after = manifest(&mountpoint(&new_vol));
        assert_eq!(after, before, "{compression}: restored volume differs");

        // Verify reads it through.
        let (s, v) = env
            .call(
                Method::POST,
                &format!("/api/backups/{bid}/verify"),
                Some(&t),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(v["data"]["entries"].as_u64().unwrap() >= 8);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_unsafe_archives_are_refused_and_change_nothing() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let pid = env.project(&t, "p").await;
    let vol = volume_of(&env, &pid);
    populate(&vol);
    let before = manifest(&mountpoint(&vol));
    let (_, v) = backup(&env, &t, &pid, json!({ "compression": "gzip" })).await;
    let bid = v["data"]["id"].as_str().unwrap().to_string();
    let path = PathBuf::from(v["data"]["backupPath"].as_str().unwrap());

    // Flip one byte in the stored archive.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    for (m, p, body) in [
        (
            Method::POST,
            format!("/api/workspaces/projects/{pid}/restore"),
            Some(json!({ "backupId": bid })),
        ),
        (Method::POST, format!("/api/backups/{bid}/verify"), None),
    ] {
        let (s, v) = env.call(m, &p, Some(&t), body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("checksum"),
            "{v}"
        );
    }
    assert_eq!(volume_of(&env, &pid), vol);
    assert_eq!(manifest(&mountpoint(&vol)), before);

    // Archives that climb out or name absolute paths, put in the catalogue
    // as a stored backup would be.
    let owner = env
        .berth
        .core()
        .store()
        .project(Uuid::parse_str(&pid).unwrap())
        .await
        .unwrap()
        .unwrap()
        .owner_id;
    for (name, entry) in [
        ("escape", "../escape"),
        ("absolute", "/tmp/berth-test-absolute"),
    ] {
        let b = Backup {
            id: Uuid::new_v4(),
            project_id: Uuid::parse_str(&pid).unwrap(),
            owner_id: owner,
            created_at: 0,
            completed_at: Some(0),
            state: BackupState::Complete,
            compression: Compression::Gzip,
            size_bytes: None,
            sha256: None,
            crash_consistent: false,
            error: None,
            remote: None,
            ..Default::default()
        };
        let file = env.backups.backup_path(&b).unwrap();
        let script = format!(
            "import tarfile,io,sys\nt=tarfile.open(sys.argv[1],'w:gz')\ni=tarfile.TarInfo({entry:?})\ni.size=3\nt.addfile(i,io.BytesIO(b'bad'))\nt.close()"
        );
        let st = std::process::Command::new("python3")
            .args(["-c", &script])
            .arg(&file)
            .status()
            .unwrap();
        assert!(st.success());
        let sum = hex::encode(Sha256::digest(std::fs::read(&file).unwrap()));
        let b = Backup {
            sha256: Some(sum),
            ..b
        };
        env.berth.core().store().insert_backup(&b).await.unwrap();
        let (s, v) = env
            .post(
                &format!("/api/workspaces/projects/{pid}/restore"),
                &t,
                json!({ "backupId": b.id }),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("refused"),
            "{v}"
        );
    }
    assert!(!Path::new("/tmp/berth-test-absolute").exists());
    assert_eq!(volume_of(&env, &pid), vol);
    assert_eq!(manifest(&mountpoint(&vol)), before);
    // No half-made volumes were left behind by the refusals.
    let listed = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=berth.project.id={pid}"),
    ]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_waits_for_running_workspaces_unless_told_to_stop_them() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let (ws, pid) = env.workspace(&t).await;
    let vol = volume_of(&env, &pid);
    populate(&vol);
    env.call(
        Method::POST,
        &format!("/api/workspaces/{ws}/start"),
        Some(&t),
        None,
    )
    .await;
    let (s, v) = backup(&env, &t, &pid, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["crashConsistent"], true, "{v}");
    assert!(v["message"].as_str().unwrap().contains("crash-consistent"));
    let (s, v) = backup(&env, &t, &pid, json!({ "pauseWorkspace": true })).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["crashConsistent"], false);
    let c = common::docker_inspect("container", &format!("berth-ws-{ws}")).unwrap();
    assert_eq!(c["State"]["Paused"], false, "always unpaused");
    let bid = v["data"]["id"].as_str().unwrap().to_string();
    // The engine calls a paused container unhealthy (and still does for a
    // moment after the unpause): no probe failed, so nothing is recovered.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, evs) = env.get(&format!("/api/workspaces/{ws}/events"), &t).await;
    assert!(
        !evs["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"].as_str().unwrap().starts_with("recovery")),
        "a paused backup was taken for a failure: {evs}"
    );

    let path = format!("/api/workspaces/projects/{pid}/restore");
    let (s, v) = env.post(&path, &t, json!({ "backupId": bid })).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, v) = env
        .post(&path, &t, json!({ "backupId": bid, "stopWorkspace": true }))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let new_vol = v["data"]["volumeName"].as_str().unwrap().to_string();
    let c = common::docker_inspect("container", &format!("berth-ws-{ws}")).unwrap();
    assert_eq!(c["State"]["Running"], true, "started again");
    assert_eq!(
        c["Mounts"][0]["Name"],
        new_vol.as_str(),
        "on the restored volume"
    );
    let (_, w) = env.get(&format!("/api/workspaces/{ws}"), &t).await;
    assert_eq!(w["data"]["status"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_copies_everything_and_respects_a_non_empty_target() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let src = env.project(&t, "src").await;
    populate(&volume_of(&env, &src));
    let before = manifest(&mountpoint(&volume_of(&env, &src)));

    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{src}/clone"),
            &t,
            json!({ "name": "copy" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let copy = v["data"]["targetProject"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(v["data"]["volumeName"], volume_of(&env, &copy).as_str());
    assert_eq!(manifest(&mountpoint(&volume_of(&env, &copy))), before);

    // Into an existing, non-empty project: refused without overwrite.
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{src}/clone"),
            &t,
            json!({ "targetProjectId": copy }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    std::fs::write(mountpoint(&volume_of(&env, &copy)).join("extra"), "x").unwrap();
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{src}/clone"),
            &t,
            json!({ "targetProjectId": copy, "overwrite": true }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        manifest(&mountpoint(&volume_of(&env, &copy))),
        before,
        "extra is gone"
    );

    for bad in [
        json!({}),
        json!({ "targetProjectId": copy, "name": "x" }),
        json!({ "targetProjectId": src }),
    ] {
        let (s, v) = env
            .post(
                &format!("/api/workspaces/projects/{src}/clone"),
                &t,
                bad.clone(),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_matches_du_and_the_catalogue_is_private() {
    let env = TestEnv::new().await;
    let a = env.member().await;
    let b = env.member().await;
    let pid = env.project(&a, "p").await;
    let vol = volume_of(&env, &pid);
    populate(&vol);
    let (s, v) = env
        .get(&format!("/api/workspaces/projects/{pid}/volume-size"), &a)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let du = std::process::Command::new("du")
        .arg("-sb")
        .arg(mountpoint(&vol))
        .output()
        .unwrap();
    let du: u64 = String::from_utf8_lossy(&du.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(v["data"]["sizeBytes"], du);
    assert!(v["data"]["sizeMB"].as_f64().unwrap() > 0.29);

    let (s, v) = backup(&env, &a, &pid, json!({})).await;
    assert_eq!(s, StatusCode::CREATED);
    let bid = v["data"]["id"].as_str().unwrap().to_string();

    // Download: streamed, with length and checksum.
    let req = Request::get(format!("/api/backups/{bid}/download"))
        .header("authorization", format!("Bearer {a}"))
        .body(Body::empty())
        .unwrap();
    let (s, h, body) = env.send_raw(req).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h["content-length"].to_str().unwrap(),
        body.len().to_string()
    );
    assert_eq!(
        h["x-checksum-sha256"].to_str().unwrap(),
        hex::encode(Sha256::digest(&body))
    );
    assert_eq!(
        v["data"]["sha256"],
        hex::encode(Sha256::digest(&body)).as_str()
    );

    // Another member sees none of it.
    let missing = Uuid::new_v4();
    let (s, _) = backup(&env, &a, &missing.to_string(), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for (m, p, body) in [
        (
            Method::POST,
            format!("/api/workspaces/projects/{pid}/backup"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/workspaces/projects/{pid}/restore"),
            Some(json!({ "backupId": bid })),
        ),
        (
            Method::POST,
            format!("/api/workspaces/projects/{pid}/clone"),
            Some(json!({ "name": "mine" })),
        ),
        (
            Method::GET,
            format!("/api/workspaces/projects/{pid}/volume-size"),
            None,
        ),
        (Method::GET, format!("/api/projects/{pid}/backups"), None),
        (Method::GET, format!("/api/backups/{bid}"), None),
        (Method::GET, format!("/api/backups/{bid}/download"), None),
        (Method::POST, format!("/api/backups/{bid}/verify"), None),
        (Method::DELETE, format!("/api/backups/{bid}"), None),
    ] {
        let (s, v) = env.call(m, &p, Some(&b), body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{p}: {v}");
    }
    // B restoring A's backup into B's own project: still 404.
    let bp = env.project(&b, "b").await;
    let (s, _) = env
        .post(
            &format!("/api/workspaces/projects/{bp}/restore"),
            &b,
            json!({ "backupId": bid }),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (_, list) = env.get(&format!("/api/projects/{pid}/backups"), &a).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (s, v) = backup(&env, &a, &pid, json!({ "compression": "lz4" })).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = env
        .call(
            Method::DELETE,
            &format!("/api/backups/{bid}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = env.get(&format!("/api/backups/{bid}"), &a).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_checked_before_they_join_the_catalogue() {
    let env = TestEnv::with(|c| c.backups.max_upload_mb = 1).await;
    let t = env.member().await;
    let src = env.project(&t, "src").await;
    std::fs::write(mountpoint(&volume_of(&env, &src)).join("hello.txt"), "hi\n").unwrap();
    let before = manifest(&mountpoint(&volume_of(&env, &src)));
    let (_, v) = backup(&env, &t, &src, json!({})).await;
    let bid = v["data"]["id"].as_str().unwrap().to_string();
    let req = Request::get(format!("/api/backups/{bid}/download"))
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap();
    let (_, h, archive) = env.send_raw(req).await;
    let sum = h["x-checksum-sha256"].to_str().unwrap().to_string();

    let dst = env.project(&t, "dst").await;
    let upload = |body: Vec<u8>, sum: Option<&str>, q: &str| {
        let mut r = Request::post(format!("/api/projects/{dst}/backups/upload{q}"))
            .header("authorization", format!("Bearer {t}"))
            .header("content-type", "application/octet-stream");
        if let Some(s) = sum {
            r = r.header("x-checksum-sha256", s);
        }
        r.body(Body::from(body)).unwrap()
    };
    let (s, v) = env.send(upload(archive.clone(), Some(&sum), "")).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["compression"], "zstd", "detected");
    assert_eq!(v["data"]["sha256"], sum.as_str());
    let up = v["data"]["id"].as_str().unwrap().to_string();
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{dst}/restore"),
            &t,
            json!({ "backupId": up }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(manifest(&mountpoint(&volume_of(&env, &dst))), before);

    let wrong = "0".repeat(64);
    for (body, sum, q, want) in [
        (
            archive.clone(),
            Some(wrong.as_str()),
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            b"not an archive at all".to_vec(),
            None,
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            archive.clone(),
            None,
            "?compression=gzip",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (archive.clone(), Some("xyz"), "", StatusCode::BAD_REQUEST),
        (
            vec![7u8; 2 * 1024 * 1024],
            None,
            "",
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let (s, v) = env.send(upload(body, sum, q)).await;
        assert_eq!(s, want, "{q} {sum:?}: {v}");
    }
    // Refused uploads leave nothing behind.
    let (_, list) = env.get(&format!("/api/projects/{dst}/backups"), &t).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path().join("backups"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_run_when_due_and_prune_by_policy() {
    let env = TestEnv::new().await;
    let t = env.member().await;
    let a = env.user(berth::domain::Role::Admin).await.1;
    let pid = env.project(&t, "p").await;
    let path = format!("/api/projects/{pid}/backup-policy");
    let (s, v) = env.get(&path, &t).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["schedule"], "off");
    assert_eq!(v["data"]["keepLast"], 7);
    for bad in [
        json!({ "schedule": "sometimes" }),
        json!({ "keepLast": -1 }),
        json!({ "keepLast": 20000 }),
    ] {
        let (s, v) = env
            .call(Method::PUT, &path, Some(&t), Some(bad.clone()))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    let (s, v) = env
        .call(
            Method::PUT,
            &path,
            Some(&t),
            Some(
                json!({ "schedule": "* * * * *", "keepLast": 1, "keepDaily": 0, "keepWeekly": 0 }),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["own"]["keepLast"], 1);

    // Three old backups in the catalogue; the schedule is overdue.
    let project = env
        .berth
        .core()
        .store()
        .project(Uuid::parse_str(&pid).unwrap())
        .await
        .unwrap()
        .unwrap();
    let now = berth::domain::now_millis();
    for h in [3, 2, 1] {
        let b = Backup {
            id: Uuid::new_v4(),
            project_id: project.id,
            owner_id: project.owner_id,
            created_at: now - h * 3_600_000,
            completed_at: Some(now - h * 3_600_000),
            state: BackupState::Complete,
            compression: Compression::Zstd,
            size_bytes: Some(1),
            sha256: Some("00".into()),
            crash_consistent: false,
            error: None,
            remote: None,
            ..Default::default()
        };
        env.berth.core().store().insert_backup(&b).await.unwrap();
    }
    let (s, run) = env
        .call(Method::POST, "/api/jobs/backups/run", Some(&a), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{run}");
    let details = run["data"]["details"].as_array().unwrap();
    assert_eq!(
        details
            .iter()
            .filter(|d| d["action"] == "backup" && d["outcome"] == "done")
            .count(),
        1,
        "{run}"
    );
    assert_eq!(
        details.iter().filter(|d| d["action"] == "prune").count(),
        3,
        "{run}"
    );
    let (_, list) = env.get(&format!("/api/projects/{pid}/backups"), &t).await;
    let list = list["data"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["state"], "complete");
}

/// The same operations through the engine's archive API (what a remote
/// engine needs), forced with `backups.volume_access = "engine"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_archive_path_backs_up_restores_clones_and_sizes() {
    let env =
        TestEnv::with(|c| c.backups.volume_access = berth::config::VolumeAccess::Engine).await;
    let t = env.member().await;
    let pid = env.project(&t, "remote").await;
    let vol = volume_of(&env, &pid);
    populate(&vol);
    let before = manifest(&mountpoint(&vol));

    let (s, v) = backup(&env, &t, &pid, json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let bid = v["data"]["id"].as_str().unwrap().to_string();
    let path = PathBuf::from(v["data"]["backupPath"].as_str().unwrap());
    let sha = v["data"]["sha256"].as_str().unwrap().to_string();

    // The archive is the same format as the host path writes: it extracts
    // on the host to exactly the volume's content.
    let out = tempfile::tempdir().unwrap();
    berth::backup::extract_archive(
        &path,
        Compression::Zstd,
        Some(&sha),
        out.path(),
        berth::backup::ReadRules::OWN,
    )
    .unwrap();
    let mut host_view = manifest(out.path());
    let mut want = before.clone();
    host_view.remove("");
    want.remove("");
    assert_eq!(host_view, want, "engine-made archive extracted on the host");

    // Restore through the engine: exactly the backup, later files gone.
    std::fs::write(mountpoint(&vol).join("after"), "x").unwrap();
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/restore"),
            &t,
            json!({ "backupId": bid }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let restored = volume_of(&env, &pid);
    assert_ne!(restored, vol);
    let mut got = manifest(&mountpoint(&restored));
    got.remove("");
    assert_eq!(got, want, "restored through the engine");

    // A damaged archive is refused and the project keeps its volume.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/restore"),
            &t,
            json!({ "backupId": bid }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(volume_of(&env, &pid), restored);

    // Clone into a new project, then over a non-empty one.
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/clone"),
            &t,
            json!({ "name": "copy" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let copy = v["data"]["targetProject"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut got = manifest(&mountpoint(&volume_of(&env, &copy)));
    got.remove("");
    assert_eq!(got, want, "cloned through the engine");
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/clone"),
            &t,
            json!({ "targetProjectId": copy }),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    std::fs::write(mountpoint(&volume_of(&env, &copy)).join("extra"), "x").unwrap();
    let (s, v) = env
        .post(
            &format!("/api/workspaces/projects/{pid}/clone"),
            &t,
            json!({ "targetProjectId": copy, "overwrite": true }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut got = manifest(&mountpoint(&volume_of(&env, &copy)));
    got.remove("");
    assert_eq!(got, want, "overwritten through the engine: extra is gone");

    // Size from the tar stream: du -sb's figure within directory rounding.
    let (s, v) = env
        .get(&format!("/api/workspaces/projects/{copy}/volume-size"), &t)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let du = std::process::Command::new("du")
        .arg("-sb")
        .arg(mountpoint(&volume_of(&env, &copy)))
        .output()
        .unwrap();
    let du: f64 = String::from_utf8_lossy(&du.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let got = v["data"]["sizeBytes"].as_f64().unwrap();
    assert!(
        (got - du).abs() <= 4096.0 * 8.0,
        "size {got} vs du -sb {du}"
    );

    // Every helper container is gone.
    let filter = format!("label=berth.instance={}", env.instance);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = docker(&[
            "ps",
            "-aq",
            "--filter",
            &filter,
            "--filter",
            "label=berth.helper=true",
        ]);
        if left.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "helpers left: {left}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// An answer with what differs between two runs of one operation (ids,
/// names, times, volume names) replaced by its kind, so two answers can be
/// compared as shapes and fixed values.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let varies = [
                        "id",
                        "createdAt",
                        "updatedAt",
                        "completedAt",
                        "fileName",
                        "volumeName",
                        "previousVolume",
                        "name",
                        "durationSeconds",
                        "sha256",
                        "sizeBytes",
                        "sizeMb",
                        "sizeGb",
                        "path",
                        "backupPath",
                        "backupId",
                    ];
                    let v = if varies.contains(&k.as_str()) {
                        json!(format!("<{}>", kind(v)))
                    } else {
                        shape(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
        other => other.clone(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projects_volume_operations_answer_alike_under_both_paths() {
    // `/api/projects/{id}/…` is the resource's own URL space; the original
    // API's `/api/workspaces/projects/{id}/…` stays as its alias.
    let env = TestEnv::new().await;
    let t = env.member().await;
    let p = env.project(&t, "both-paths").await;
    populate(&volume_of(&env, &p));
    let before = manifest(&mountpoint(&volume_of(&env, &p)));
    let original = |op: &str| format!("/api/workspaces/projects/{p}/{op}");
    let own = |op: &str| format!("/api/projects/{p}/{op}");

    let (s1, size1) = env.get(&original("volume-size"), &t).await;
    let (s2, size2) = env.get(&own("volume-size"), &t).await;
    assert_eq!(
        (s1, s2),
        (StatusCode::OK, StatusCode::OK),
        "{size1} {size2}"
    );
    assert_eq!(size1, size2);

    let (s1, b1) = env.post(&original("backup"), &t, json!({})).await;
    let (s2, b2) = env.post(&own("backup"), &t, json!({})).await;
    assert_eq!(
        (s1, s2),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{b1} {b2}"
    );
    assert_eq!(shape(&b1), shape(&b2));
    assert_ne!(b1["data"]["id"], b2["data"]["id"], "two backups were made");

    std::fs::write(mountpoint(&volume_of(&env, &p)).join("later"), "x").unwrap();
    let mut restored = Vec::new();
    for (url, backup) in [(original("restore"), &b1), (own("restore"), &b2)] {
        let (s, v) = env
            .post(&url, &t, json!({ "backupId": backup["data"]["id"] }))
            .await;
        assert_eq!(s, StatusCode::OK, "{url}: {v}");
        assert_eq!(
            manifest(&mountpoint(&volume_of(&env, &p))),
            before,
            "{url} restored the backup"
        );
        restored.push(shape(&v));
    }
    assert_eq!(restored[0], restored[1]);

    let mut clones = Vec::new();
    for (url, name) in [(original("clone"), "copy-a"), (own("clone"), "copy-b")] {
        let (s, v) = env.post(&url, &t, json!({ "name": name })).await;
        assert_eq!(s, StatusCode::OK, "{url}: {v}");
        let copy = v["data"]["targetProject"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(manifest(&mountpoint(&volume_of(&env, &copy))), before);
        clones.push(shape(&v));
    }
    assert_eq!(clones[0], clones[1]);

    // Another member gets the same 404 on both.
    let other = env.member().await;
    for url in [original("volume-size"), own("volume-size")] {
        let (s, v) = env.get(&url, &other).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{url}: {v}");
    }
}

//! The operator interface end to end, as a new user meets it: the real
//! `berth` binary creates a user and a token, serves, answers `healthcheck`,
//! and the HTTP API runs a workspace from creation to deletion. Also: the
//! startup errors an operator must be able to read.

mod common;

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{docker_inspect, ensure_test_image, TEST_IMAGE};
use serde_json::{json, Value};

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &std::path::Path, port: u16, instance: &str) -> std::path::PathBuf {
    let path = dir.join("berth.toml");
    let text = format!(
        r#"
listen = "127.0.0.1:{port}"
data_dir = "{data}"
instance = "{instance}"

[types.shell]
image = "{TEST_IMAGE}"
port = 8080
[types.shell.resources]
cpus = 0.5
memory_mb = 64
memory_reservation_mb = 16
[types.shell.health_check]
command = "wget -q -O /dev/null http://127.0.0.1:8080/healthz || exit 1"
interval_s = 1
timeout_s = 2
retries = 2
start_period_s = 0
"#,
        data = dir.join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn berth(args: &[&str], config: &std::path::Path, stdin: Option<&str>) -> Output {
    let mut cmd = common::berth_bin();
    cmd.args(args)
        .env("BERTH_CONFIG", config)
        .env_remove("BERTH_LISTEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn berth");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        common::remove_instance(&self.0);
    }
}

#[tokio::test]
async fn a_new_user_runs_a_workspace_through_the_binary_and_the_api() {
    ensure_test_image();
    let dir = tempfile::tempdir().unwrap();
    let instance = format!(
        "test-cli-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let _cleanup = Cleanup(instance.clone());
    let port = free_port();
    let config = write_config(dir.path(), port, &instance);

    // Admin commands work on the data directory, no server needed.
    let out = berth(
        &["user", "add", "admin@example.com", "--admin"],
        &config,
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));
    let out = berth(
        &[
            "user",
            "add",
            "admin@example.com",
            "--admin",
            "--password-stdin",
        ],
        &config,
        Some("correct-horse\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = berth(
        &["user", "add", "admin@example.com", "--password-stdin"],
        &config,
        Some("another-pass\n"),
    );
    assert!(!out.status.success(), "duplicate email must fail");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = berth(&["token", "create", "admin@example.com"], &config, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "token create prints the token only"
    );
    let token = stdout.trim().to_string();
    assert!(token.starts_with("berth_"));
    let out = berth(&["token", "create", "nobody@example.com"], &config, None);
    assert!(!out.status.success());

    // Serve, and wait for healthcheck to say so.
    let child = common::berth_bin()
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("BERTH_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = berth(&["healthcheck"], &config, None);
        if out.status.success() {
            break;
        }
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "server exited early"
        );
        assert!(Instant::now() < deadline, "server never became healthy");
        std::thread::sleep(Duration::from_millis(200));
    }

    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut r = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    use reqwest::Method as M;

    // Password login works over the wire too.
    let (s, v) = {
        let r = http
            .post(format!("{base}/api/auth/login"))
            .json(&json!({ "email": "admin@example.com", "password": "correct-horse" }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(s, 200, "{v}");

    let (s, v) = call(M::POST, "/api/projects", Some(json!({ "name": "demo" }))).await;
    assert_eq!(s, 201, "{v}");
    let pid = v["data"]["id"].as_str().unwrap().to_string();
    let (s, v) = call(
        M::POST,
        "/api/workspaces",
        Some(json!({ "name": "ws", "type": "shell", "projectId": pid })),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    let (s, v) = call(M::POST, &format!("/api/workspaces/{id}/start"), None).await;
    assert_eq!(s, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = call(M::GET, &format!("/api/workspaces/{id}/status"), None).await;
        if v["data"]["status"] == "running" && v["data"]["health"]["status"] == "healthy" {
            break;
        }
        assert!(Instant::now() < deadline, "never healthy: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (s, v) = call(M::POST, &format!("/api/workspaces/{id}/stop"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["status"], "stopped");
    let (s, v) = call(M::DELETE, &format!("/api/workspaces/{id}"), None).await;
    assert_eq!(s, 200, "{v}");
    assert!(docker_inspect("container", &format!("berth-ws-{id}")).is_none());

    // SIGTERM shuts the server down cleanly.
    let pid_s = server.child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid_s])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "server ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    let out = berth(&["healthcheck"], &config, None);
    assert!(!out.status.success(), "healthcheck fails with no server");
}

#[test]
fn serve_says_clearly_when_the_engine_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), free_port(), "test-unreachable");
    let out = common::berth_bin()
        .args(["serve", "--config"])
        .arg(&config)
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{err}"
    );
}

#[test]
fn a_bad_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = common::berth_bin()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lisen"), "{err}");
    let out = common::berth_bin()
        .args(["serve"])
        .env("BERTH_LISTEN", "not an address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_cut_short_by_a_killed_server_is_failed_on_restart() {
    ensure_test_image();
    let dir = tempfile::tempdir().unwrap();
    let instance = format!(
        "test-kill-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let _cleanup = Cleanup(instance.clone());
    let port = free_port();
    let config = write_config(dir.path(), port, &instance);
    let out = berth(
        &["user", "add", "a@example.com", "--password-stdin"],
        &config,
        Some("password-1\n"),
    );
    assert!(out.status.success());
    let token =
        String::from_utf8(berth(&["token", "create", "a@example.com"], &config, None).stdout)
            .unwrap()
            .trim()
            .to_string();
    let serve = || {
        common::berth_bin()
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("BERTH_LISTEN")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait_up = |server: &mut Child| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !berth(&["healthcheck"], &config, None).status.success() {
            assert!(server.try_wait().unwrap().is_none(), "server exited early");
            assert!(Instant::now() < deadline, "server never came up");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut server = Server { child: serve() };
    wait_up(&mut server.child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let v: Value = http
        .post(format!("{base}/api/projects"))
        .bearer_auth(&token)
        .json(&json!({ "name": "big" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = v["data"]["id"].as_str().unwrap().to_string();
    // Enough incompressible data that the backup takes a while.
    let vol = format!("berth-project-{pid}");
    let st = Command::new("docker")
        .args([
            "run",
            "--rm",
            "-v",
            &format!("{vol}:/data"),
            TEST_IMAGE,
            "sh",
            "-c",
            "dd if=/dev/urandom of=/data/big bs=1M count=400 2>/dev/null",
        ])
        .status()
        .unwrap();
    assert!(st.success());

    let backups = dir.path().join("data/backups");
    let req = http
        .post(format!("{base}/api/workspaces/projects/{pid}/backup"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send();
    let pending = tokio::spawn(req);
    // Kill the server while the archive is being written.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let writing = std::fs::read_dir(&backups)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            })
            .unwrap_or(false);
        if writing {
            break;
        }
        assert!(Instant::now() < deadline, "the backup never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(
        pending.await.unwrap().is_err(),
        "the request died with the server"
    );
    let complete_looking: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        // The directory's marker (`.berth-archive-dir`) is no archive.
        .filter(|n| !n.ends_with(".tmp") && !n.starts_with('.'))
        .collect();
    assert!(complete_looking.is_empty(), "{complete_looking:?}");

    let mut server = Server { child: serve() };
    wait_up(&mut server.child);
    let v: Value = http
        .get(format!("{base}/api/projects/{pid}/backups"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = v["data"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["state"], "failed");
    assert!(
        list[0]["error"].as_str().unwrap().contains("interrupted"),
        "{v}"
    );
    let left: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n != ".berth-archive-dir")
        .collect();
    assert!(
        left.is_empty(),
        "the partial file is removed at startup: {left:?}"
    );
}

/// Runs the client half of the binary against `server` with the kept
/// credentials in `creds`; the environment's BERTH_TOKEN is not used.
fn client(args: &[&str], server: &str, creds: &std::path::Path, stdin: Option<&str>) -> Output {
    let mut cmd = common::berth_bin();
    cmd.args(args)
        .env("BERTH_SERVER", server)
        .env("BERTH_CLIENT_CONFIG", creds)
        .env_remove("BERTH_TOKEN")
        .env_remove("BERTH_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn berth");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).expect("--json output parses")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_client_drives_a_server_end_to_end() {
    ensure_test_image();
    let dir = tempfile::tempdir().unwrap();
    let instance = format!(
        "test-cli-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let _cleanup = Cleanup(instance.clone());
    let port = free_port();
    let config = write_config(dir.path(), port, &instance);
    ok(&berth(
        &[
            "user",
            "add",
            "admin@example.com",
            "--admin",
            "--password-stdin",
        ],
        &config,
        Some("correct-horse\n"),
    ));
    let child = common::berth_bin()
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("BERTH_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !berth(&["healthcheck"], &config, None).status.success() {
        assert!(Instant::now() < deadline, "server never became healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
    let base = format!("http://127.0.0.1:{port}");
    let creds = dir.path().join("client/credentials.json");
    let run = |args: &[&str]| client(args, &base, &creds, None);

    // Not logged in: the server's message and how to fix it, exit 1.
    let out = run(&["ws", "ls"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("authentication required") && err.contains("berth login"),
        "{err}"
    );

    // Log in with the password on stdin; the token is kept 0600.
    let out = client(
        &["login", "--email", "admin@example.com"],
        &base,
        &creds,
        Some("correct-horse\n"),
    );
    ok(&out);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let wrong = client(
        &["login", "--email", "admin@example.com"],
        &base,
        &creds,
        Some("nope\n"),
    );
    assert_eq!(wrong.status.code(), Some(1));

    // Project, workspace, start and wait for health.
    let project = ok(&run(&["project", "create", "demo"])).trim().to_string();
    assert_eq!(project.len(), 36, "prints the id: {project}");
    let ws = ok(&run(&[
        "ws",
        "create",
        "dev",
        "--type",
        "shell",
        "--project",
        &project,
    ]))
    .trim()
    .to_string();
    ok(&run(&["ws", "start", &ws, "--wait", "--timeout", "60"]));
    let status = json_of(&run(&["ws", "status", &ws, "--json"]));
    assert_eq!(status["status"], "running", "{status}");
    assert_eq!(status["health"]["status"], "healthy", "{status}");
    let list = json_of(&run(&["ws", "ls", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    let table = ok(&run(&["ws", "ls"]));
    assert!(
        table.starts_with("ID") && table.contains("STATUS"),
        "{table}"
    );
    assert!(table.contains(&ws) && table.contains("running"), "{table}");
    ok(&run(&["ws", "logs", &ws, "--tail", "5"]));
    ok(&run(&["ws", "health", &ws]));

    // Types, live limits, update, events, the stats stream.
    let types = ok(&run(&["ws", "types"]));
    assert!(
        types
            .lines()
            .any(|l| l.starts_with("shell ") && l.contains(" yes ")),
        "{types}"
    );
    let limits = json_of(&run(&["ws", "resources", &ws, "--memory", "96", "--json"]));
    assert_eq!(limits["memory"], 96, "{limits}");
    let inspect = docker_inspect("container", &format!("berth-ws-{ws}")).unwrap();
    assert_eq!(
        inspect["HostConfig"]["Memory"],
        96 * 1024 * 1024,
        "the running container's limit changed"
    );
    let shown = ok(&run(&["ws", "resources", &ws]));
    assert!(shown.contains("memory             96 MB"), "{shown}");
    ok(&run(&["ws", "update", &ws, "--name", "renamed"]));
    assert_eq!(
        json_of(&run(&["ws", "show", &ws, "--json"]))["name"],
        "renamed"
    );
    assert_eq!(run(&["ws", "update", &ws]).status.code(), Some(2));
    let events = json_of(&run(&["ws", "events", &ws, "--json"]));
    assert!(!events.as_array().unwrap().is_empty(), "{events}");
    let mut watch = common::berth_bin()
        .args(["ws", "stats", &ws, "--watch"])
        .env("BERTH_SERVER", &base)
        .env("BERTH_CLIENT_CONFIG", &creds)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stdout).lines();
        for _ in 0..2 {
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
        }
    });
    for n in 0..2 {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("stats --watch printed {n} lines in 20 s"));
        assert!(
            line.starts_with("cpu ") && line.contains("memory"),
            "{line}"
        );
    }
    let _ = watch.kill();
    let _ = watch.wait();

    // The backup policy: options merge into the project's own settings.
    let p = json_of(&run(&[
        "backup",
        "policy",
        &project,
        "--keep-last",
        "2",
        "--json",
    ]));
    assert_eq!(p["own"]["keepLast"], 2, "{p}");
    let p = json_of(&run(&[
        "backup",
        "policy",
        &project,
        "--schedule",
        "0 4 * * *",
        "--json",
    ]));
    assert_eq!(p["own"]["keepLast"], 2, "kept: {p}");
    assert_eq!(p["schedule"], "0 4 * * *", "{p}");
    let p = json_of(&run(&["backup", "policy", &project, "--reset", "--json"]));
    assert!(
        p["own"]["keepLast"].is_null() && p["own"]["schedule"].is_null(),
        "{p}"
    );
    let out = run(&["backup", "policy", &project, "--schedule", "every day"]);
    assert_eq!(out.status.code(), Some(1), "the server refuses a bad cron");

    // Backup, download with the server's checksum, upload it back.
    ok(&run(&["backup", "create", &project]));
    let backups = json_of(&run(&["backup", "ls", &project, "--json"]));
    let b = &backups[0];
    assert_eq!(b["state"], "complete", "{backups}");
    let id = b["id"].as_str().unwrap();
    let listed = ok(&run(&["backup", "ls", &project]));
    assert!(
        listed.starts_with("ID") && listed.contains(id) && listed.contains("local"),
        "{listed}"
    );
    let file = dir.path().join("dl.tar.zst");
    ok(&run(&[
        "backup",
        "download",
        id,
        "-o",
        file.to_str().unwrap(),
    ]));
    let bytes = std::fs::read(&file).unwrap();
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        b["sha256"].as_str().unwrap()
    );
    let up = json_of(&run(&[
        "backup",
        "upload",
        &project,
        file.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(up["state"], "complete", "{up}");
    assert_eq!(up["sha256"], b["sha256"]);
    let verified = json_of(&run(&["backup", "verify", id, "--json"]));
    assert!(verified["entries"].as_u64().unwrap() >= 1, "{verified}");
    // Restore and clone, read as people read them (not --json).
    let restored = run(&["backup", "restore", &project, id, "--stop"]);
    ok(&restored);
    assert!(
        String::from_utf8_lossy(&restored.stderr).contains(&format!("restored {id} into volume")),
        "{restored:?}"
    );
    let cloned = ok(&run(&["volume", "clone", &project, "--name", "cli-copy"]));
    assert!(cloned.trim().starts_with("berth-"), "{cloned}");
    assert_eq!(
        run(&["volume", "clone", &project, "--to", "not-a-uuid"])
            .status
            .code(),
        Some(2)
    );
    let size = json_of(&run(&["volume", "size", &project, "--json"]));
    assert!(size["sizeBytes"].as_u64().is_some(), "{size}");
    let cleanup = json_of(&run(&["cleanup", "--dry-run", "--json"]));
    assert_eq!(cleanup["dryRun"], true, "{cleanup}");
    let jobs = ok(&run(&["jobs"]));
    assert!(
        jobs.starts_with("JOB") && jobs.contains("orphaned-volumes"),
        "{jobs}"
    );

    // Errors: the server's message (1), usage (2), a bad token (1).
    let out = run(&["ws", "show", "not-a-uuid"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UUID"));
    assert_eq!(run(&["ws"]).status.code(), Some(2));
    assert_eq!(run(&["volume", "clone", &project]).status.code(), Some(2));
    let out = client(&["--token", "berth_wrong", "ws", "ls"], &base, &creds, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[HTTP 401]"));

    // Nodes: the local engine, then one more behind a socket nobody
    // listens on (unreachable, said so), labelled, cordoned, removed.
    let listed = ok(&run(&["node", "ls"]));
    let local = listed.lines().find(|l| l.starts_with("local")).unwrap();
    assert!(
        local.contains("ready") && local.contains("default"),
        "{listed}"
    );
    let sock = dir.path().join("nobody.sock");
    let endpoint = format!("unix://{}", sock.display());
    let out = run(&["node", "add", "b", &endpoint, "--label", "disk=ssd"]);
    let added = ok(&out);
    assert!(added.contains("unreachable since"), "{added}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("last heartbeat failed"),
        "{out:?}"
    );
    assert_eq!(
        run(&["node", "add", "c", &endpoint, "--label", "nope"])
            .status
            .code(),
        Some(2),
        "a bad label is a usage error"
    );
    let b = json_of(&run(&["node", "show", "b", "--json"]));
    assert_eq!(b["labels"]["disk"], "ssd");
    ok(&run(&["node", "label", "b", "zone=a"]));
    let b = json_of(&run(&["node", "cordon", "b", "--json"]));
    assert_eq!(b["labels"], serde_json::json!({ "zone": "a" }));
    assert_eq!(b["cordoned"], true);
    let b = json_of(&run(&["node", "uncordon", "b", "--json"]));
    assert_eq!(b["cordoned"], false);
    let planned = ok(&run(&["node", "plan", "--type", "shell"]));
    assert_eq!(planned.lines().next(), Some("local"), "{planned}");
    let out = run(&["node", "plan", "--type", "shell", "--label", "zone=x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lacks the label zone=x"),
        "{out:?}"
    );
    let out = run(&["node", "rm", "local"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("[HTTP 409]"));
    ok(&run(&["node", "rm", "b"]));
    assert!(!ok(&run(&["node", "ls"])).contains("nobody.sock"));

    // Your account: a token for a script, listed, revoked; the password.
    let me = json_of(&run(&["account", "show", "--json"]));
    assert_eq!(me["email"], "admin@example.com");
    let token = ok(&run(&["account", "token-add", "deploy"]))
        .trim()
        .to_string();
    assert!(token.starts_with("berth_"), "{token}");
    let as_script = client(&["--token", &token, "account", "show"], &base, &creds, None);
    assert!(ok(&as_script).contains("admin@example.com (admin)"));
    let tokens = json_of(&run(&["account", "tokens", "--json"]));
    let deploy = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "deploy")
        .expect("the new token is listed");
    assert!(!tokens.to_string().contains(&token), "never the secret");
    let listed = ok(&run(&["account", "tokens"]));
    assert!(listed.contains("(this one)"), "{listed}");
    ok(&run(&[
        "account",
        "token-rm",
        deploy["id"].as_str().unwrap(),
    ]));
    let out = client(&["--token", &token, "account", "show"], &base, &creds, None);
    assert_eq!(out.status.code(), Some(1), "revoked");
    assert_eq!(run(&["account", "token-rm", "nope"]).status.code(), Some(2));
    let out = client(
        &["account", "passwd"],
        &base,
        &creds,
        Some("wrong-one\nnew-password\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("currentPassword"));
    ok(&client(
        &["account", "passwd"],
        &base,
        &creds,
        Some("correct-horse\nnew-password\n"),
    ));
    ok(&run(&["account", "show"]));

    ok(&run(&["ws", "stop", &ws]));
    ok(&run(&["ws", "rm", &ws]));

    // The server is gone: a clean message, exit 3.
    let _ = server.child.kill();
    let _ = server.child.wait();
    let out = run(&["project", "ls"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the Berth server"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clean line: {err}");
}

/// The operator's account commands on the data directory: list, reset a
/// password, change a role (never leaving no admin), list and revoke
/// tokens, and remove a user (refused while they own work).
#[test]
fn operators_manage_accounts_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), free_port(), "cli-accounts-unused");
    let run = |args: &[&str], stdin: Option<&str>| berth(args, &config, stdin);
    let say = |out: &Output| String::from_utf8_lossy(&out.stderr).to_string();

    let out = run(
        &[
            "user",
            "add",
            "boss@example.com",
            "--admin",
            "--password-stdin",
        ],
        Some("boss-password\n"),
    );
    assert!(out.status.success(), "{}", say(&out));
    let out = run(
        &["user", "add", "dev@example.com", "--password-stdin"],
        Some("dev-password\n"),
    );
    assert!(out.status.success(), "{}", say(&out));

    let out = run(&["user", "ls", "--json"], None);
    assert!(out.status.success(), "{}", say(&out));
    let users: Value = serde_json::from_slice(&out.stdout).unwrap();
    let roles: Vec<(&str, &str)> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["email"].as_str().unwrap(), u["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [("boss@example.com", "admin"), ("dev@example.com", "member")]
    );
    let table = String::from_utf8(run(&["user", "ls"], None).stdout).unwrap();
    assert!(
        table.starts_with("EMAIL") && table.contains("dev@example.com"),
        "{table}"
    );

    // The only admin stays admin; exit 1 with the reason.
    let out = run(&["user", "role", "boss@example.com", "member"], None);
    assert_eq!(out.status.code(), Some(1), "{}", say(&out));
    assert!(say(&out).contains("only admin"), "{}", say(&out));
    let out = run(&["user", "role", "dev@example.com", "root"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a role clap does not know is usage"
    );

    // Tokens: made, listed without the secret, revoked.
    let token = String::from_utf8(
        run(
            &["token", "create", "dev@example.com", "--name", "laptop"],
            None,
        )
        .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    assert!(token.starts_with("berth_"), "{token}");
    let out = run(&["token", "ls", "dev@example.com", "--json"], None);
    assert!(out.status.success(), "{}", say(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&token));
    let tokens: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tokens.as_array().unwrap().len(), 1, "{tokens}");
    assert_eq!(tokens[0]["name"], "laptop");
    let id = tokens[0]["id"].as_str().unwrap();
    let out = run(&["token", "revoke", "boss@example.com", id], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "not boss's token: {}",
        say(&out)
    );
    let out = run(&["token", "revoke", "dev@example.com", id], None);
    assert!(out.status.success(), "{}", say(&out));
    let out = run(&["token", "ls", "dev@example.com", "--json"], None);
    let tokens: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tokens, json!([]));

    // A password reset; a short one is refused.
    let out = run(
        &["user", "passwd", "dev@example.com", "--password-stdin"],
        Some("short\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(say(&out).contains("at least 8"), "{}", say(&out));
    let out = run(
        &["user", "passwd", "dev@example.com", "--password-stdin"],
        Some("a-new-password\n"),
    );
    assert!(out.status.success(), "{}", say(&out));
    assert!(
        say(&out).contains("password set for dev@example.com"),
        "{}",
        say(&out)
    );

    // Promote, then the old admin may go; the last one may not.
    let out = run(&["user", "role", "dev@example.com", "admin"], None);
    assert!(out.status.success(), "{}", say(&out));
    let out = run(&["user", "rm", "boss@example.com"], None);
    assert!(out.status.success(), "{}", say(&out));
    let out = run(&["user", "rm", "dev@example.com"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(say(&out).contains("only admin"), "{}", say(&out));
    let out = run(&["user", "rm", "nobody@example.com"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(say(&out).contains("no user with email"), "{}", say(&out));
}

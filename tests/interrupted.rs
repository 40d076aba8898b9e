//! The real `berth` binary stopped in the middle of things: killed with
//! SIGKILL during a clone (into an existing project and into a new one)
//! and during a project's move to another node,
//! then started again — the target is exactly as it was, no project
//! appears, and no partial volume stays; and stopped with SIGTERM while
//! log and stats streams are open — they end with `event: end` and the
//! process exits within its bound.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ensure_test_image, TEST_IMAGE};
use futures_util::StreamExt;
use serde_json::{json, Value};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        common::remove_instance(&self.0);
    }
}

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    base: String,
    token: String,
    instance: String,
    _cleanup: Cleanup,
}

impl Env {
    fn new() -> Env {
        ensure_test_image();
        let dir = tempfile::tempdir().unwrap();
        let instance = format!(
            "test-int-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("berth.toml");
        std::fs::write(
            &config,
            format!(
                r#"
listen = "127.0.0.1:{port}"
data_dir = "{data}"
instance = "{instance}"
stop_timeout_s = 1
[types.shell]
image = "{TEST_IMAGE}"
port = 8080
command = ["sh", "-c", "while true; do echo tick; sleep 0.2; done & exec httpd -f -p 8080 -h /www"]
[types.shell.resources]
cpus = 0.5
memory_mb = 64
"#,
                data = dir.path().join("data").display()
            ),
        )
        .unwrap();
        let run = |args: &[&str], stdin: Option<&str>| {
            let mut c = common::berth_bin()
                .args(args)
                .env("BERTH_CONFIG", &config)
                .env_remove("BERTH_LISTEN")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            if let Some(s) = stdin {
                c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
            }
            drop(c.stdin.take());
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        run(
            // An admin: moving a project between nodes is an admin's.
            &[
                "user",
                "add",
                "a@example.com",
                "--admin",
                "--password-stdin",
            ],
            Some("password-1\n"),
        );
        let token = run(&["token", "create", "a@example.com"], None);
        Env {
            _cleanup: Cleanup(instance.clone()),
            dir,
            config,
            base: format!("http://127.0.0.1:{port}"),
            token,
            instance,
        }
    }

    fn serve(&self) -> Server {
        let child = common::berth_bin()
            .args(["serve", "--config"])
            .arg(&self.config)
            .env_remove("BERTH_LISTEN")
            .env("BERTH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut s = Server(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = std::net::TcpStream::connect(self.base.trim_start_matches("http://")).is_ok();
            if up {
                break;
            }
            assert!(s.0.try_wait().unwrap().is_none(), "server exited early");
            assert!(Instant::now() < deadline, "server never came up");
            std::thread::sleep(Duration::from_millis(50));
        }
        // Up: it has done its start-up reconcile.
        let _ = s.0.id();
        s
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn project(&self, name: &str) -> (String, PathBuf) {
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                "/api/projects",
                Some(json!({ "name": name })),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let id = v["data"]["id"].as_str().unwrap().to_string();
        (id, mountpoint(v["data"]["volumeName"].as_str().unwrap()))
    }

    fn volumes(&self) -> Vec<String> {
        let out = Command::new("docker")
            .args(["volume", "ls", "-q", "--filter"])
            .arg(format!("label=berth.instance={}", self.instance))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    }
}

fn mountpoint(volume: &str) -> PathBuf {
    let out = Command::new("docker")
        .args(["volume", "inspect", "-f", "{{.Mountpoint}}", volume])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Path → content hash of every file under `root`.
fn manifest(root: &Path) -> Vec<(String, String)> {
    use sha2::Digest;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            out.push((
                rel,
                hex::encode(sha2::Sha256::digest(std::fs::read(&p).unwrap())),
            ));
        }
    }
    out.sort();
    out
}

/// Fills a volume with enough files that copying them takes a while.
fn fill(dir: &Path) {
    for d in 0..40 {
        let sub = dir.join(format!("d{d}"));
        std::fs::create_dir(&sub).unwrap();
        for f in 0..500 {
            std::fs::write(sub.join(format!("f{f}")), format!("{d}/{f}").repeat(200)).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_cut_short_by_a_killed_server_changes_nothing() {
    let env = Env::new();
    let mut server = env.serve();
    let (src, src_dir) = env.project("src").await;
    fill(&src_dir);
    let (dst, dst_dir) = env.project("dst").await;
    std::fs::write(dst_dir.join("keep.txt"), "the target's own data").unwrap();
    let before = manifest(&dst_dir);

    for target in [
        json!({ "targetProjectId": dst, "overwrite": true }),
        json!({ "name": "new" }),
    ] {
        let volumes_before = env.volumes();
        let clone = {
            let (base, token, target, src) = (
                env.base.clone(),
                env.token.clone(),
                target.clone(),
                src.clone(),
            );
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{base}/api/workspaces/projects/{src}/clone"))
                    .bearer_auth(token)
                    .json(&target)
                    .send()
                    .await
            })
        };
        // Kill it once the copy is under way: a new volume filling.
        let deadline = Instant::now() + Duration::from_secs(30);
        let partial = loop {
            let fresh: Vec<String> = env
                .volumes()
                .into_iter()
                .filter(|v| !volumes_before.contains(v))
                .collect();
            if let Some(v) = fresh.first() {
                let files = std::fs::read_dir(mountpoint(v))
                    .map(|d| d.count())
                    .unwrap_or(0);
                if files > 0 {
                    break v.clone();
                }
            }
            assert!(Instant::now() < deadline, "the clone never started copying");
            std::thread::sleep(Duration::from_millis(2));
        };
        server.0.kill().unwrap();
        server.0.wait().unwrap();
        assert!(
            clone.await.unwrap().is_err(),
            "the request died with the server"
        );

        server = env.serve();
        // The target is as it was; no project appeared; the partial volume
        // is gone.
        assert_eq!(manifest(&dst_dir), before, "{target}");
        let (_, v) = env
            .call(reqwest::Method::GET, &format!("/api/projects/{dst}"), None)
            .await;
        assert_eq!(
            mountpoint(v["data"]["volumeName"].as_str().unwrap()),
            dst_dir
        );
        let (_, v) = env.call(reqwest::Method::GET, "/api/projects", None).await;
        let names: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(!env.volumes().contains(&partial), "{partial} left behind");
        assert_eq!(
            env.volumes().len(),
            volumes_before.len(),
            "{:?}",
            env.volumes()
        );
    }
    // And a clone left alone completes.
    let (s, v) = env
        .call(
            reqwest::Method::POST,
            &format!("/api/workspaces/projects/{src}/clone"),
            Some(json!({ "targetProjectId": dst, "overwrite": true })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let new_dir = mountpoint(v["data"]["volumeName"].as_str().unwrap());
    assert_eq!(manifest(&new_dir), manifest(&src_dir));
    let _ = env.dir.path();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_streams_and_the_process_in_bounded_time() {
    let env = Env::new();
    let server = env.serve();
    let (pid, _) = env.project("p").await;
    let (s, v) = env
        .call(
            reqwest::Method::POST,
            "/api/workspaces",
            Some(json!({ "name": "w", "type": "shell", "projectId": pid })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    let (s, v) = env
        .call(
            reqwest::Method::POST,
            &format!("/api/workspaces/{id}/start"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // Two followers that never end by themselves.
    let mut streams = Vec::new();
    for path in ["logs/stream", "stats/stream?interval=1"] {
        let resp = reqwest::Client::new()
            .get(format!("{}/api/workspaces/{id}/{path}", env.base))
            .bearer_auth(&env.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        streams.push(tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let mut seen = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let st = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "berth did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "exit took {took:?}");
    for s in streams {
        let seen = tokio::time::timeout(Duration::from_secs(5), s)
            .await
            .expect("the stream ended")
            .unwrap();
        assert!(
            seen.contains("event: end") && seen.contains("shutting down"),
            "{seen}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_cut_short_by_a_killed_server_switches_nothing() {
    let env = Env::new();
    let sock = env.dir.path().join("node-m.sock");
    let _forwarder = common::forward_engine(&sock);
    let mut server = env.serve();
    let (s, v) = env
        .call(
            reqwest::Method::POST,
            "/api/nodes",
            Some(json!({ "name": "m", "endpoint": format!("unix://{}", sock.display()) })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (pid, dir) = env.project("moving").await;
    fill(&dir);
    let before = manifest(&dir);
    let volumes_before = env.volumes();
    let mv = {
        let (base, token, pid) = (env.base.clone(), env.token.clone(), pid.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{base}/api/projects/{pid}/move"))
                .bearer_auth(token)
                .json(&json!({ "node": "m" }))
                .send()
                .await
        })
    };
    // Kill it once the copy is under way: the target volume filling.
    let deadline = Instant::now() + Duration::from_secs(30);
    let partial = loop {
        let fresh: Vec<String> = env
            .volumes()
            .into_iter()
            .filter(|v| !volumes_before.contains(v))
            .collect();
        if let Some(v) = fresh.first() {
            let files = std::fs::read_dir(mountpoint(v).join("d0"))
                .map(|d| d.count())
                .unwrap_or(0);
            if files > 0 {
                break v.clone();
            }
        }
        assert!(Instant::now() < deadline, "the move never started copying");
        std::thread::sleep(Duration::from_millis(2));
    };
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    assert!(
        mv.await.unwrap().is_err(),
        "the request died with the server"
    );

    let _server = env.serve();
    // Still on local with its own volume, untouched; the partial copy on
    // m is gone.
    let (_, v) = env
        .call(reqwest::Method::GET, &format!("/api/projects/{pid}"), None)
        .await;
    assert_eq!(v["data"]["node"], "local", "{v}");
    assert_eq!(mountpoint(v["data"]["volumeName"].as_str().unwrap()), dir);
    assert_eq!(manifest(&dir), before);
    assert!(!env.volumes().contains(&partial), "{partial} left behind");
    // Moved when left alone.
    let (s, v) = env
        .call(
            reqwest::Method::POST,
            &format!("/api/projects/{pid}/move"),
            Some(json!({ "node": "m" })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let moved = mountpoint(v["data"]["volumeName"].as_str().unwrap());
    assert_eq!(manifest(&moved), before);
}

//! Several `berth serve` processes ("replicas") on one PostgreSQL
//! database, as separate processes on their own loopback ports: any
//! replica answers for any workspace, lifecycle operations through
//! different replicas are serialised, each scheduled tick runs once, and a
//! replica killed with SIGKILL loses nothing silently — what it had under
//! way is marked interrupted by another within the heartbeat bound, with
//! no helper container or partial archive left. On SQLite a second server
//! on one data directory is refused, as is a replica that could not reach
//! the others' archives or calls another engine `local`.
//!
//! The PostgreSQL tests run under `scripts/with-postgres` (which
//! `scripts/test` uses with `BERTH_REQUIRE_POSTGRES=1`); without a server
//! they do nothing, unless that variable makes it a failure.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::moto::{free_port, Moto, BUCKET};
use common::{ensure_test_image, TEST_IMAGE};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// A `berth serve` process, killed when dropped.
struct Replica {
    child: Child,
    port: u16,
    /// Its standard error (warnings and errors).
    log: PathBuf,
}

impl Replica {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        common::remove_instance(&self.0);
    }
}

/// The PostgreSQL server of `scripts/with-postgres`, if there is one.
fn postgres_server() -> Option<String> {
    match std::env::var("BERTH_TEST_DATABASE_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var_os("BERTH_REQUIRE_POSTGRES").is_none(),
                "BERTH_REQUIRE_POSTGRES is set but BERTH_TEST_DATABASE_URL is not"
            );
            eprintln!(
                "no PostgreSQL server: run under scripts/with-postgres for the replica tests"
            );
            None
        }
    }
}

/// A fresh database on the server, named after `instance`.
async fn database(server: &str, instance: &str) -> String {
    use sqlx::Connection;
    let server = server.trim_end_matches('/');
    let host = server.strip_prefix("postgres://").unwrap();
    let mut admin = sqlx::PgConnection::connect(&format!("postgres://{host}/postgres"))
        .await
        .expect("the PostgreSQL server of BERTH_TEST_DATABASE_URL");
    let db = instance.replace('-', "_");
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .unwrap();
    format!("{server}/{db}")
}

/// Runs a command of the binary with `config`; its standard output.
fn run(config: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut c = common::berth_bin()
        .args(args)
        .env("BERTH_CONFIG", config)
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
}

/// Replicas of one installation on one data directory and database.
struct Cluster {
    dir: tempfile::TempDir,
    instance: String,
    database_url: String,
    /// Config lines every replica gets beside the common ones.
    extra: String,
    token: String,
    replicas: Vec<Replica>,
    http: reqwest::Client,
    _cleanup: Cleanup,
}

impl Cluster {
    /// `n` replicas, each serving; `None` without PostgreSQL.
    async fn start(n: usize, extra: &str) -> Option<Cluster> {
        let server = postgres_server()?;
        ensure_test_image();
        let instance = format!(
            "test-rep-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let database_url = database(&server, &instance).await;
        let mut c = Cluster {
            dir: tempfile::tempdir().unwrap(),
            _cleanup: Cleanup(instance.clone()),
            instance,
            database_url,
            extra: extra.to_string(),
            token: String::new(),
            replicas: Vec::new(),
            http: reqwest::Client::new(),
        };
        let first = c.config(free_port(), &c.dir.path().join("data"));
        run(
            &first,
            &[
                "user",
                "add",
                "a@example.com",
                "--admin",
                "--password-stdin",
            ],
            Some("password-1\n"),
        );
        c.token = run(&first, &["token", "create", "a@example.com"], None);
        for _ in 0..n {
            let r = c.spawn(&c.dir.path().join("data"), &c.extra.clone());
            let r = wait_up(r).await.unwrap_or_else(|e| panic!("{e}"));
            c.replicas.push(r);
        }
        Some(c)
    }

    /// Writes a replica's config file (`port`, `data`) and returns it.
    fn config(&self, port: u16, data: &Path) -> PathBuf {
        self.config_with(port, data, &self.extra, &self.instance)
    }

    fn config_with(&self, port: u16, data: &Path, extra: &str, instance: &str) -> PathBuf {
        let path = self.dir.path().join(format!("berth-{port}.toml"));
        std::fs::write(
            &path,
            format!(
                r#"
listen = "127.0.0.1:{port}"
data_dir = "{data}"
database_url = "{db}"
instance = "{instance}"
stop_timeout_s = 1
[replicas]
heartbeat_s = 1
dead_after_s = 6
[types.shell]
image = "{TEST_IMAGE}"
port = 8080
command = ["sh", "-c", "while true; do echo tick; sleep 0.2; done & mkdir -p /www && exec httpd -f -p 8080 -h /www"]
[types.shell.resources]
cpus = 0.5
memory_mb = 64
{extra}
"#,
                data = data.display(),
                db = self.database_url,
            ),
        )
        .unwrap();
        path
    }

    /// Starts a replica on `data` (not waited for).
    fn spawn(&self, data: &Path, extra: &str) -> Replica {
        let port = free_port();
        let config = self.config_with(port, data, extra, &self.instance);
        serve(config, port)
    }

    async fn call(
        &self,
        i: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.replicas[i].base()))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    async fn get(&self, i: usize, path: &str) -> Value {
        let (status, v) = self.call(i, reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path} through replica {i}: {v}");
        v["data"].clone()
    }

    async fn post(&self, i: usize, path: &str, body: Value) -> Value {
        let (status, v) = self.call(i, reqwest::Method::POST, path, Some(body)).await;
        assert!(
            status == 200 || status == 201,
            "POST {path} through replica {i}: {status} {v}"
        );
        v["data"].clone()
    }

    /// A Server-Sent Events stream through replica `i`, read until it has
    /// said `until` (at most 10 s), then closed.
    async fn sse(&self, i: usize, path: &str, until: &str) -> String {
        let resp = self
            .http
            .get(format!("{}{path}", self.replicas[i].base()))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {path} through replica {i}");
        let mut body = resp.bytes_stream();
        let mut seen = String::new();
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(chunk) = body.next().await {
                seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
                if seen.contains(until) {
                    break;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{path} through replica {i} never said {until:?}: {seen:?}"));
        seen
    }

    /// A project and a `shell` workspace on it, through replica `i`.
    async fn workspace(&self, i: usize) -> (String, String) {
        let p = self.post(i, "/api/projects", json!({ "name": "p" })).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let w = self
            .post(
                i,
                "/api/workspaces",
                json!({ "name": "w", "type": "shell", "projectId": p }),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        (p, w)
    }

    /// Runs `script` in a throwaway container with the project's volume at
    /// `/data`; its standard output.
    async fn in_volume(&self, project: &str, script: &str) -> String {
        let volume = self.get(0, &format!("/api/projects/{project}")).await["volumeName"]
            .as_str()
            .unwrap()
            .to_string();
        let out = Command::new("docker")
            .args([
                "run",
                "--rm",
                "-v",
                &format!("{volume}:/data"),
                TEST_IMAGE,
                "sh",
                "-c",
                script,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The containers of this installation named `name`.
    fn containers_named(&self, name: &str) -> Vec<String> {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=berth.instance={}", self.instance),
                "--filter",
                &format!("name=^/{name}$"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// The helper containers of this installation.
    fn helpers(&self) -> Vec<String> {
        let out = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=berth.instance={}", self.instance),
                "--filter",
                "label=berth.helper=true",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    }
}

fn serve(config: PathBuf, port: u16) -> Replica {
    let log = config.with_extension("log");
    let child = common::berth_bin()
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("BERTH_LISTEN")
        .env("BERTH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Replica { child, port, log }
}

/// Waits until the replica answers `/healthz`; its standard error when it
/// exits first.
async fn wait_up(mut r: Replica) -> Result<Replica, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = r.child.try_wait().unwrap() {
            return Err(format!("the replica exited ({status}): {}", r.log()));
        }
        if reqwest::get(format!("{}/healthz", r.base()))
            .await
            .is_ok_and(|resp| resp.status().is_success())
        {
            return Ok(r);
        }
        assert!(Instant::now() < deadline, "the replica never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` until it gives `Some`, at most `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_the_work_and_run_each_tick_once() {
    let Some(c) = Cluster::start(
        3,
        r#"
[cleanup.schedules]
inactive = "* * * * *"
orphaned_containers = "* * * * *"
orphaned_volumes = "* * * * *"
error_recovery = "* * * * *"
"#,
    )
    .await
    else {
        return;
    };
    let all_up = chrono::Utc::now().timestamp_millis();

    // Every replica lists the three, each live, and says which it is.
    for i in 0..3 {
        let list = c.get(i, "/api/replicas").await;
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 3, "{list:?}");
        assert!(list.iter().all(|r| r["state"] == "live"), "{list:?}");
        let me: Vec<_> = list.iter().filter(|r| r["current"] == true).collect();
        assert_eq!(me.len(), 1);
        assert!(me[0]["name"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", c.replicas[i].port)));
    }

    // Start through A, status through C, stop through B, status through A.
    let (_, w) = c.workspace(0).await;
    let started = c
        .post(0, &format!("/api/workspaces/{w}/start"), json!({}))
        .await;
    assert_eq!(started["status"], "running", "{started}");
    let status = c.get(2, &format!("/api/workspaces/{w}/status")).await;
    assert_eq!(status["status"], "running", "{status}");

    // Its logs followed through B, its live figures through C (Server-Sent
    // Events): each replica streams a workspace another one started.
    let logs = c
        .sse(1, &format!("/api/workspaces/{w}/logs/stream"), "data: tick")
        .await;
    assert!(logs.contains("data: tick"), "{logs}");
    let stats = c
        .sse(
            2,
            &format!("/api/workspaces/{w}/stats/stream?interval=1"),
            "\"memory\"",
        )
        .await;
    let line = stats
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a stats event");
    let v: Value = serde_json::from_str(line).unwrap();
    assert!(v["memory"]["limit"].as_f64().unwrap() > 0.0, "{v}");

    let stopped = c
        .post(1, &format!("/api/workspaces/{w}/stop"), json!({}))
        .await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    for i in [0, 2] {
        let s = c.get(i, &format!("/api/workspaces/{w}/status")).await;
        assert_eq!(s["status"], "stopped", "through replica {i}: {s}");
    }

    // Twenty starts at once, spread over the replicas: one container, and
    // every answer says running.
    let starts = (0..20).map(|k| {
        let c = &c;
        let w = w.clone();
        async move {
            c.call(
                k % 3,
                reqwest::Method::POST,
                &format!("/api/workspaces/{w}/start"),
                Some(json!({})),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(starts).await;
    for (status, v) in &answers {
        assert_eq!(*status, 200, "{v}");
        assert_eq!(v["data"]["status"], "running", "{v}");
    }
    let named = c.containers_named(&format!("berth-ws-{w}"));
    assert_eq!(named.len(), 1, "one container: {named:?}");
    let ids: std::collections::BTreeSet<_> = answers
        .iter()
        .map(|(_, v)| v["data"]["containerId"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "every answer names the same container: {ids:?}"
    );

    // Starts and stops at once through every replica: they are serialised,
    // and the record ends as the engine says.
    let mixed = (0..12).map(|k| {
        let c = &c;
        let w = w.clone();
        let what = if k % 2 == 0 { "start" } else { "stop" };
        async move {
            c.call(
                k % 3,
                reqwest::Method::POST,
                &format!("/api/workspaces/{w}/{what}"),
                Some(json!({})),
            )
            .await
        }
    });
    for (status, v) in futures_util::future::join_all(mixed).await {
        assert_eq!(status, 200, "{v}");
    }
    let record = c.get(1, &format!("/api/workspaces/{w}/status")).await;
    let running = Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.State.Running}}",
            &format!("berth-ws-{w}"),
        ])
        .output()
        .unwrap();
    let running = String::from_utf8_lossy(&running.stdout).trim() == "true";
    assert_eq!(
        record["status"],
        if running { "running" } else { "stopped" },
        "{record}"
    );
    assert!(c.containers_named(&format!("berth-ws-{w}")).len() <= 1);

    // Every replica follows the engine's events; a container killed behind
    // Berth's back is restarted once, not once per replica — the first
    // time at once, the second after its backoff, which a row in the
    // database holds and one replica's timer carries out.
    let started = c
        .post(2, &format!("/api/workspaces/{w}/start"), json!({}))
        .await;
    assert_eq!(started["status"], "running", "{started}");
    let started_at = || {
        let out = Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{.State.Running}} {{.State.StartedAt}}",
                &format!("berth-ws-{w}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let restarts = |kind: &'static str| {
        let c = &c;
        let w = w.clone();
        async move {
            c.get(0, &format!("/api/workspaces/{w}/events"))
                .await
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == kind)
                .count()
        }
    };
    let before = restarts("recovery_restart").await;
    for round in 1..=2 {
        let was = started_at();
        let out = Command::new("docker")
            .args(["kill", &format!("berth-ws-{w}")])
            .output()
            .unwrap();
        assert!(out.status.success());
        eventually(
            Duration::from_secs(20),
            "the killed workspace restarted",
            || async {
                let now = started_at();
                (now.starts_with("true ") && now != was).then_some(())
            },
        )
        .await;
        // Time for any replica that would restart it again to do so.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            restarts("recovery_restart").await,
            before + round,
            "restart {round}: one restart, whatever the number of replicas"
        );
    }
    assert_eq!(
        restarts("recovery_scheduled").await,
        1,
        "the second waited out its backoff"
    );
    let status = c.get(1, &format!("/api/workspaces/{w}/status")).await;
    assert_eq!(status["status"], "running", "{status}");

    // Failed logins count wherever they land: five wrong passwords spread
    // over the replicas lock the account on all of them.
    for k in 0..5 {
        let (status, _) = c
            .call(
                k % 3,
                reqwest::Method::POST,
                "/api/auth/login",
                Some(json!({ "email": "a@example.com", "password": "not-it" })),
            )
            .await;
        assert_eq!(status, 401);
    }
    for i in 0..3 {
        let (status, v) = c
            .call(
                i,
                reqwest::Method::POST,
                "/api/auth/login",
                Some(json!({ "email": "a@example.com", "password": "password-1" })),
            )
            .await;
        assert_eq!(status, 429, "through replica {i}: {v}");
    }

    // The command line lists the replicas.
    let out = common::berth_bin()
        .args([
            "replicas",
            "--server",
            &c.replicas[1].base(),
            "--token",
            &c.token,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(" live ").count(), 3, "{text}");
    assert!(
        text.contains(&format!(":{} *", c.replicas[1].port)),
        "{text}"
    );

    // Every job on a one-minute schedule, three replicas, three minutes:
    // three runs of each, not nine.
    let jobs = [
        "inactive",
        "orphaned-containers",
        "orphaned-volumes",
        "error-recovery",
        "backups",
    ];
    let ticks_after = |from: i64| {
        // The first whole minute after `from`, and the two after it.
        let first = (from / 60_000 + 1) * 60_000;
        [first, first + 60_000, first + 120_000]
    };
    let want = ticks_after(all_up);
    let done_by = want[2] + 20_000;
    let now = chrono::Utc::now().timestamp_millis();
    if done_by > now {
        tokio::time::sleep(Duration::from_millis((done_by - now) as u64)).await;
    }
    let mut by_replica = std::collections::BTreeMap::<String, usize>::new();
    for job in jobs {
        let runs = c.get(2, &format!("/api/jobs/{job}/runs?limit=100")).await;
        let runs = runs.as_array().unwrap();
        let mut ticks: Vec<i64> = runs
            .iter()
            .filter_map(|r| r["tick"].as_str())
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .unwrap()
                    .timestamp_millis()
            })
            .filter(|t| want.contains(t))
            .collect();
        ticks.sort();
        assert_eq!(
            ticks,
            want.to_vec(),
            "{job}: one run per tick, each tick run: {runs:?}"
        );
        let for_ticks: Vec<_> = runs
            .iter()
            .filter(|r| r["tick"].as_str().is_some())
            .collect();
        let distinct: std::collections::BTreeSet<_> = for_ticks
            .iter()
            .map(|r| r["tick"].as_str().unwrap())
            .collect();
        assert_eq!(
            distinct.len(),
            for_ticks.len(),
            "{job}: a tick run twice: {runs:?}"
        );
        for r in &for_ticks {
            assert!(
                r["outcome"] == "ok" || r["outcome"] == "skipped",
                "{job}: {r}"
            );
            *by_replica
                .entry(r["replica"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    // Which replica runs a tick is a race; every run names one of the three.
    let ids: Vec<String> = c
        .get(0, "/api/replicas")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert!(by_replica.keys().all(|r| ids.contains(r)), "{by_replica:?}");

    // A drain begun through one replica is followed through another (its
    // project has nowhere to go: it stays, with the reason).
    let (status, v) = c
        .call(
            0,
            reqwest::Method::POST,
            "/api/nodes/local/drain",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let drained = eventually(Duration::from_secs(30), "the drain over", || async {
        let d = c.get(2, "/api/nodes/local/drain").await;
        d["finishedAt"].is_string().then_some(d)
    })
    .await;
    assert!(
        drained["failed"].as_array().is_some_and(|f| !f.is_empty()),
        "{drained}"
    );
    let (status, v) = c
        .call(
            1,
            reqwest::Method::PATCH,
            "/api/nodes/local",
            Some(json!({ "cordoned": false })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_during_a_scheduled_backup_loses_nothing_silently() {
    // Backups through the engine's archive API (helper containers), a
    // project whose schedule comes round every minute.
    let Some(mut c) = Cluster::start(
        3,
        r#"
[backups]
volume_access = "engine"
"#,
    )
    .await
    else {
        return;
    };
    let (p, _) = c.workspace(0).await;
    // 400 MB that do not compress: a backup that takes seconds.
    c.in_volume(&p, "head -c 400000000 /dev/urandom > /data/big")
        .await;
    let (status, v) = c
        .call(
            0,
            reqwest::Method::PUT,
            &format!("/api/projects/{p}/backup-policy"),
            Some(json!({ "schedule": "* * * * *" })),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    // The next tick's run makes the backup; find the replica running it.
    let run = eventually(Duration::from_secs(90), "a running backups job", || async {
        let runs = c.get(1, "/api/jobs/backups/runs?limit=5").await;
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["outcome"] == "running")
            .cloned()
    })
    .await;
    let runner = run["replica"].as_str().unwrap().to_string();
    let replicas = c.get(1, "/api/replicas").await;
    let name = replicas
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == runner.as_str())
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let victim = c
        .replicas
        .iter()
        .position(|r| name.ends_with(&format!(":{}", r.port)))
        .unwrap();
    let other = (victim + 1) % 3;
    // Kill it while the archive is being written: its helper exists and
    // its temporary file is there.
    let backups_dir = c.dir.path().join("data/backups");
    eventually(
        Duration::from_secs(60),
        "the archive being written",
        || async {
            let tmp = std::fs::read_dir(&backups_dir)
                .map(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                })
                .unwrap_or(false);
            (tmp && !c.helpers().is_empty()).then_some(())
        },
    )
    .await;
    c.replicas[victim].kill();
    let killed = Instant::now();

    // Another replica marks the run and the backup interrupted within the
    // heartbeat bound (dead_after_s = 6, a look every second).
    let run_id = run["id"].as_str().unwrap().to_string();
    let interrupted = eventually(
        Duration::from_secs(20),
        "the run marked interrupted",
        || async {
            let runs = c.get(other, "/api/jobs/backups/runs?limit=10").await;
            runs.as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == run_id.as_str() && r["outcome"] == "interrupted")
                .cloned()
        },
    )
    .await;
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(12), "interrupted after {took:?}");
    assert!(
        interrupted["error"]
            .as_str()
            .unwrap()
            .contains("stopped answering"),
        "{interrupted}"
    );
    let list = c.get(other, &format!("/api/projects/{p}/backups")).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["state"], "failed");
    assert!(
        list[0]["error"].as_str().unwrap().contains("interrupted"),
        "{list:?}"
    );
    // Nothing of it left: no helper, no partial archive.
    eventually(Duration::from_secs(5), "the helper removed", || async {
        c.helpers().is_empty().then_some(())
    })
    .await;
    let left: Vec<_> = std::fs::read_dir(&backups_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n != ".berth-archive-dir")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The others say it is gone, and who took care of it.
    let gone = eventually(
        Duration::from_secs(10),
        "the replica marked reaped",
        || async {
            let replicas = c.get(other, "/api/replicas").await;
            replicas
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == runner.as_str() && r["reapedBy"].is_string())
                .cloned()
        },
    )
    .await;
    assert_eq!(gone["state"], "gone", "{gone}");

    // The next tick runs normally, on a replica still there.
    let next = eventually(Duration::from_secs(90), "the next tick's run", || async {
        let runs = c.get(other, "/api/jobs/backups/runs?limit=10").await;
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| {
                r["outcome"] == "ok"
                    && r["details"]
                        .as_array()
                        .is_some_and(|d| d.iter().any(|d| d["action"] == "backup"))
            })
            .cloned()
    })
    .await;
    assert_ne!(next["replica"], runner.as_str());
    let list = c.get(other, &format!("/api/projects/{p}/backups")).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|b| b["state"] == "complete"),
        "{list}"
    );
    assert!(c.helpers().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_with_their_own_archive_directories_fetch_from_remote_storage() {
    if postgres_server().is_none() {
        return;
    }
    let moto = Moto::start(free_port()).await;
    let remote = format!(
        r#"
[backups.remote]
url = "s3://{BUCKET}/replicas"
endpoint = "http://127.0.0.1:{}"
allow_http = true
access_key_id = "berth-test"
secret_access_key = "berth-test-secret"
"#,
        moto.port
    );
    let Some(mut c) = Cluster::start(1, &remote).await else {
        return;
    };
    // A second replica with a backup directory of its own: allowed, since
    // every archive also goes to the bucket.
    let b = c.spawn(&c.dir.path().join("data-b"), &remote);
    c.replicas
        .push(wait_up(b).await.unwrap_or_else(|e| panic!("{e}")));
    let (p, _) = c.workspace(0).await;
    c.in_volume(&p, "echo made-on-a > /data/note").await;
    // Backed up through A; its remote copy stored.
    let backup = c
        .post(
            0,
            &format!("/api/workspaces/projects/{p}/backup"),
            json!({}),
        )
        .await;
    let id = backup["id"].as_str().unwrap().to_string();
    let sha = backup["sha256"].as_str().unwrap().to_string();
    let seen = eventually(
        Duration::from_secs(60),
        "the remote copy stored",
        || async {
            let b = c.get(1, &format!("/api/backups/{id}")).await;
            (b["remote"]["state"] == "stored").then_some(b)
        },
    )
    .await;
    // B has no archive of it here, and says so.
    assert_eq!(seen["storedLocally"], false, "{seen}");
    // Downloaded through B: fetched from the bucket, the same bytes.
    let bytes = c
        .http
        .get(format!(
            "{}/api/backups/{id}/download",
            c.replicas[1].base()
        ))
        .bearer_auth(&c.token)
        .send()
        .await
        .unwrap();
    assert_eq!(bytes.status(), 200);
    let bytes = bytes.bytes().await.unwrap();
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), sha);
    // Restored through B, from the archive it fetched.
    let (status, v) = c
        .call(
            1,
            reqwest::Method::POST,
            &format!("/api/workspaces/projects/{p}/restore"),
            Some(json!({ "backupId": id })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(c.in_volume(&p, "cat /data/note").await, "made-on-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_taken_for_gone_stops_serving() {
    let Some(mut c) = Cluster::start(2, "").await else {
        return;
    };
    // Frozen for longer than dead_after_s (6 s): the other takes it for
    // gone and takes over its work.
    let frozen = c.replicas[1].child.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &frozen])
        .status()
        .unwrap()
        .success());
    let id = eventually(
        Duration::from_secs(20),
        "the frozen replica reaped",
        || async {
            let list = c.get(0, "/api/replicas").await;
            list.as_array()
                .unwrap()
                .iter()
                .find(|r| r["current"] == false && r["reapedBy"].is_string())
                .map(|r| r["id"].as_str().unwrap().to_string())
        },
    )
    .await;
    // Woken, it finds its row reaped at its next heartbeat and exits.
    assert!(Command::new("kill")
        .args(["-CONT", &frozen])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = c.replicas[1].child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the fenced replica still serves: {}",
            c.replicas[1].log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "it exits with a failure: {status}");
    let list = c.get(0, "/api/replicas").await;
    let gone = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(gone["state"], "gone", "{gone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_join_is_refused_with_the_reason() {
    let Some(c) = Cluster::start(1, "").await else {
        return;
    };
    // Another backup directory, and no remote storage: its archives would
    // be out of the others' reach.
    let elsewhere = c.dir.path().join("elsewhere");
    let r = c.spawn(&elsewhere, "");
    let err = wait_up(r).await.err().expect("refused");
    assert!(err.contains("backups.remote.url"), "{err}");
    // Another instance label on the same database.
    let port = free_port();
    let config = c.config_with(port, &c.dir.path().join("data"), "", "another-instance");
    let err = wait_up(serve(config, port)).await.err().expect("refused");
    assert!(err.contains("instance"), "{err}");
    // The one serving still does.
    assert_eq!(c.get(0, "/api/replicas").await.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_sqlite_data_directory_is_refused() {
    ensure_test_image();
    let dir = tempfile::tempdir().unwrap();
    let instance = format!(
        "test-one-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let _cleanup = Cleanup(instance.clone());
    let config = |port: u16| {
        let path = dir.path().join(format!("berth-{port}.toml"));
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\ninstance = \"{instance}\"\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        path
    };
    let p1 = free_port();
    let first = wait_up(serve(config(p1), p1)).await.unwrap();
    let p2 = free_port();
    let err = wait_up(serve(config(p2), p2)).await.err().expect("refused");
    assert!(err.contains("another berth serve"), "{err}");
    assert!(err.contains(&format!("pid {}", first.child.id())), "{err}");
    assert!(err.contains("PostgreSQL"), "{err}");
    // The first one is untouched, and once it is gone another may serve.
    assert!(reqwest::get(format!("{}/healthz", first.base()))
        .await
        .unwrap()
        .status()
        .is_success());
    drop(first);
    let p3 = free_port();
    wait_up(serve(config(p3), p3)).await.unwrap();
}

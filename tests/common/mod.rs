//! Shared helpers for the integration tests: the local test image (built
//! once from the host's static busybox), a Berth instance per test with its
//! own database and a unique `berth.instance` label, requests through the
//! real router, `docker inspect` for assertions, and cleanup of everything
//! the test made (and nothing else).

#![allow(dead_code)]

pub mod described;
pub mod moto;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use berth::config::Config;
use berth::domain::recovery::RecoveryPolicy;
use berth::domain::{HealthCheck, ResourceLimits, Role, WorkspaceType};
use berth::engine::Engine;
use berth::service::{Berth, NewUser};
use berth::store::Store;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

/// The image the test types run. Rebuilt when missing.
pub const TEST_IMAGE: &str = "berth-test/busybox:v1";

/// A type name whose image does not exist.
pub const MISSING_TYPE: &str = "missing";

/// The `berth` binary as a command, without the tests' own environment
/// variables (`BERTH_TEST_*`, `BERTH_REQUIRE_*`), which are no configuration
/// keys: the binary would refuse them.
pub fn berth_bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    for (k, _) in std::env::vars() {
        if k.starts_with("BERTH_TEST_") || k.starts_with("BERTH_REQUIRE_") {
            c.env_remove(k);
        }
    }
    c
}

/// Fails loudly when there is no engine: these tests exist to exercise it.
pub fn require_docker() {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the integration tests need a running Docker engine (docker version failed)"
    );
}

/// Builds the test image once per test process (idempotent across processes).
pub fn ensure_test_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        require_docker();
        let present = Command::new("docker")
            .args(["image", "inspect", TEST_IMAGE])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !present {
            let script =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/build-busybox-image.sh");
            let out = Command::new("bash")
                .arg(script)
                .arg(TEST_IMAGE)
                .output()
                .expect("run build-busybox-image.sh");
            assert!(
                out.status.success(),
                "building the test image failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
}

/// The busybox test image with the `berth-echo` fixture added, tagged by the
/// fixture's checksum so a rebuilt fixture gets a new image. Built once per
/// test process.
pub fn ensure_echo_image() -> String {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        require_docker();
        let program = env!("CARGO_BIN_EXE_berth-echo");
        let bytes = std::fs::read(program).expect("read berth-echo");
        let digest = {
            use sha2::Digest as _;
            hex::encode(sha2::Sha256::digest(&bytes))
        };
        let tag = format!("berth-test/echo:{}", &digest[..16]);
        let present = Command::new("docker")
            .args(["image", "inspect", &tag])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !present {
            let script =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/build-busybox-image.sh");
            let out = Command::new("bash")
                .arg(script)
                .arg(&tag)
                .arg(program)
                .output()
                .expect("run build-busybox-image.sh");
            assert!(
                out.status.success(),
                "building the echo image failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tag
    })
    .clone()
}

/// A workspace type running the `berth-echo` fixture (HTTP + WebSocket echo)
/// with a fast health check.
pub fn echo_type() -> WorkspaceType {
    WorkspaceType {
        image: ensure_echo_image(),
        command: vec!["/bin/berth-echo".into()],
        env: BTreeMap::new(),
        description: "echo fixture".into(),
        activity_probe: None,
        ..box_type()
    }
}

/// The test workspace type: the busybox HTTP server with a fast health check.
pub fn box_type() -> WorkspaceType {
    WorkspaceType {
        image: TEST_IMAGE.into(),
        port: 8080,
        // The served files live in the container's /tmp and are written at
        // start, so a test can break the health check (rm the file) and a
        // restart mends it.
        command: vec![
            "sh".into(),
            "-c".into(),
            "mkdir -p /tmp/www && echo ok > /tmp/www/healthz && exec httpd -f -p 8080 -h /tmp/www"
                .into(),
        ],
        env: BTreeMap::from([("FROM_TYPE".to_string(), "yes".to_string())]),
        description: "test box".into(),
        resources: ResourceLimits {
            cpus: 0.5,
            memory_mb: 64,
            memory_swap_mb: Some(128),
            memory_reservation_mb: Some(16),
        },
        health_check: Some(HealthCheck {
            command: "wget -q -O /dev/null http://127.0.0.1:8080/healthz || exit 1".into(),
            disabled: false,
            interval_s: 1,
            timeout_s: 2,
            retries: 2,
            start_period_s: 0,
        }),
        // Tests write /tmp/www/activity to play a workspace reporting use.
        activity_probe: Some(berth::domain::ActivityProbe {
            path: "/activity".into(),
            field: "lastHeartbeat".into(),
        }),
        proxy: Default::default(),
    }
}

pub fn test_config(dir: &std::path::Path, instance: &str) -> Config {
    let mut c = Config {
        data_dir: dir.to_path_buf(),
        instance: instance.to_string(),
        stop_timeout_s: 2,
        max_body_bytes: 64 * 1024,
        ..Config::default()
    };
    // With BERTH_TEST_DATABASE_URL (a PostgreSQL server, e.g.
    // postgres://berth@127.0.0.1:55432) every environment gets its own
    // database there, named after its instance; `scripts/test` runs the
    // store-heavy test files that way too (SQLite otherwise).
    if let Ok(server) = std::env::var("BERTH_TEST_DATABASE_URL") {
        c.database_url = Some(
            format!(
                "{}/{}",
                server.trim_end_matches('/'),
                instance.replace('-', "_")
            )
            .into(),
        );
    }
    // Tests clone from servers they start on loopback, and nothing else.
    c.git.allowed_hosts = vec!["127.0.0.1".into(), "localhost".into()];
    c.types.insert("box".into(), box_type());
    let mut other = box_type();
    other.description = "a second type".into();
    c.types.insert("other".into(), other);
    let mut missing = box_type();
    missing.image = format!("berth-test/no-such-image:{}", Uuid::new_v4().simple());
    c.types.insert(MISSING_TYPE.into(), missing);
    // No health check of Berth's (and the image has none).
    let mut plain = box_type();
    plain.health_check = None;
    c.types.insert("plain".into(), plain);
    // Its main process outgrows its memory limit at once.
    let mut hog = box_type();
    hog.command = vec![
        "sh".into(),
        "-c".into(),
        "exec dd if=/dev/zero of=/dev/null bs=128M count=1".into(),
    ];
    hog.resources = ResourceLimits {
        cpus: 0.5,
        memory_mb: 24,
        memory_swap_mb: None,
        memory_reservation_mb: None,
    };
    hog.health_check = None;
    c.types.insert("hog".into(), hog);
    // Says known lines on stdout and stderr, then serves like `box`.
    let mut talker = box_type();
    talker.command = vec![
        "sh".into(),
        "-c".into(),
        "echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2; \
         mkdir -p /tmp/www && echo ok > /tmp/www/healthz && exec httpd -f -p 8080 -h /tmp/www"
            .into(),
    ];
    c.types.insert("talker".into(), talker);
    c.stats.interval_s = 1;
    c.recovery = RecoveryPolicy {
        enabled: true,
        max_restarts: 2,
        window_s: 600,
        backoff_base_s: 1,
        backoff_max_s: 2,
    };
    c
}

/// One Berth instance for one test.
pub struct TestEnv {
    pub berth: Berth,
    pub backups: berth::service::Backups,
    pub accounts: berth::service::Accounts,
    pub scheduler: berth::jobs::Scheduler,
    pub router: Router,
    pub instance: String,
    pub dir: tempfile::TempDir,
    /// The loops running beside the router (none without an engine).
    loops: Option<berth::app::Running>,
}

/// The loops the harness runs, through the same `App::start_loops` as
/// `berth serve`. The others are driven by the tests that need them, so
/// that what they assert does not race a background beat or job: node
/// heartbeats (`nodes().beat()`), the scheduler and the reaper (run on
/// request), the replica heartbeat and node follower (tests/replicas.rs
/// runs whole `berth serve` processes).
pub const HARNESS_LOOPS: [berth::app::Loop; 2] =
    [berth::app::Loop::Watcher, berth::app::Loop::Sampler];

impl TestEnv {
    pub async fn new() -> TestEnv {
        Self::with(|_| {}).await
    }

    /// A test environment whose config `tweak` adjusts.
    pub async fn with(tweak: impl FnOnce(&mut Config)) -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::build(dir, tweak).await
    }

    /// A test environment already serving on a loopback port, whose
    /// `listen` (and so its public URL) is that port: for tests that follow
    /// Berth's own redirects (app origins, the login handoff).
    pub async fn served(tweak: impl FnOnce(&mut Config)) -> (TestEnv, std::net::SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let dir = tempfile::tempdir().expect("temp dir");
        let env = Self::build(dir, |c| {
            c.listen = addr.to_string();
            tweak(c)
        })
        .await;
        let app = env
            .router
            .clone()
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (env, addr)
    }

    /// A test environment without a Docker engine: its engine is a socket
    /// nobody listens on, so whatever would reach one fails as it would
    /// with the engine down. For tests of what needs none (the route
    /// table, the OpenAPI document, accounts): a contributor without
    /// Docker can run them. No replica is registered (that asks the
    /// engine who it is), no watcher or sampler runs.
    pub async fn engineless() -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let instance = format!("test-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let config = test_config(dir.path(), &instance);
        let store = open_store(&config).await;
        // A file where a socket would be: connecting to it is refused.
        let nowhere = dir.path().join("no-engine.sock");
        std::fs::write(&nowhere, b"").expect("the socket stand-in");
        let engine = Engine::at_unix_socket(nowhere.to_str().unwrap()).unwrap();
        let berth = Berth::new(store, engine, config, 2);
        let app = berth::app::App::around(berth.clone());
        TestEnv {
            backups: app.backups.clone(),
            accounts: app.accounts.clone(),
            scheduler: app.scheduler.clone(),
            router: berth::http::app(app),
            berth,
            instance,
            dir,
            loops: None,
        }
    }

    async fn build(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestEnv {
        // BERTH_TEST_LOG=debug (or any filter): the server's log on stderr.
        if let Ok(filter) = std::env::var("BERTH_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        ensure_test_image();
        let instance = format!("test-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let mut config = test_config(dir.path(), &instance);
        tweak(&mut config);
        let berth = open(config).await;
        let app = berth::app::App::around(berth.clone());
        // As `berth serve` does before it serves.
        app.start_replica("test").await.expect("start the replica");
        let scheduler = app.scheduler.clone();
        let backups = app.backups.clone();
        let accounts = app.accounts.clone();
        let loops = Some(app.start_loops(&HARNESS_LOOPS).await);
        let router = berth::http::app(app);
        TestEnv {
            berth,
            backups,
            accounts,
            scheduler,
            router,
            instance,
            dir,
            loops,
        }
    }

    /// Stops the event watcher, as if Berth were down.
    pub fn stop_watcher(&mut self) {
        if let Some(l) = self.loops.as_mut() {
            l.abort(berth::app::Loop::Watcher);
        }
    }

    /// A second Berth on this one's database and config whose engine is
    /// reached through the unix socket `sock` (an [`EngineRelay`] the test
    /// can cut).
    pub fn relayed(&self, sock: &std::path::Path) -> Berth {
        let engine = Engine::at_unix_socket(sock.to_str().unwrap()).unwrap();
        Berth::new(
            self.berth.core().store().clone(),
            engine,
            self.berth.core().config().clone(),
            2,
        )
    }

    /// A second Berth on the same database and instance, as after a restart.
    pub async fn reopen(&self) -> Berth {
        open(test_config(self.dir.path(), &self.instance)).await
    }

    /// Creates a user (password `password123`) and says their id and email.
    pub async fn user_with_email(&self, role: Role) -> (Uuid, String) {
        let email = format!("{}@test.example", Uuid::new_v4().simple());
        let u = self
            .accounts
            .add_user(NewUser {
                email: email.clone(),
                password: "password123".into(),
                role,
            })
            .await
            .expect("add user");
        (u.id, email)
    }

    /// Creates a user and an API token for them.
    pub async fn user(&self, role: Role) -> (Uuid, String) {
        let (id, email) = self.user_with_email(role).await;
        let token = self
            .accounts
            .create_api_token(&email, "test")
            .await
            .expect("token");
        (id, token)
    }

    /// Creates a user and logs them in as a browser would: the session
    /// token (the value of the `berth_session` cookie) and their id.
    pub async fn session(&self, role: Role) -> (Uuid, String) {
        let (id, email) = self.user_with_email(role).await;
        let s = self
            .accounts
            .login(&email, "password123")
            .await
            .expect("login");
        (id, s.token)
    }

    pub async fn member(&self) -> String {
        self.user(Role::Member).await.1
    }

    /// Sends a request through the router; returns status and parsed JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let (status, _, bytes) = self.send_raw(req).await;
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("response is not JSON: {}", String::from_utf8_lossy(&bytes))
            })
        };
        (status, json)
    }

    pub async fn send_raw(
        &self,
        req: Request<Body>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let method = req.method().clone();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let matched = resp
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .cloned();
        let is_stream = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let bytes = if is_stream {
            // An event stream does not end: what it sends in a moment.
            let mut body = resp.into_body();
            let mut bytes = Vec::new();
            let until = tokio::time::Instant::now() + Duration::from_millis(500);
            while let Ok(Some(frame)) = tokio::time::timeout_at(until, body.frame()).await {
                if let Ok(data) = frame.unwrap().into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            bytes
        } else {
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec()
        };
        described::check(&method, matched.as_ref(), status, &headers, &bytes);
        (status, headers, bytes)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// Creates a project; returns its id.
    pub async fn project(&self, token: &str, name: &str) -> String {
        let (s, v) = self
            .post("/api/projects", token, serde_json::json!({ "name": name }))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["data"]["id"].as_str().unwrap().to_string()
    }

    /// Creates a `box` workspace on a new project; returns (workspace id, project id).
    pub async fn workspace(&self, token: &str) -> (String, String) {
        let pid = self.project(token, "p").await;
        let (s, v) = self
            .post(
                "/api/workspaces",
                token,
                serde_json::json!({ "name": "w", "type": "box", "projectId": pid }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (v["data"]["id"].as_str().unwrap().to_string(), pid)
    }

    /// Polls the status endpoint until `pred` holds (bounded).
    /// Polls `path` until `pred` holds on its `data` (bounded).
    pub async fn wait_for(
        &self,
        token: &str,
        path: &str,
        what: &str,
        secs: u64,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (s, v) = self.get(path, token).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            if pred(&v["data"]) {
                return v["data"].clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Polls a workspace's status until `pred` holds (bounded).
    pub async fn wait_status(
        &self,
        token: &str,
        id: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_for(
            token,
            &format!("/api/workspaces/{id}/status"),
            what,
            45,
            pred,
        )
        .await
    }

    /// Starts a workspace through the API, asserting it worked.
    pub async fn start(&self, token: &str, id: &str) -> Value {
        let (s, v) = self
            .call(
                Method::POST,
                &format!("/api/workspaces/{id}/start"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
}

impl TestEnv {
    /// Serves the router on a loopback port (for clients that need a real
    /// socket: WebSockets, streaming); the server ends with the test's runtime.
    pub async fn serve(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let app = self
            .router
            .clone()
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }
}

async fn open(config: Config) -> Berth {
    let store = open_store(&config).await;
    let (engine, info) = Engine::connect().await.expect("engine");
    Berth::new(store, engine, config, info.cpus)
}

/// The test's database (a PostgreSQL one made on first use when the
/// tests run on PostgreSQL).
async fn open_store(config: &Config) -> Store {
    let url = config.database_url();
    if let Some((server, db)) = url
        .strip_prefix("postgres://")
        .and_then(|rest| rest.rsplit_once('/'))
    {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&format!("postgres://{server}/postgres"))
            .await
            .expect("the PostgreSQL server of BERTH_TEST_DATABASE_URL");
        // Already there when reopened, as after a restart.
        let _ = sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut admin)
            .await;
    }
    Store::connect(&url).await.expect("store")
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.stop_watcher();
        // Nothing of this instance is on an engine it never had.
        if self.loops.take().is_some() {
            remove_instance(&self.instance);
        }
    }
}

/// Removes every container, then every volume, labelled with `instance`.
pub fn remove_instance(instance: &str) {
    let label = format!("label=berth.instance={instance}");
    let list = |args: &[&str]| -> Vec<String> {
        Command::new("docker")
            .args(args)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = list(&["ps", "-aq", "--filter", &label]);
    if !containers.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f"])
            .args(&containers)
            .output();
    }
    let volumes = list(&["volume", "ls", "-q", "--filter", &label]);
    if !volumes.is_empty() {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f"])
            .args(&volumes)
            .output();
    }
}

/// `docker inspect` of a container or volume, as JSON.
pub fn docker_inspect(kind: &str, name: &str) -> Option<Value> {
    let out = Command::new("docker")
        .args([kind, "inspect", name])
        .output()
        .expect("docker inspect");
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    v.as_array().and_then(|a| a.first().cloned())
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// This machine's engine behind another unix socket at `path` (a second
/// node to Berth), served until the returned task is aborted or the
/// runtime ends.
pub fn forward_engine(path: &std::path::Path) -> tokio::task::JoinHandle<()> {
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut a, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                if let Ok(mut b) = tokio::net::UnixStream::connect("/var/run/docker.sock").await {
                    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                }
            });
        }
    })
}

/// A unix-socket relay to the real engine that the test can cut and
/// restore: what Berth sees when the engine restarts.
pub struct EngineRelay {
    path: std::path::PathBuf,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl EngineRelay {
    pub fn start(path: &std::path::Path) -> EngineRelay {
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                conns.spawn(async move {
                    if let Ok(mut engine) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
            }
            // Dropping the JoinSet (when this task is aborted) cuts every
            // open connection, the event stream among them.
        });
        EngineRelay {
            path: path.to_path_buf(),
            task: Some(task),
        }
    }

    pub fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

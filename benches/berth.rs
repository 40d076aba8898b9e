//! The benchmark (issue 9): Berth side by side with the original system's
//! approach and with the machine's limits, alternating subjects in one run,
//! medians and ratios printed as a table and written as JSON under
//! `bench/results/`.
//!
//! ```text
//! cargo bench --bench berth                  # full: 656 MB / 51k-file volume, 50 workspaces
//! cargo bench --bench berth -- --quick       # small data, a few workspaces (CI runs this)
//! cargo bench --bench berth -- --only volumes,stats --runs 5 --data /usr/share
//! ```
//!
//! It starts the real `berth` binary as a server on loopback with its own
//! data directory and `berth.instance` label, drives it over HTTP, and
//! removes every container and volume with that label at the end. Needs the
//! Docker engine, root (volume mountpoints for the host baselines), `zstd`
//! and a static busybox (`scripts/setup` installs them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const IMAGE: &str = "berth-bench/busybox:v1";
const HEALTH: &str = "wget -q -O /dev/null http://127.0.0.1:8080/healthz || exit 1";

struct Opts {
    quick: bool,
    runs: usize,
    only: Option<Vec<String>>,
    data: Option<PathBuf>,
}

impl Opts {
    fn parse() -> Opts {
        let mut o = Opts {
            quick: false,
            runs: 0,
            only: None,
            data: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--runs" => o.runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
                "--only" => {
                    o.only = Some(
                        args.next()
                            .expect("--only a,b")
                            .split(',')
                            .map(String::from)
                            .collect(),
                    )
                }
                "--data" => o.data = Some(args.next().expect("--data DIR").into()),
                // cargo bench passes --bench; nothing else is expected.
                "--bench" => {}
                other => panic!(
                    "unknown argument {other:?}; use --quick, --runs N, --only volumes,size,stats,start,api,footprint,placement,move,load,scale,replicas, --data DIR"
                ),
            }
        }
        if o.runs == 0 {
            o.runs = if o.quick { 2 } else { 3 };
        }
        o
    }

    fn wants(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == section))
    }
}

// ---------------------------------------------------------------- results

/// One measured subject: seconds per run.
struct Row {
    section: &'static str,
    measurement: String,
    subject: String,
    samples: Vec<f64>,
    /// What the figure is: seconds (default) or another unit.
    unit: &'static str,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let m = s.len() / 2;
    if s.len() % 2 == 0 {
        (s[m - 1] + s[m]) / 2.0
    } else {
        s[m]
    }
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((s.len() as f64 - 1.0) * p).round() as usize;
    s[i]
}

/// The value a target is judged on, and whether it is met; `None` when the
/// run did not measure it.
type Check = Box<dyn Fn(&Results) -> Option<(f64, bool)>>;

/// A target the issue sets, checked against the medians.
struct Target {
    text: &'static str,
    check: Check,
}

#[derive(Default)]
struct Results {
    rows: Vec<Row>,
}

impl Results {
    fn add(&mut self, section: &'static str, measurement: &str, subject: &str, samples: Vec<f64>) {
        self.add_unit(section, measurement, subject, samples, "s");
    }

    fn add_unit(
        &mut self,
        section: &'static str,
        measurement: &str,
        subject: &str,
        samples: Vec<f64>,
        unit: &'static str,
    ) {
        eprintln!(
            "  {measurement:<28} {subject:<34} median {:>10.4} {unit}  ({} runs)",
            median(&samples),
            samples.len()
        );
        self.rows.push(Row {
            section,
            measurement: measurement.into(),
            subject: subject.into(),
            samples,
            unit,
        });
    }

    fn median_of(&self, measurement: &str, subject: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.measurement == measurement && r.subject == subject)
            .map(|r| median(&r.samples))
    }
}

fn targets() -> Vec<Target> {
    /// `base / berth` ≥ `k`: Berth is at least k times faster.
    fn faster(
        text: &'static str,
        m: &'static str,
        berth: &'static str,
        base: &'static str,
        k: f64,
    ) -> Target {
        Target {
            text,
            check: Box::new(move |r| {
                let x = r.median_of(m, base)? / r.median_of(m, berth)?;
                Some((x, x >= k))
            }),
        }
    }
    /// `berth / limit` ≤ `k`: Berth takes at most k times the limit.
    fn within(
        text: &'static str,
        m: &'static str,
        berth: &'static str,
        limit: &'static str,
        k: f64,
    ) -> Target {
        Target {
            text,
            check: Box::new(move |r| {
                let x = r.median_of(m, berth)? / r.median_of(m, limit)?;
                Some((x, x <= k))
            }),
        }
    }
    fn abs(text: &'static str, m: &'static str, s: &'static str, pass: fn(f64) -> bool) -> Target {
        Target {
            text,
            check: Box::new(move |r| {
                let v = r.median_of(m, s)?;
                Some((v, pass(v)))
            }),
        }
    }
    vec![
        faster(
            "backup: original / berth ≥ 5",
            "backup",
            "berth zstd",
            "original (docker run tar czf)",
            5.0,
        ),
        within(
            "backup: berth / host tar|zstd ≤ 1.5",
            "backup",
            "berth zstd",
            "limit (host tar | zstd -T0 -3)",
            1.5,
        ),
        faster(
            "restore: original / berth ≥ 2",
            "restore",
            "berth",
            "original (docker run tar xzf)",
            2.0,
        ),
        within(
            "restore: berth / host zstd -d|tar x ≤ 1.3",
            "restore",
            "berth",
            "limit (host zstd -d | tar x)",
            1.3,
        ),
        faster(
            "clone: original / berth ≥ 2.5",
            "clone",
            "berth",
            "original (docker run cp -a)",
            2.5,
        ),
        within(
            "clone: berth / host cp -a ≤ 1.3",
            "clone",
            "berth",
            "limit (host cp -a)",
            1.3,
        ),
        abs(
            "volume size cached ≤ 0.2 s",
            "volume size",
            "berth cached",
            |v| v <= 0.2,
        ),
        abs(
            "fleet stats, 50 workspaces < 0.1 s",
            "stats, 50 running",
            "berth /stats/live",
            |v| v < 0.1,
        ),
        within(
            "start: berth / docker run -d ≤ 1.1",
            "start to running",
            "berth create+start",
            "docker run -d",
            1.1,
        ),
        abs("status p99 < 0.005 s", "api status p99", "berth", |v| {
            v < 0.005
        }),
        abs("idle RSS < 30 MB", "footprint idle", "berth RSS", |v| {
            v < 30.0
        }),
        abs(
            "placement of 10,000 on 100 nodes < 1 s",
            "placement 10k on 100 nodes",
            "berth spread",
            |v| v < 1.0,
        ),
        abs(
            "status p99 at 8 connections < 2 ms",
            "load status c=8",
            "p99",
            |v| v < 0.002,
        ),
        abs(
            "status p99 at 256 connections < 20 ms",
            "load status c=256",
            "p99",
            |v| v < 0.02,
        ),
        abs(
            "page of 50 of 10k workspaces p99 < 5 ms (sqlite)",
            "page of 50 workspaces, 10k p99 (sqlite)",
            "berth",
            |v| v < 0.005,
        ),
        abs(
            "owner filter on 10k workspaces p99 < 5 ms (sqlite)",
            "a member's workspaces (owner filter), 10k p99 (sqlite)",
            "berth",
            |v| v < 0.005,
        ),
        abs(
            "plan inactive over 10k < 100 ms (sqlite)",
            "plan inactive, 10k workspaces (sqlite)",
            "berth dry run",
            |v| v < 0.1,
        ),
        abs(
            "plan orphaned-volumes over 10k < 100 ms (sqlite)",
            "plan orphaned-volumes, 10k workspaces (sqlite)",
            "berth dry run",
            |v| v < 0.1,
        ),
        abs(
            "plan backups over 10k projects, 100k backups < 100 ms (sqlite)",
            "plan backups, 10k workspaces (sqlite)",
            "berth dry run",
            |v| v < 0.1,
        ),
        abs(
            "plan retention over 100k backups < 100 ms",
            "plan retention, 100k backups",
            "berth",
            |v| v < 0.1,
        ),
        abs(
            "RSS with 10k records and 200 running < 80 MB (sqlite)",
            "footprint, 10k records, 200 running (sqlite)",
            "berth RSS",
            |v| v < 80.0,
        ),
        abs(
            "fleet stats, 200 running < 100 ms (sqlite)",
            "fleet stats, 200 running, 10k records (sqlite)",
            "berth /stats/live",
            |v| v < 0.1,
        ),
        within(
            "move: berth / raw archive pipe ≤ 3 (berth also reads both copies back)",
            "move a project",
            "berth move (copy + both digests)",
            "raw pipe (docker cp | docker cp)",
            3.0,
        ),
    ]
}

fn report(results: &Results, opts: &Opts, meta: Value) {
    println!();
    println!(
        "{:<24} {:<36} {:>12} {:>10}",
        "measurement", "subject", "median", "vs berth"
    );
    println!("{}", "-".repeat(86));
    let mut by_measurement: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    let mut order = Vec::new();
    for r in &results.rows {
        if !by_measurement.contains_key(r.measurement.as_str()) {
            order.push(r.measurement.as_str());
        }
        by_measurement.entry(&r.measurement).or_default().push(r);
    }
    let mut json_rows = Vec::new();
    for m in order {
        let rows = &by_measurement[m];
        let berth = rows
            .iter()
            .find(|r| r.subject.starts_with("berth"))
            .map(|r| median(&r.samples));
        for r in rows {
            let med = median(&r.samples);
            let vs = match berth {
                Some(b) if r.unit == "s" && !r.subject.starts_with("berth") => {
                    format!("{:.2}×", med / b)
                }
                _ => String::new(),
            };
            let shown = match r.unit {
                "s" if med < 1.0 => format!("{:.1} ms", med * 1000.0),
                "s" => format!("{med:.2} s"),
                u => format!("{med:.1} {u}"),
            };
            println!("{:<24} {:<36} {:>12} {:>10}", m, r.subject, shown, vs);
            json_rows.push(json!({
                "section": r.section,
                "measurement": r.measurement,
                "subject": r.subject,
                "unit": r.unit,
                "median": med,
                "samples": r.samples,
            }));
        }
    }
    println!();
    println!("targets (\"vs berth\" above = subject median / Berth median):");
    let mut json_targets = Vec::new();
    for t in targets() {
        match (t.check)(results) {
            Some((v, pass)) => {
                println!(
                    "  [{}] {:<46} {:.3}",
                    if pass { "met" } else { "MISSED" },
                    t.text,
                    v
                );
                json_targets.push(json!({"target": t.text, "value": v, "met": pass}));
            }
            None => println!("  [ -- ] {:<46} not measured in this run", t.text),
        }
    }
    let out = json!({
        "meta": meta,
        "mode": if opts.quick { "quick" } else { "full" },
        "runs": opts.runs,
        "rows": json_rows,
        "targets": json_targets,
    });
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    std::fs::create_dir_all(&dir).expect("create bench/results");
    let name = format!(
        "{}-{}.json",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        if opts.quick { "quick" } else { "full" }
    );
    std::fs::write(dir.join(&name), serde_json::to_string_pretty(&out).unwrap())
        .expect("write results");
    println!("\nwritten to bench/results/{name}");
}

// ---------------------------------------------------------------- helpers

/// Runs a shell command; panics with its stderr when it fails.
fn sh(cmd: &str) -> String {
    let out = Command::new("bash")
        .args(["-c", cmd])
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "command failed: {cmd}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Levels the ground before a timed step: dirty pages written out, the page
/// cache dropped (root), and the step's inputs (directories or files) read
/// back into it.
fn settle(warm: &[&str]) {
    sh("sync");
    if std::fs::write("/proc/sys/vm/drop_caches", "3").is_err() {
        eprintln!("  (cannot drop caches: not root? figures will be noisier)");
    }
    for p in warm {
        // Through cat: GNU tar skips reading data when writing to /dev/null.
        if Path::new(p).is_dir() {
            sh(&format!("tar -cf - -C {p} . | cat > /dev/null"));
        } else {
            sh(&format!("cat {p} > /dev/null"));
        }
    }
}

fn timed(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

async fn timed_async<F: std::future::Future>(f: F) -> (f64, F::Output) {
    let t = Instant::now();
    let out = f.await;
    (t.elapsed().as_secs_f64(), out)
}

/// A data set that is the same on every machine: a tree shaped like
/// /usr/share (many small text files, some larger incompressible ones,
/// symlinks), from a fixed seed.
fn generate(dir: &Path, files: usize, total_bytes: u64) {
    const WORDS: &[&str] = &[
        "the",
        "workspace",
        "volume",
        "backup",
        "container",
        "engine",
        "restore",
        "project",
        "health",
        "memory",
        "limit",
        "configuration",
        "documentation",
        "example",
        "function",
        "return",
        "value",
        "string",
        "license",
        "copyright",
        "translation",
        "message",
        "error",
        "server",
        "client",
        "request",
        "response",
        "{",
        "}",
        "(",
        ")",
        ";",
        "=",
        "\n",
        "\n\t",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(656);
    let mean = (total_bytes / files as u64).max(1) as f64;
    let mut written = 0u64;
    let mut buf = Vec::new();
    for i in 0..files {
        let d = dir.join(format!("d{:02}/s{:03}", i % 37, (i / 37) % 40));
        if i % 1000 == 0 || !d.exists() {
            std::fs::create_dir_all(&d).unwrap();
        }
        // Exponential sizes around the mean: mostly small, a long tail.
        let u: f64 = rng.gen_range(0.0001..1.0);
        let size = ((-u.ln()) * mean) as usize;
        buf.clear();
        if rng.gen_bool(0.2) {
            // Already compressed data (images, .gz docs).
            buf.resize(size, 0);
            rng.fill(&mut buf[..]);
        } else {
            while buf.len() < size {
                buf.extend_from_slice(WORDS[rng.gen_range(0..WORDS.len())].as_bytes());
                buf.push(b' ');
            }
            buf.truncate(size);
        }
        let p = d.join(format!("f{i}.txt"));
        std::fs::write(&p, &buf).unwrap();
        written += buf.len() as u64;
        if i % 500 == 7 {
            std::os::unix::fs::symlink(format!("f{i}.txt"), d.join(format!("l{i}"))).unwrap();
        }
    }
    eprintln!("  generated {files} files, {:.0} MB", written as f64 / 1e6);
}

// ---------------------------------------------------------------- the server

struct Server {
    child: Child,
    base: String,
    token: String,
    member_token: String,
    instance: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        Server::start_with("", |_, _| {})
    }

    /// A server whose config has `extra` appended, with `seed(database URL,
    /// member id)` run on its database after migrations and before it
    /// serves. A member account is made besides the admin (`member_token`).
    fn start_with(extra: &str, seed: impl FnOnce(&str, &str)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let instance = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let config = format!(
            r#"listen = "127.0.0.1:{port}"
data_dir = "{data}"
instance = "{instance}"
stop_timeout_s = 2

# Hundreds of quiet workspaces on two cores: their CPU limits are caps,
# not what they use, so the node may hold far more of them than cores.
[nodes]
cpu_allocation_ratio = 100.0

[types.bench]
image = "{IMAGE}"
port = 8080
command = ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/healthz && exec httpd -f -p 8080 -h /tmp/www"]
[types.bench.resources]
cpus = 0.5
memory_mb = 64
memory_swap_mb = 128
[types.bench.health_check]
command = "{HEALTH}"
interval_s = 1
timeout_s = 2
retries = 3

[types.fleet]
image = "{IMAGE}"
port = 8080
command = ["sh", "-c", "while true; do echo line $(date); sleep 1; done & mkdir -p /tmp/www && echo ok > /tmp/www/healthz && exec httpd -f -p 8080 -h /tmp/www"]
[types.fleet.resources]
cpus = 0.25
memory_mb = 32
[types.fleet.health_check]
command = "{HEALTH}"
interval_s = 30
timeout_s = 3
retries = 3

[types.quiet]
image = "{IMAGE}"
port = 8080
command = ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/healthz && exec httpd -f -p 8080 -h /tmp/www"]
[types.quiet.resources]
cpus = 0.25
memory_mb = 32
[types.quiet.health_check]
command = "{HEALTH}"
interval_s = 30
timeout_s = 3
retries = 3
"#,
            data = dir.path().join("data").display(),
        );
        // `extra`'s top-level keys go first, its tables last.
        let (top, tables) = match extra.find("\n[").or(extra.starts_with('[').then_some(0)) {
            Some(i) => extra.split_at(i),
            None => (extra, ""),
        };
        let config = format!("{top}\n{config}\n{tables}\n");
        let cfg = dir.path().join("berth.toml");
        std::fs::write(&cfg, config).unwrap();
        let bin = env!("CARGO_BIN_EXE_berth");
        let mut add = berth_command(bin)
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "user",
                "add",
                "bench@example.com",
            ])
            .args(["--admin", "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        {
            use std::io::Write as _;
            add.stdin
                .take()
                .unwrap()
                .write_all(b"bench-password\n")
                .unwrap();
        }
        assert!(add.wait().unwrap().success(), "berth user add failed");
        let token = berth_command(bin)
            .args([
                "--config",
                cfg.to_str().unwrap(),
                "token",
                "create",
                "bench@example.com",
            ])
            .output()
            .unwrap();
        assert!(token.status.success(), "berth token create failed");
        let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
        let cfg_arg = cfg.to_str().unwrap().to_string();
        let run = |args: &[&str], stdin: Option<&str>| -> String {
            let mut c = berth_command(bin)
                .args(["--config", &cfg_arg])
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            if let Some(input) = stdin {
                use std::io::Write as _;
                c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
            } else {
                drop(c.stdin.take());
            }
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "berth {args:?} failed");
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        run(
            &["user", "add", "member@example.com", "--password-stdin"],
            Some("member-password\n"),
        );
        let member_token = run(&["token", "create", "member@example.com"], None);
        let member_id = {
            let list = run(&["user", "ls", "--json"], None);
            let v: Value = serde_json::from_str(&list).unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .find(|u| u["email"] == "member@example.com")
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let url = {
            let v = extra
                .lines()
                .find_map(|l| l.strip_prefix("database_url = "))
                .map(|v| v.trim_matches('"').to_string());
            v.unwrap_or_else(|| {
                format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("data").join("berth.db").display()
                )
            })
        };
        seed(&url, &member_id);
        let child = berth_command(bin)
            .args(["--config", cfg.to_str().unwrap(), "serve"])
            .env("BERTH_LOG", "warn")
            .envs(
                std::env::var("BENCH_MALLOC_ARENA_MAX")
                    .ok()
                    .map(|v| ("MALLOC_ARENA_MAX", v)),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "berth serve did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            base,
            token,
            member_token,
            instance,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
            _dir: dir,
        }
    }

    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS");
        kb / 1024.0
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(
            status.is_success(),
            "{method} {path} answered {status}: {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn project(&self, name: &str) -> (String, String) {
        let v = self.post("/api/projects", json!({ "name": name })).await;
        (
            v["data"]["id"].as_str().unwrap().to_string(),
            v["data"]["volumeName"].as_str().unwrap().to_string(),
        )
    }

    async fn workspace(&self, type_name: &str) -> String {
        let (pid, _) = self.project("ws").await;
        let v = self
            .post(
                "/api/workspaces",
                json!({ "name": "w", "type": type_name, "projectId": pid }),
            )
            .await;
        v["data"]["id"].as_str().unwrap().to_string()
    }

    fn label(&self) -> String {
        format!("berth.instance={}", self.instance)
    }

    /// Its config file: another replica serves with it (and its own
    /// `--listen`).
    fn config_path(&self) -> PathBuf {
        self._dir.path().join("berth.toml")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let label = format!("label={}", self.label());
        let _ = sh(&format!(
            "ids=$(docker ps -aq --filter {label}); [ -z \"$ids\" ] || docker rm -f $ids >/dev/null; \
             vs=$(docker volume ls -q --filter {label}); [ -z \"$vs\" ] || docker volume rm -f $vs >/dev/null; true"
        ));
    }
}

fn mountpoint(volume: &str) -> String {
    sh(&format!(
        "docker volume inspect -f '{{{{.Mountpoint}}}}' {volume}"
    ))
}

/// A scratch volume for a baseline, labelled so the cleanup finds it.
fn scratch_volume(server: &Server, name: &str) -> String {
    let v = format!(
        "{}-{name}-{}",
        server.instance,
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    sh(&format!(
        "docker volume create --label {} {v} >/dev/null",
        server.label()
    ));
    v
}

fn remove_volume(v: &str) {
    sh(&format!("docker volume rm -f {v} >/dev/null"));
}

// ---------------------------------------------------------------- sections

/// What wrk said of one run.
struct WrkRun {
    p50: f64,
    p99: f64,
    max: f64,
    rps: f64,
    requests: f64,
    errors: f64,
}

/// Seconds from wrk's "12.34ms" / "1.20s" / "850.00us".
fn wrk_secs(v: &str) -> f64 {
    let (num, unit) = v
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| v.split_at(i))
        .unwrap_or((v, "s"));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "m" => n * 60.0,
        _ => n,
    }
}

fn wrk(url: &str, token: &str, connections: usize, secs: u64) -> WrkRun {
    let out = Command::new("wrk")
        .args([
            "--latency",
            "-t",
            &connections.clamp(1, 2).to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{secs}s"),
            "--timeout",
            "10s",
            "-H",
            &format!("Authorization: Bearer {token}"),
            url,
        ])
        .output()
        .expect("wrk (scripts/setup installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "wrk failed: {text}");
    let field = |prefix: &str, idx: usize| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(idx).map(str::to_string))
    };
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    let non2xx: f64 = field("Non-2xx", 4)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    let socket: f64 = text
        .lines()
        .find(|l| l.trim().starts_with("Socket errors"))
        .map(|l| {
            l.split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0);
    WrkRun {
        p50: wrk_secs(&field("50%", 1).unwrap_or_default()),
        p99: wrk_secs(&field("99%", 1).unwrap_or_default()),
        max: wrk_secs(&field("Latency", 3).unwrap_or_default()),
        rps: field("Requests/sec:", 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0),
        requests,
        errors: non2xx + socket,
    }
}

/// The server's CPU time so far (user + system), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the line, in clock ticks (100 a second here).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The API under a real load generator (Debian's wrk, a C program on its
/// own threads, not a loop in this process): status of one running
/// workspace and the list, at fixed concurrency, with p50/p99/max,
/// throughput, errors and the server's CPU time per request.
async fn load(server: &Server, opts: &Opts, results: &mut Results, fleet: &[String]) {
    let levels: &[usize] = if opts.quick {
        &[1, 8]
    } else {
        &[1, 8, 64, 256]
    };
    let secs = if opts.quick { 1 } else { 10 };
    eprintln!("== load: wrk at {levels:?} connections, {secs} s each");
    let Some(id) = fleet.first() else {
        eprintln!("   (no running workspace: skipped)");
        return;
    };
    for (what, path) in [
        ("status", format!("/api/workspaces/{id}/status")),
        ("list", "/api/workspaces".to_string()),
    ] {
        for &c in levels {
            let cpu0 = cpu_seconds(server.child.id());
            let r = wrk(&format!("{}{path}", server.base), &server.token, c, secs);
            let cpu = cpu_seconds(server.child.id()) - cpu0;
            let m = format!("load {what} c={c}");
            results.add("load", &m, "p50", vec![r.p50]);
            results.add("load", &m, "p99", vec![r.p99]);
            results.add("load", &m, "max", vec![r.max]);
            results.add_unit("load", &m, "throughput", vec![r.rps], "req/s");
            results.add_unit("load", &m, "errors", vec![r.errors], "requests");
            results.add_unit(
                "load",
                &m,
                "server CPU per request",
                vec![if r.requests > 0.0 {
                    cpu / r.requests * 1e6
                } else {
                    f64::NAN
                }],
                "µs",
            );
        }
    }
}

/// The placement planner alone: 10,000 workspaces placed one after the
/// other on 100 generated nodes (each placement sees the allocation the
/// ones before it made), with both strategies.
async fn placement(opts: &Opts, results: &mut Results) {
    use berth::domain::placement::{
        place, Demand, NodeCondition, NodeSeen, PlacementRequest, Strategy,
    };
    eprintln!("== placement: 10,000 workspaces over 100 nodes");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let base: Vec<NodeSeen> = (0..100)
        .map(|i| NodeSeen {
            name: format!("node-{i:03}"),
            condition: if i % 17 == 0 {
                NodeCondition::Cordoned
            } else {
                NodeCondition::Ready
            },
            labels: BTreeMap::from([(
                "disk".to_string(),
                if i % 3 == 0 { "ssd" } else { "hdd" }.to_string(),
            )]),
            images: ["code:1".to_string()].into(),
            cpus: 128.0,
            memory_mb: 262_144,
            allocated: Demand::default(),
        })
        .collect();
    let demands: Vec<Demand> = (0..10_000)
        .map(|_| Demand {
            cpus: [0.25, 0.5, 1.0, 2.0][rng.gen_range(0..4)],
            memory_mb: [256, 512, 1024, 2048][rng.gen_range(0..4)],
        })
        .collect();
    for (strategy, subject) in [
        (Strategy::Spread, "berth spread"),
        (Strategy::Pack, "berth pack"),
    ] {
        let mut samples = Vec::new();
        for _ in 0..opts.runs.max(1) {
            let mut nodes = base.clone();
            let t = Instant::now();
            let mut placed = 0;
            for d in &demands {
                let req = PlacementRequest {
                    image: "code:1".into(),
                    demand: *d,
                    node_labels: BTreeMap::new(),
                    pinned: None,
                    can_pull: false,
                };
                if let Ok(n) = place(&nodes, &req, strategy) {
                    let name = n.name.clone();
                    let n = nodes.iter_mut().find(|n| n.name == name).unwrap();
                    n.allocated = n.allocated + *d;
                    placed += 1;
                }
            }
            samples.push(t.elapsed().as_secs_f64());
            assert!(placed > 9_000, "only {placed} of 10,000 placed");
        }
        results.add("placement", "placement 10k on 100 nodes", subject, samples);
    }
}

/// The berth binary, without what `scripts/with-nodes` exports for the
/// benchmark itself (Berth reads `BERTH_*` variables as its settings and
/// refuses unknown ones).
fn berth_command(bin: &str) -> Command {
    let mut c = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("BERTH_TEST_") {
            c.env_remove(k);
        }
    }
    c
}

/// The nodes `scripts/with-nodes` made: (name, endpoint, address, socket).
fn bench_nodes() -> Vec<(String, String, String, String)> {
    let pairs = |var: &str| -> BTreeMap<String, String> {
        std::env::var(var)
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (addrs, socks) = (
        pairs("BERTH_TEST_NODE_ADDRS"),
        pairs("BERTH_TEST_NODE_SOCKS"),
    );
    pairs("BERTH_TEST_NODES")
        .into_iter()
        .filter(|(_, e)| e.ends_with(":2375"))
        .map(|(n, e)| {
            let a = addrs[&n].clone();
            let s = socks[&n].clone();
            (n, e, a, s)
        })
        .collect()
}

/// A project's move between two plain-TCP namespace engines, against the
/// raw pipe between their archive APIs (`docker cp` out of a helper on one
/// into a helper on the other) for the same volume. Needs
/// `scripts/with-nodes 3` (skipped otherwise).
async fn moves(server: &Server, opts: &Opts, results: &mut Results) {
    let nodes = bench_nodes();
    if nodes.len() < 2 {
        eprintln!("== move: skipped (run under scripts/with-nodes 3 for two plain engines)");
        return;
    }
    eprintln!("== move: a project between two engines vs the raw archive pipe");
    let (a, b) = (&nodes[0], &nodes[1]);
    for (name, endpoint, addr, sock) in [a, b] {
        sh(&format!(
            "docker save {IMAGE} | docker -H {sock} load -q >/dev/null"
        ));
        server
            .post(
                "/api/nodes",
                json!({ "name": name, "endpoint": endpoint, "address": addr }),
            )
            .await;
    }
    server
        .call(
            reqwest::Method::PATCH,
            "/api/nodes/local",
            Some(json!({ "cordoned": true })),
        )
        .await;
    for (name, _, _, _) in &nodes[2..] {
        server
            .call(
                reqwest::Method::PATCH,
                &format!("/api/nodes/{name}"),
                Some(json!({ "cordoned": true })),
            )
            .await;
    }
    let (pid, vol) = server.project("bench-move").await;
    let v = server.get(&format!("/api/projects/{pid}")).await;
    let mut here = v["data"]["node"].as_str().unwrap().to_string();
    let sock_of = |n: &str| nodes.iter().find(|x| x.0 == n).unwrap().3.clone();
    let (files, mb) = if opts.quick { (500, 32) } else { (5_000, 512) };
    sh(&format!(
        "docker -H {} run --rm -v {vol}:/w {IMAGE} sh -c 'mkdir -p /w/d && \
         i=0; while [ $i -lt {files} ]; do echo file $i > /w/d/f$i; i=$((i+1)); done && \
         head -c {}m /dev/urandom > /w/blob'",
        sock_of(&here),
        mb
    ));
    let mut berth = Vec::new();
    let mut raw = Vec::new();
    for _ in 0..opts.runs.max(1) {
        let to = if here == a.0 {
            b.0.clone()
        } else {
            a.0.clone()
        };
        // The raw pipe first: the project's current volume into a scratch
        // volume on the other engine.
        let (from_sock, to_sock) = (sock_of(&here), sock_of(&to));
        let project = server.get(&format!("/api/projects/{pid}")).await;
        let current = project["data"]["volumeName"].as_str().unwrap().to_string();
        let scratch = format!(
            "{}-raw-{}",
            server.instance,
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        sh(&format!(
            "docker -H {from_sock} rm -f bench-raw-src >/dev/null 2>&1; docker -H {to_sock} rm -f bench-raw-dst >/dev/null 2>&1; \
             docker -H {from_sock} create --name bench-raw-src -v {current}:/data {IMAGE} true >/dev/null && \
             docker -H {to_sock} volume create {scratch} >/dev/null && \
             docker -H {to_sock} create --name bench-raw-dst -v {scratch}:/data {IMAGE} true >/dev/null"
        ));
        raw.push(timed(|| {
            sh(&format!(
                "docker -H {from_sock} cp bench-raw-src:/data - | docker -H {to_sock} cp - bench-raw-dst:/"
            ));
        }));
        sh(&format!(
            "docker -H {from_sock} rm -f bench-raw-src >/dev/null; docker -H {to_sock} rm -f bench-raw-dst >/dev/null; \
             docker -H {to_sock} volume rm -f {scratch} >/dev/null"
        ));
        let (t, v) =
            timed_async(server.post(&format!("/api/projects/{pid}/move"), json!({ "node": to })))
                .await;
        assert_eq!(v["data"]["to"], to.as_str(), "{v}");
        berth.push(t);
        // The volume it left stays for the retention period: not here.
        let previous = v["data"]["previousVolume"].as_str().unwrap().to_string();
        sh(&format!(
            "docker -H {from_sock} volume rm -f {previous} >/dev/null"
        ));
        here = to;
    }
    results.add(
        "move",
        "move a project",
        "berth move (copy + both digests)",
        berth,
    );
    results.add(
        "move",
        "move a project",
        "raw pipe (docker cp | docker cp)",
        raw,
    );
}

async fn volumes(server: &Server, opts: &Opts, results: &mut Results) {
    eprintln!("== volumes: backup, restore, clone, size");
    let (src, src_vol) = server.project("bench-source").await;
    let src_mp = mountpoint(&src_vol);
    match &opts.data {
        Some(d) => {
            sh(&format!("cp -a {}/. {src_mp}/", d.display()));
            eprintln!("  copied {}", d.display());
        }
        None if opts.quick => generate(Path::new(&src_mp), 2_000, 20_000_000),
        None => generate(Path::new(&src_mp), 51_000, 656_000_000),
    }
    let files = sh(&format!("find {src_mp} | wc -l"));
    let bytes = sh(&format!("du -sb {src_mp} | cut -f1"));
    eprintln!("  data: {files} entries, {bytes} bytes");
    let label = server.label();
    let work = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let w = work.path().display().to_string();

    let runs = opts.runs;
    let (mut bz, mut bg, mut orig, mut host) = (vec![], vec![], vec![], vec![]);
    // Before each timed step: dirty pages written out, caches dropped, the
    // step's input read back in. Every subject starts alike (input cached,
    // memory free, nothing to write back); without this, whoever comes
    // after a multi-GB write pays for it (seen: the same `cp -a` 8 s or 14 s).
    for i in 0..=runs {
        let keep = i > 0;
        settle(&[&src_mp]);
        let (t, v) =
            timed_async(server.post(&format!("/api/workspaces/projects/{src}/backup"), json!({})))
                .await;
        let id = v["data"]["id"].as_str().unwrap().to_string();
        server
            .call(reqwest::Method::DELETE, &format!("/api/backups/{id}"), None)
            .await;
        if keep {
            bz.push(t);
        }
        settle(&[&src_mp]);
        let (t, v) = timed_async(server.post(
            &format!("/api/workspaces/projects/{src}/backup"),
            json!({"compression": "gzip"}),
        ))
        .await;
        let id = v["data"]["id"].as_str().unwrap().to_string();
        server
            .call(reqwest::Method::DELETE, &format!("/api/backups/{id}"), None)
            .await;
        if keep {
            bg.push(t);
        }
        settle(&[&src_mp]);
        let t = timed(|| {
            sh(&format!(
                "docker run --rm --label {label} -v {src_vol}:/data:ro -v {w}:/backup {IMAGE} tar czf /backup/original.tar.gz -C /data ."
            ));
        });
        if keep {
            orig.push(t);
        }
        settle(&[&src_mp]);
        let t = timed(|| {
            sh(&format!(
                "tar -cf - -C {src_mp} . | zstd -T0 -3 -q -f -o {w}/host.tar.zst"
            ));
        });
        if keep {
            host.push(t);
        }
    }
    results.add("volumes", "backup", "berth zstd", bz);
    results.add("volumes", "backup", "berth gzip", bg);
    results.add("volumes", "backup", "original (docker run tar czf)", orig);
    results.add("volumes", "backup", "limit (host tar | zstd -T0 -3)", host);

    // Restore: the same archive each time, into the project (Berth) or a
    // fresh volume (baselines).
    let backup = server
        .post(&format!("/api/workspaces/projects/{src}/backup"), json!({}))
        .await;
    let backup_id = backup["data"]["id"].as_str().unwrap().to_string();
    let berth_archive = backup["data"]["backupPath"].as_str().unwrap().to_string();
    let (dst, _) = server.project("bench-restore").await;
    let (mut b, mut orig, mut host) = (vec![], vec![], vec![]);
    for i in 0..=runs {
        let keep = i > 0;
        settle(&[&berth_archive]);
        let (t, _) = timed_async(server.post(
            &format!("/api/workspaces/projects/{dst}/restore"),
            json!({ "backupId": backup_id }),
        ))
        .await;
        if keep {
            b.push(t);
        }
        let v = scratch_volume(server, "orig-restore");
        settle(&[&format!("{w}/original.tar.gz")]);
        let t = timed(|| {
            sh(&format!(
                "docker run --rm --label {label} -v {v}:/data -v {w}:/backup {IMAGE} tar xzf /backup/original.tar.gz -C /data"
            ));
        });
        remove_volume(&v);
        if keep {
            orig.push(t);
        }
        let v = scratch_volume(server, "host-restore");
        let mp = mountpoint(&v);
        settle(&[&format!("{w}/host.tar.zst")]);
        let t = timed(|| {
            sh(&format!("zstd -d -q -c {w}/host.tar.zst | tar -x -C {mp}"));
        });
        remove_volume(&v);
        if keep {
            host.push(t);
        }
    }
    results.add("volumes", "restore", "berth", b);
    results.add("volumes", "restore", "original (docker run tar xzf)", orig);
    results.add("volumes", "restore", "limit (host zstd -d | tar x)", host);

    // Clone into a new, empty project each time.
    let (mut b, mut orig, mut host) = (vec![], vec![], vec![]);
    let mut clones = Vec::new();
    for i in 0..=runs {
        let keep = i > 0;
        let (target, _) = server.project("bench-clone").await;
        settle(&[&src_mp]);
        let (t, _) = timed_async(server.post(
            &format!("/api/workspaces/projects/{src}/clone"),
            json!({ "targetProjectId": target }),
        ))
        .await;
        clones.push(target);
        if keep {
            b.push(t);
        }
        let v = scratch_volume(server, "orig-clone");
        settle(&[&src_mp]);
        let t = timed(|| {
            sh(&format!(
                "docker run --rm --label {label} -v {src_vol}:/from:ro -v {v}:/to {IMAGE} cp -a /from/. /to/"
            ));
        });
        remove_volume(&v);
        if keep {
            orig.push(t);
        }
        let v = scratch_volume(server, "host-clone");
        let mp = mountpoint(&v);
        settle(&[&src_mp]);
        let t = timed(|| {
            sh(&format!("cp -a {src_mp}/. {mp}/"));
        });
        remove_volume(&v);
        if keep {
            host.push(t);
        }
    }
    results.add("volumes", "clone", "berth", b);
    results.add("volumes", "clone", "original (docker run cp -a)", orig);
    results.add("volumes", "clone", "limit (host cp -a)", host);

    // Size: each clone is a volume Berth has not measured yet (uncached).
    let (mut b, mut cached, mut orig, mut host) = (vec![], vec![], vec![], vec![]);
    for (i, p) in clones.iter().enumerate() {
        let keep = i > 0;
        let path = format!("/api/workspaces/projects/{p}/volume-size");
        // Sizing reads metadata only: every subject starts with the
        // metadata of both trees cached (Berth sizes the clone, the
        // baselines the source).
        let clone_mp = mountpoint(
            server.get(&format!("/api/projects/{p}")).await["data"]["volumeName"]
                .as_str()
                .unwrap(),
        );
        sh(&format!("sync; du -s {clone_mp} {src_mp} >/dev/null"));
        let (t, v) = timed_async(server.get(&path)).await;
        // A clone's directories may take other sizes than the source's;
        // the tests check exactness, this only that the figure is real.
        let got = v["data"]["sizeBytes"].as_f64().unwrap();
        let want: f64 = bytes.parse().unwrap();
        assert!(
            (got - want).abs() / want < 0.02,
            "size {got} vs du -sb {want}"
        );
        let (tc, _) = timed_async(server.get(&path)).await;
        if keep {
            b.push(t);
            cached.push(tc);
        }
        let t = timed(|| {
            sh(&format!(
                "docker run --rm --label {label} -v {src_vol}:/data:ro {IMAGE} du -sb /data >/dev/null"
            ));
        });
        if keep {
            orig.push(t);
        }
        let t = timed(|| {
            sh(&format!("du -sb {src_mp} >/dev/null"));
        });
        if keep {
            host.push(t);
        }
    }
    results.add("volumes", "volume size", "berth", b);
    results.add("volumes", "volume size", "berth cached", cached);
    results.add(
        "volumes",
        "volume size",
        "original (docker run du -sb)",
        orig,
    );
    results.add("volumes", "volume size", "limit (host du -sb)", host);
}

async fn wait_healthy(server: &Server, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = server.get(&format!("/api/workspaces/{id}/health")).await;
        if v["data"]["status"] == "healthy" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "workspace {id} never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start(server: &Server, opts: &Opts, results: &mut Results) {
    eprintln!("== start: create+start through the API vs docker run -d");
    let (mut running, mut healthy, mut d_running, mut d_healthy) = (vec![], vec![], vec![], vec![]);
    for i in 0..=opts.runs {
        let keep = i > 0;
        let (pid, _) = server.project("start").await;
        let t0 = Instant::now();
        let v = server
            .post(
                "/api/workspaces",
                json!({ "name": "s", "type": "bench", "projectId": pid }),
            )
            .await;
        let id = v["data"]["id"].as_str().unwrap().to_string();
        let v = server
            .post(&format!("/api/workspaces/{id}/start"), json!({}))
            .await;
        assert_eq!(v["data"]["status"], "running", "{v}");
        let t_run = t0.elapsed().as_secs_f64();
        wait_healthy(server, &id).await;
        let t_healthy = t0.elapsed().as_secs_f64();
        server
            .post(&format!("/api/workspaces/{id}/stop"), json!({}))
            .await;

        // The same container by hand: limits, label, loopback port, volume,
        // health check.
        let vol = scratch_volume(server, "start");
        let name = format!("{}-run-{i}", server.instance);
        let t0 = Instant::now();
        sh(&format!(
            "docker run -d --name {name} --label {label} --cpus 0.5 -m 64m --memory-swap 128m \
             -p 127.0.0.1::8080 -v {vol}:/workspace --health-cmd '{HEALTH}' --health-interval 1s \
             --health-timeout 2s --health-retries 3 {IMAGE} sh -c \
             'mkdir -p /tmp/www && echo ok > /tmp/www/healthz && exec httpd -f -p 8080 -h /tmp/www' >/dev/null",
            label = server.label()
        ));
        let t_drun = t0.elapsed().as_secs_f64();
        loop {
            let h = sh(&format!(
                "docker inspect -f '{{{{.State.Health.Status}}}}' {name}"
            ));
            if h == "healthy" {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "docker run container never healthy"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let t_dhealthy = t0.elapsed().as_secs_f64();
        sh(&format!("docker rm -f {name} >/dev/null"));
        if keep {
            running.push(t_run);
            healthy.push(t_healthy);
            d_running.push(t_drun);
            d_healthy.push(t_dhealthy);
        }
    }
    results.add("start", "start to running", "berth create+start", running);
    results.add("start", "start to running", "docker run -d", d_running);
    results.add("start", "start to healthy", "berth create+start", healthy);
    results.add("start", "start to healthy", "docker run -d", d_healthy);
}

/// Starts `fleet` workspaces until `n` run; returns their ids.
async fn grow_fleet(server: &Server, fleet: &mut Vec<String>, n: usize) {
    grow_fleet_of(server, "fleet", fleet, n).await
}

async fn grow_fleet_of(server: &Server, type_name: &str, fleet: &mut Vec<String>, n: usize) {
    while fleet.len() < n {
        let id = server.workspace(type_name).await;
        server
            .post(&format!("/api/workspaces/{id}/start"), json!({}))
            .await;
        fleet.push(id);
    }
}

async fn stats(server: &Server, opts: &Opts, results: &mut Results, fleet: &mut Vec<String>) {
    eprintln!("== stats: fleet stats vs docker stats --no-stream");
    let sizes: &[usize] = if opts.quick { &[1, 5] } else { &[1, 20, 50] };
    for &n in sizes {
        grow_fleet(server, fleet, n).await;
        let names: Vec<String> = fleet.iter().map(|id| format!("berth-ws-{id}")).collect();
        let names = names.join(" ");
        // Let the sampler see every container once.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (mut b, mut d) = (vec![], vec![]);
        for i in 0..=opts.runs.max(3) {
            let (t, v) = timed_async(server.get("/api/workspaces/stats/live")).await;
            let seen = v["data"].as_array().map(|a| a.len()).unwrap_or_default();
            assert!(seen >= n, "fleet stats saw {seen} of {n}: {v}");
            let td = timed(|| {
                sh(&format!("docker stats --no-stream {names} >/dev/null"));
            });
            if i > 0 {
                b.push(t);
                d.push(td);
            }
        }
        let m = format!("stats, {n} running");
        results.add("stats", &m, "berth /stats/live", b);
        results.add("stats", &m, "docker stats --no-stream", d);
    }
}

async fn footprint(server: &Server, results: &mut Results, fleet: &[String], idle: f64) {
    eprintln!("== footprint: resident memory of the server");
    results.add_unit("footprint", "footprint idle", "berth RSS", vec![idle], "MB");
    results.add_unit(
        "footprint",
        &format!("footprint, {} workspaces", fleet.len()),
        "berth RSS",
        vec![server.rss_mb()],
        "MB",
    );
    // SSE log streams to 20 clients (or as many workspaces as run).
    let clients = 20;
    let mut streams = Vec::new();
    for i in 0..clients {
        let id = &fleet[i % fleet.len()];
        let resp = server
            .http
            .get(format!(
                "{}/api/workspaces/{id}/logs/stream?tail=10",
                server.base
            ))
            .bearer_auth(&server.token)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        streams.push(tokio::spawn(async move {
            let mut resp = resp;
            let mut n = 0usize;
            while let Ok(Some(c)) = resp.chunk().await {
                n += c.len();
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    results.add_unit(
        "footprint",
        &format!("footprint, {clients} SSE clients"),
        "berth RSS",
        vec![server.rss_mb()],
        "MB",
    );
    for s in streams {
        s.abort();
    }
}

async fn api(server: &Server, opts: &Opts, results: &mut Results, fleet: &[String]) {
    let records = if opts.quick { 50 } else { 200 };
    eprintln!(
        "== api: status and list latency, {records} records, {} running",
        fleet.len()
    );
    let have = server.get("/api/workspaces").await["data"]
        .as_array()
        .map(|a| a.len())
        .unwrap_or_default();
    let (pid, _) = server.project("records").await;
    for i in have..records {
        server
            .post(
                "/api/workspaces",
                json!({ "name": format!("r{i}"), "type": "bench", "projectId": pid }),
            )
            .await;
    }
    let secs = if opts.quick { 2 } else { 10 };
    for (what, paths) in [
        (
            "status",
            fleet
                .iter()
                .map(|id| format!("/api/workspaces/{id}/status"))
                .collect::<Vec<_>>(),
        ),
        ("list", vec!["/api/workspaces".to_string()]),
    ] {
        let concurrency = 8;
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for c in 0..concurrency {
            let http = server.http.clone();
            let base = server.base.clone();
            let token = server.token.clone();
            let paths = paths.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = c;
                while Instant::now() < deadline {
                    let p = &paths[i % paths.len()];
                    i += 1;
                    let t = Instant::now();
                    let r = http
                        .get(format!("{base}{p}"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success());
                    let _ = r.bytes().await.unwrap();
                    lat.push(t.elapsed().as_secs_f64());
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let rps = all.len() as f64 / secs as f64;
        results.add(
            "api",
            &format!("api {what} p50"),
            "berth",
            vec![percentile(&all, 0.5)],
        );
        results.add(
            "api",
            &format!("api {what} p99"),
            "berth",
            vec![percentile(&all, 0.99)],
        );
        results.add_unit(
            "api",
            &format!("api {what} throughput"),
            "berth (8 clients)",
            vec![rps],
            "req/s",
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let opts = Opts::parse();
    sh("docker version --format '{{.Server.Version}}' >/dev/null");
    sh(&format!(
        "docker image inspect {IMAGE} >/dev/null 2>&1 || bash {}/scripts/build-busybox-image.sh {IMAGE} >/dev/null",
        env!("CARGO_MANIFEST_DIR")
    ));
    sh("command -v zstd >/dev/null || { echo 'zstd is needed (scripts/setup installs it)' >&2; exit 1; }");
    let meta = json!({
        "date": chrono::Utc::now().to_rfc3339(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": sh("uname -r"),
        "engine": sh("docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'"),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    eprintln!(
        "berth benchmark ({} mode, {} runs per subject): {meta}",
        if opts.quick { "quick" } else { "full" },
        opts.runs
    );

    let server = Server::start();
    // Let it settle (migrations, first engine calls) before the idle figure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = server.rss_mb();
    let mut results = Results::default();
    if opts.wants("volumes") {
        volumes(&server, &opts, &mut results).await;
    }
    if opts.wants("start") {
        start(&server, &opts, &mut results).await;
    }
    let mut fleet = Vec::new();
    if opts.wants("stats") {
        stats(&server, &opts, &mut results, &mut fleet).await;
    }
    if opts.wants("footprint") {
        grow_fleet(&server, &mut fleet, if opts.quick { 5 } else { 50 }).await;
        footprint(&server, &mut results, &fleet, idle).await;
    }
    if opts.wants("placement") {
        placement(&opts, &mut results).await;
    }
    if opts.wants("move") {
        moves(&server, &opts, &mut results).await;
    }
    if opts.wants("api") {
        grow_fleet(&server, &mut fleet, if opts.quick { 5 } else { 20 }).await;
        api(&server, &opts, &mut results, &fleet[..fleet.len().min(20)]).await;
    }
    if opts.wants("load") {
        grow_fleet(&server, &mut fleet, if opts.quick { 1 } else { 20 }).await;
        load(&server, &opts, &mut results, &fleet).await;
    }
    if opts.wants("scale") {
        scale(&opts, &mut results).await;
    }
    if opts.wants("replicas") {
        replicas(&opts, &mut results).await;
    }
    report(&results, &opts, meta);
    drop(server);
}

/// A new database on the PostgreSQL server `server`
/// (`BENCH_DATABASE_URL`); its URL.
fn bench_database(server: &str) -> String {
    let db = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let (rt_server, db2) = (server.to_string(), db.clone());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&format!(
                    "{}/postgres",
                    rt_server.trim_end_matches('/')
                ))
                .await
                .expect("BENCH_DATABASE_URL's server");
                sqlx::query(&format!("CREATE DATABASE {db2}"))
                    .execute(&mut c)
                    .await
                    .unwrap();
            })
    })
    .join()
    .unwrap();
    format!("{}/{db}", server.trim_end_matches('/'))
}

// ------------------------------------------------------------- store at scale

/// How big the seeded store is.
struct Scale {
    users: usize,
    workspaces: usize,
    backups_per_project: usize,
    events_per_workspace: usize,
}

/// Fills the store at `url` the way a few hundred developers would over
/// years: `users` members, one project per workspace (five of them the
/// bench member's, the rest spread over the seeded users), backups and
/// events. Multi-row inserts in transactions: seconds, not
/// the hours one insert per row would take.
fn seed_store(url: &str, member: &str, scale: &Scale) {
    let url = url.to_string();
    let member = member.to_string();
    let (users, workspaces, bpp, epw) = (
        scale.users,
        scale.workspaces,
        scale.backups_per_project,
        scale.events_per_workspace,
    );
    // Its own runtime on its own thread: the caller is a synchronous step
    // of starting the server.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            sqlx::any::install_default_drivers();
            let pool = sqlx::any::AnyPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .expect("the bench store");
            let t0 = Instant::now();
            let now = chrono::Utc::now().timestamp_millis();
            let mut rng = rand::rngs::StdRng::seed_from_u64(19);
            let ids = |n: usize| -> Vec<String> {
                (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect()
            };
            let user_ids = ids(users);
            let ws_ids = ids(workspaces);
            let project_ids = ids(workspaces);
            async fn insert(pool: &sqlx::AnyPool, head: &str, rows: Vec<String>) {
                for chunk in rows.chunks(500) {
                    let sql = format!("{head} VALUES {}", chunk.join(","));
                    sqlx::query(&sql).execute(pool).await.expect("seed insert");
                }
            }
            let begin = |pool: &sqlx::AnyPool| {
                let pool = pool.clone();
                async move {
                    sqlx::query("BEGIN").execute(&pool).await.unwrap();
                }
            };
            begin(&pool).await;
            insert(
                &pool,
                "INSERT INTO users (id, email, password_hash, role, created_at)",
                user_ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        format!(
                            "('{id}', 'seed{i}@example.com', '!', 'member', {})",
                            now - 400 * 86_400_000 + i as i64 * 1000
                        )
                    })
                    .collect(),
            )
            .await;
            let owner_of = |i: usize| -> String {
                if i < 5 {
                    member.clone()
                } else {
                    user_ids[i % user_ids.len()].clone()
                }
            };
            let created = |i: usize| now - 300 * 86_400_000 + i as i64 * 2_000;
            insert(
                &pool,
                "INSERT INTO projects (id, owner_id, name, description, workspace_type, workspace_id, volume_name, created_at, updated_at, node)",
                (0..workspaces)
                    .map(|i| {
                        let p = &project_ids[i];
                        format!(
                            "('{p}', '{}', 'p{i}', '', 'fleet', '{}', 'berth-project-{p}', {c}, {c}, 'local')",
                            owner_of(i),
                            ws_ids[i],
                            c = created(i)
                        )
                    })
                    .collect(),
            )
            .await;
            insert(
                &pool,
                "INSERT INTO workspaces (id, owner_id, name, description, type_name, project_id, is_default, settings, status, created_at, updated_at, last_activity_at, node)",
                (0..workspaces)
                    .map(|i| {
                        format!(
                            "('{}', '{}', 'w{i}', '', 'fleet', '{}', 0, '{{\"v\":1}}', 'stopped', {c}, {c}, {c}, 'local')",
                            ws_ids[i],
                            owner_of(i),
                            project_ids[i],
                            c = created(i)
                        )
                    })
                    .collect(),
            )
            .await;
            sqlx::query("COMMIT").execute(&pool).await.unwrap();
            begin(&pool).await;
            let mut rows = Vec::with_capacity(10_000);
            for (i, p) in project_ids.iter().enumerate() {
                for k in 0..bpp {
                    let at = now - (k as i64) * 86_400_000 - rng.gen_range(0..3_600_000);
                    rows.push(format!(
                        "('{}', '{p}', '{}', {at}, {at}, 'complete', 'zstd', 1000000, '{:064x}', 0, 2000000, 'made')",
                        uuid::Uuid::new_v4(),
                        owner_of(i),
                        rng.gen::<u128>()
                    ));
                }
                if rows.len() >= 10_000 {
                    insert(&pool, "INSERT INTO backups (id, project_id, owner_id, created_at, completed_at, state, compression, size_bytes, sha256, crash_consistent, content_bytes, origin)", std::mem::take(&mut rows)).await;
                }
            }
            insert(&pool, "INSERT INTO backups (id, project_id, owner_id, created_at, completed_at, state, compression, size_bytes, sha256, crash_consistent, content_bytes, origin)", rows).await;
            sqlx::query("COMMIT").execute(&pool).await.unwrap();
            begin(&pool).await;
            let mut rows = Vec::with_capacity(10_000);
            for w in &ws_ids {
                for k in 0..epw {
                    rows.push(format!(
                        "('{}', '{w}', {}, 'started', 'started')",
                        uuid::Uuid::new_v4(),
                        now - (k as i64) * 60_000
                    ));
                }
                if rows.len() >= 10_000 {
                    insert(
                        &pool,
                        "INSERT INTO workspace_events (id, workspace_id, at, kind, message)",
                        std::mem::take(&mut rows),
                    )
                    .await;
                }
            }
            insert(
                &pool,
                "INSERT INTO workspace_events (id, workspace_id, at, kind, message)",
                rows,
            )
            .await;
            sqlx::query("COMMIT").execute(&pool).await.unwrap();
            // Fresh statistics for the planner (both databases have ANALYZE).
            sqlx::query("ANALYZE").execute(&pool).await.unwrap();
            pool.close().await;
            eprintln!(
                "  seeded {users} users, {workspaces} workspaces and projects, {} backups, {} events in {:.1} s",
                workspaces * bpp,
                workspaces * epw,
                t0.elapsed().as_secs_f64()
            );
        })
    })
    .join()
    .expect("seeding the store");
}

/// `n` sequential requests of `path` with `token`: the latencies, seconds.
async fn latencies(server: &Server, token: &str, path: &str, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let resp = server
            .http
            .get(format!("{}{path}", server.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.bytes().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body:?}");
        out.push(t.elapsed().as_secs_f64());
    }
    out
}

/// The store seeded to the sizes issue 19 names (10,000 workspaces, 2,000
/// users, 100,000 backups, 1,000,000 events; quick: a tenth, events a
/// hundredth) on SQLite, or on PostgreSQL with `BENCH_DATABASE_URL`
/// (a database of its own is made there): pages, the owner filter, the
/// cleanup and schedule planners, retention, and the server's memory.
async fn scale(opts: &Opts, results: &mut Results) {
    let scale = if opts.quick {
        Scale {
            users: 200,
            workspaces: 1_000,
            backups_per_project: 10,
            events_per_workspace: 10,
        }
    } else {
        Scale {
            users: 2_000,
            workspaces: 10_000,
            backups_per_project: 10,
            events_per_workspace: 100,
        }
    };
    let (extra, db) = match std::env::var("BENCH_DATABASE_URL") {
        Ok(server) => (
            format!(
                "database_url = \"{}\"\n[backups]\nschedule = \"0 3 * * *\"",
                bench_database(&server)
            ),
            "postgres",
        ),
        Err(_) => ("[backups]\nschedule = \"0 3 * * *\"".to_string(), "sqlite"),
    };
    eprintln!(
        "== scale: {} workspaces, {} users, {} backups, {} events on {db}",
        scale.workspaces,
        scale.users,
        scale.workspaces * scale.backups_per_project,
        scale.workspaces * scale.events_per_workspace
    );
    let server = Server::start_with(&extra, |url, member| seed_store(url, member, &scale));
    // The watcher's first reconcile runs over every record at start.
    tokio::time::sleep(Duration::from_secs(3)).await;
    results.add_unit(
        "scale",
        &format!(
            "footprint at start, {}k records ({db})",
            scale.workspaces / 1000
        ),
        "berth RSS",
        vec![server.rss_mb()],
        "MB",
    );
    let n = if opts.quick { 50 } else { 300 };
    let k = format!("{}k", scale.workspaces / 1000);
    let first = server.get("/api/workspaces?limit=50").await;
    let cursor = first["page"]["nextCursor"].as_str().unwrap().to_string();
    assert_eq!(
        first["page"]["total"].as_u64(),
        Some(scale.workspaces as u64),
        "{}",
        first["page"]
    );
    let some_ws = first["data"][0]["id"].as_str().unwrap().to_string();
    let some_project = first["data"][0]["currentProjectId"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_default();
    for (what, token, path) in [
        (
            "page of 50 workspaces",
            &server.token,
            "/api/workspaces?limit=50".to_string(),
        ),
        (
            "next page of 50 workspaces",
            &server.token,
            format!("/api/workspaces?limit=50&cursor={cursor}"),
        ),
        (
            "a member's workspaces (owner filter)",
            &server.member_token,
            "/api/workspaces".to_string(),
        ),
        (
            "page of 50 projects",
            &server.token,
            "/api/projects?limit=50".to_string(),
        ),
        (
            "page of 50 users",
            &server.token,
            "/api/users?limit=50".to_string(),
        ),
        (
            "page of 50 events",
            &server.token,
            format!("/api/workspaces/{some_ws}/events?limit=50"),
        ),
        (
            "page of 10 backups",
            &server.token,
            format!("/api/projects/{some_project}/backups?limit=10"),
        ),
    ] {
        let lat = latencies(&server, token, &path, n).await;
        results.add(
            "scale",
            &format!("{what}, {k} p50 ({db})"),
            "berth",
            vec![percentile(&lat, 0.5)],
        );
        results.add(
            "scale",
            &format!("{what}, {k} p99 ({db})"),
            "berth",
            vec![percentile(&lat, 0.99)],
        );
    }
    results.add_unit(
        "scale",
        &format!("footprint after pages, {k} records ({db})"),
        "berth RSS",
        vec![server.rss_mb()],
        "MB",
    );
    let all = latencies(&server, &server.token, "/api/workspaces", 3).await;
    results.add(
        "scale",
        &format!("whole list of {k} workspaces ({db})"),
        "berth",
        all,
    );
    for job in [
        "inactive",
        "orphaned-containers",
        "orphaned-volumes",
        "error-recovery",
        "backups",
    ] {
        let mut samples = Vec::new();
        for _ in 0..3 {
            let (t, v) =
                timed_async(server.post(&format!("/api/jobs/{job}/run?dryRun=true"), json!({})))
                    .await;
            assert_eq!(v["data"]["outcome"], "ok", "{job}: {v}");
            samples.push(t);
        }
        results.add(
            "scale",
            &format!("plan {job}, {k} workspaces ({db})"),
            "berth dry run",
            samples,
        );
    }
    results.add_unit(
        "scale",
        &format!("footprint, {k} records ({db})"),
        "berth RSS",
        vec![server.rss_mb()],
        "MB",
    );
    // 200 running workspaces beside them, idle as most developers' are
    // at any moment (a busybox httpd, a health check every 30 s; the
    // `fleet` type's logging loop would make the engine, not Berth, the
    // machine's load): the fleet figures, status under load, and memory
    // with their engine view.
    let running = if opts.quick { 5 } else { 200 };
    let mut fleet = Vec::new();
    let t = Instant::now();
    grow_fleet_of(&server, "quiet", &mut fleet, running).await;
    eprintln!(
        "  {running} workspaces started in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut samples = Vec::new();
    for _ in 0..5 {
        let (t, v) = timed_async(server.get("/api/workspaces/stats/live")).await;
        let seen = v["data"].as_array().map(|a| a.len()).unwrap_or_default();
        assert!(seen >= running, "fleet stats saw {seen} of {running}");
        samples.push(t);
    }
    results.add(
        "scale",
        &format!("fleet stats, {running} running, {k} records ({db})"),
        "berth /stats/live",
        samples,
    );
    let id = &fleet[0];
    for c in [8usize, 256] {
        let r = wrk(
            &format!("{}/api/workspaces/{id}/status", server.base),
            &server.token,
            c,
            if opts.quick { 1 } else { 10 },
        );
        let m = format!("status at c={c}, {running} running, {k} records ({db})");
        results.add("scale", &m, "p99", vec![r.p99]);
        results.add_unit("scale", &m, "errors", vec![r.errors], "requests");
    }
    results.add_unit(
        "scale",
        &format!("footprint, {k} records, {running} running ({db})"),
        "berth RSS",
        vec![server.rss_mb()],
        "MB",
    );
    // Retention over 100,000 backups of one project: the pure planner.
    let backups: Vec<berth::domain::retention::BackupSeen> = (0..100_000)
        .map(|i| berth::domain::retention::BackupSeen {
            id: uuid::Uuid::new_v4(),
            created_at: 1_700_000_000_000 - i * 3_600_000,
            state: berth::domain::backups::BackupState::Complete,
        })
        .collect();
    let policy = berth::domain::retention::RetentionPolicy {
        keep_last: 10,
        keep_daily: 30,
        keep_weekly: 52,
    };
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.push(timed(|| {
            let gone = berth::domain::retention::plan_retention(&backups, &policy);
            assert!(gone.len() > 90_000);
        }));
    }
    results.add("scale", "plan retention, 100k backups", "berth", samples);
    drop(server);
}

// ------------------------------------------------------------- replicas

/// One wrk per base URL at once, `connections` split between them: the
/// throughputs added, the worst p99, the errors added.
fn wrk_spread(bases: &[String], path: &str, token: &str, connections: usize, secs: u64) -> WrkRun {
    let each = (connections / bases.len()).max(1);
    let runs: Vec<WrkRun> = std::thread::scope(|s| {
        let handles: Vec<_> = bases
            .iter()
            .map(|b| {
                let url = format!("{b}{path}");
                s.spawn(move || wrk(&url, token, each, secs))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    WrkRun {
        p50: runs.iter().map(|r| r.p50).fold(0.0, f64::max),
        p99: runs.iter().map(|r| r.p99).fold(0.0, f64::max),
        max: runs.iter().map(|r| r.max).fold(0.0, f64::max),
        rps: runs.iter().map(|r| r.rps).sum(),
        requests: runs.iter().map(|r| r.requests).sum(),
        errors: runs.iter().map(|r| r.errors).sum(),
    }
}

/// A replica beside `first`, on its config and another port; waited for.
fn spawn_replica(first: &Server) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = berth_command(env!("CARGO_BIN_EXE_berth"))
        .args(["--config", first.config_path().to_str().unwrap(), "serve"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("BERTH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while sh(&format!(
        "curl -fs {base}/healthz >/dev/null && echo up || true"
    )) != "up"
    {
        assert!(Instant::now() < deadline, "a replica did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, base)
}

/// Several replicas on one PostgreSQL database (`BENCH_DATABASE_URL`;
/// skipped without): status and list throughput through one replica and
/// spread over three (one wrk per replica, the connections split), and
/// what killing the replica that ran a job's last tick costs — how long
/// until another marks a backup it was writing interrupted, and when the
/// job's next tick runs on a survivor. On two cores three replicas cannot
/// add CPU: the ratio is the cost (or not) of coordination.
async fn replicas(opts: &Opts, results: &mut Results) {
    let Ok(pg) = std::env::var("BENCH_DATABASE_URL") else {
        eprintln!("== replicas: skipped (needs PostgreSQL: BENCH_DATABASE_URL, e.g. under scripts/with-postgres)");
        return;
    };
    let extra = format!(
        "database_url = \"{}\"\n[replicas]\nheartbeat_s = 1\ndead_after_s = 4\n[cleanup.schedules]\ninactive = \"* * * * *\"",
        bench_database(&pg)
    );
    eprintln!("== replicas: one, then three, on PostgreSQL");
    let first = Server::start_with(&extra, |_, _| {});
    let mut fleet = Vec::new();
    grow_fleet(&first, &mut fleet, 1).await;
    let id = fleet[0].clone();
    let secs = if opts.quick { 1 } else { 10 };
    let levels: &[usize] = if opts.quick { &[8] } else { &[8, 64] };
    let mut bases = vec![first.base.clone()];
    let mut others = Vec::new();
    for n in [1, 3] {
        while bases.len() < n {
            let (child, base) = spawn_replica(&first);
            others.push(child);
            bases.push(base);
        }
        for (what, path) in [
            ("status", format!("/api/workspaces/{id}/status")),
            ("list", "/api/workspaces".to_string()),
        ] {
            for &c in levels {
                let r = wrk_spread(&bases, &path, &first.token, c, secs);
                let m = format!("replicas {what} c={c}");
                let subject = format!("{n} replica{}", if n == 1 { "" } else { "s" });
                results.add_unit(
                    "replicas",
                    &m,
                    &format!("{subject} throughput"),
                    vec![r.rps],
                    "req/s",
                );
                results.add("replicas", &m, &format!("{subject} p99"), vec![r.p99]);
                results.add_unit(
                    "replicas",
                    &m,
                    &format!("{subject} errors"),
                    vec![r.errors],
                    "requests",
                );
            }
        }
    }
    if opts.quick {
        return;
    }
    // The replica that ran the last tick of `inactive` (every minute).
    let http = reqwest::Client::new();
    let get = |base: String, path: String| {
        let (http, token) = (http.clone(), first.token.clone());
        async move {
            let v: Value = http
                .get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"].clone()
        }
    };
    let last_run = loop {
        let runs = get(first.base.clone(), "/api/jobs/inactive/runs?limit=1".into()).await;
        if let Some(r) = runs.as_array().and_then(|a| a.first()).cloned() {
            break r;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let ran = last_run["replica"].as_str().unwrap().to_string();
    let list = get(first.base.clone(), "/api/replicas".into()).await;
    let name = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == ran.as_str())
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    let victim = bases
        .iter()
        .position(|b| name.ends_with(&format!(":{}", b.rsplit(':').next().unwrap())))
        .unwrap();
    let survivor = bases[(victim + 1) % 3].clone();
    // A backup through it that takes seconds (300 MB that do not compress).
    let (big, volume) = first.project("big").await;
    sh(&format!(
        "docker run --rm -v {volume}:/data {IMAGE} sh -c 'head -c 300000000 /dev/urandom > /data/big'"
    ));
    let (vbase, token, pid) = (bases[victim].clone(), first.token.clone(), big.clone());
    let pending = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{vbase}/api/workspaces/projects/{pid}/backup"))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await
    });
    let backups = |state: &'static str| {
        let (get, survivor, big) = (&get, survivor.clone(), big.clone());
        async move {
            get(survivor, format!("/api/projects/{big}/backups"))
                .await
                .as_array()
                .unwrap()
                .iter()
                .any(|b| b["state"] == state)
        }
    };
    // Killed once the backup is being written.
    while !backups("in_progress").await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = Instant::now();
    let killed_at = chrono::Utc::now().timestamp_millis();
    if victim == 0 {
        sh(&format!("kill -9 {}", first.child.id()));
    } else {
        let _ = others[victim - 1].kill();
    }
    let _ = pending.await;
    // Marked interrupted by a survivor.
    while !backups("failed").await {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "never marked interrupted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    results.add(
        "replicas",
        "killed replica",
        "its backup marked interrupted",
        vec![killed.elapsed().as_secs_f64()],
    );
    // The job's next tick, on a survivor.
    let next = loop {
        let runs = get(survivor.clone(), "/api/jobs/inactive/runs?limit=5".into()).await;
        let found = runs.as_array().unwrap().iter().find(|r| {
            let tick = r["tick"].as_str().map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .unwrap()
                    .timestamp_millis()
            });
            tick.is_some_and(|t| t > killed_at) && r["outcome"] != "running"
        });
        if let Some(r) = found {
            break r.clone();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "no tick ran after the kill"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_ne!(next["replica"], ran.as_str(), "a dead replica ran a tick");
    let ms = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(next[k].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    results.add(
        "replicas",
        "killed replica",
        "kill to the job's next run elsewhere",
        vec![(ms("startedAt") - killed_at) as f64 / 1000.0],
    );
    results.add(
        "replicas",
        "killed replica",
        "that run's start after its tick",
        vec![(ms("startedAt") - ms("tick")) as f64 / 1000.0],
    );
    for mut c in others {
        let _ = c.kill();
        let _ = c.wait();
    }
    drop(first);
}

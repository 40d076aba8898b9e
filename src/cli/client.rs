//! The client half of `berth`: commands that talk to a running server over
//! its HTTP API (`--server`/`BERTH_SERVER`, token from `--token`/
//! `BERTH_TOKEN` or what `berth login` stored). Human tables by default,
//! `--json` prints the server's `data` as JSON for scripts.
//!
//! Exit codes: 0 done; 1 the server said no (its message is printed);
//! 2 usage (clap's, and local mistakes such as a missing file); 3 the
//! server could not be reached.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use sha2::Digest;

/// Where `berth login` keeps the server and token (mode 0600).
pub fn credentials_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_CLIENT_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("berth").join("credentials.json"))
}

/// Options every client command takes.
#[derive(Args, Clone)]
pub struct ClientOpts {
    /// Berth server URL (default: what `berth login` stored, else http://127.0.0.1:7780).
    #[arg(long, global = true, env = "BERTH_SERVER")]
    pub server: Option<String>,
    /// API token (default: what `berth login` stored).
    #[arg(long, global = true, env = "BERTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's answer as JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The same options given before the command (`berth --token T ws ls`):
/// not global, so commands that are not the client's (`user add`) do not
/// list them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LeadingClientOpts {
    #[arg(long, hide = true)]
    pub server: Option<String>,
    #[arg(long, hide = true, hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long, hide = true)]
    pub json: bool,
}

impl ClientOpts {
    /// These, with what was given before the command filling the gaps.
    pub fn with_leading(mut self, lead: &LeadingClientOpts) -> ClientOpts {
        self.server = self.server.or_else(|| lead.server.clone());
        self.token = self.token.or_else(|| lead.token.clone());
        self.json |= lead.json;
        self
    }
}

#[derive(Subcommand)]
pub enum ProjectCmd {
    /// Create a project (and its volume).
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List your projects.
    Ls,
    /// Delete a project; its volume is kept unless --purge.
    Rm {
        id: String,
        #[arg(long)]
        purge: bool,
    },
}

#[derive(Subcommand)]
pub enum WsCmd {
    /// Create a workspace.
    Create {
        name: String,
        /// Workspace type (see `berth ws types`).
        #[arg(long = "type")]
        type_name: String,
        /// Project whose volume it mounts.
        #[arg(long)]
        project: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List your workspaces.
    Ls,
    /// The workspace types and whether they can run.
    Types,
    /// One workspace, in full.
    Show { id: String },
    /// Start a workspace; --wait until it is healthy.
    Start {
        id: String,
        #[arg(long)]
        wait: bool,
        /// Seconds --wait waits at most.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Stop a workspace.
    Stop { id: String },
    /// Restart a workspace.
    Restart { id: String },
    /// Delete a workspace (its project's volume stays).
    Rm { id: String },
    /// Status, health and resource use.
    Status { id: String },
    /// The health check's state.
    Health { id: String },
    /// Container logs.
    Logs {
        id: String,
        /// Keep following (Server-Sent Events) until interrupted.
        #[arg(short, long)]
        follow: bool,
        #[arg(long)]
        tail: Option<u64>,
        /// Unix seconds, or a duration such as 10m, 2h.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        timestamps: bool,
    },
    /// CPU, memory, network and block I/O.
    Stats {
        id: String,
        /// Follow the live stream (a line every 2 s) until interrupted.
        #[arg(long)]
        watch: bool,
    },
    /// Change CPU and memory limits (live, when running); shows them
    /// without options.
    Resources {
        id: String,
        /// CPU cores (e.g. 1.5).
        #[arg(long)]
        cpus: Option<f64>,
        /// Memory limit in MB.
        #[arg(long)]
        memory: Option<u64>,
        /// Memory plus swap in MB (equal to --memory: no swap).
        #[arg(long)]
        memory_swap: Option<u64>,
        /// Soft memory reservation in MB.
        #[arg(long)]
        memory_reservation: Option<u64>,
    },
    /// Rename, describe, make default, archive or unarchive.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Make it your default workspace.
        #[arg(long)]
        default: bool,
        #[arg(long, conflicts_with = "unarchive")]
        archive: bool,
        #[arg(long)]
        unarchive: bool,
    },
    /// Recent lifecycle events (starts, recoveries, OOM kills).
    Events {
        id: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Subcommand)]
pub enum BackupCmd {
    /// Back up a project's volume.
    Create {
        project: String,
        /// zstd (default) or gzip.
        #[arg(long)]
        compression: Option<String>,
        /// Pause running workspaces for a consistent copy.
        #[arg(long)]
        pause: bool,
    },
    /// A project's backups.
    Ls { project: String },
    /// Download an archive (its checksum is checked).
    Download {
        id: String,
        /// File to write (default: the server's file name).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Upload an archive into a project's catalogue.
    Upload { project: String, file: PathBuf },
    /// Replace a project's data with a backup's.
    Restore {
        project: String,
        backup: String,
        /// Stop running workspaces on the project (and start them after).
        #[arg(long)]
        stop: bool,
    },
    /// Re-read an archive and check it.
    Verify { id: String },
    /// A project's backup schedule and retention; options change them (a
    /// setting left out keeps the project's own value; --reset goes back to
    /// the server's defaults).
    Policy {
        project: String,
        /// Cron expression (5 fields), e.g. "0 3 * * *".
        #[arg(long)]
        schedule: Option<String>,
        #[arg(long)]
        keep_last: Option<u32>,
        #[arg(long)]
        keep_daily: Option<u32>,
        #[arg(long)]
        keep_weekly: Option<u32>,
        /// Forget the project's own settings.
        #[arg(long, conflicts_with_all = ["schedule", "keep_last", "keep_daily", "keep_weekly"])]
        reset: bool,
    },
    /// Delete a backup.
    Rm { id: String },
}

#[derive(Subcommand)]
pub enum VolumeCmd {
    /// Copy a project's data into another project (or a new one).
    Clone {
        project: String,
        /// Existing target project.
        #[arg(long, conflicts_with = "name", required_unless_present = "name")]
        to: Option<String>,
        /// Create the target project with this name.
        #[arg(long)]
        name: Option<String>,
        /// Replace a non-empty target's content.
        #[arg(long)]
        overwrite: bool,
    },
    /// How much data a project holds.
    Size { project: String },
}

#[derive(Subcommand)]
pub enum TypeCmd {
    /// The configured workspace types and whether each can start here.
    Ls,
    /// Pull a type's image from its registry (admin), with its progress.
    Pull { name: String },
}

#[derive(Subcommand)]
pub enum AccountCmd {
    /// Who you are logged in as.
    Show,
    /// Change your password: the current one and the new one on standard
    /// input, one per line. Ends your other login sessions.
    Passwd,
    /// Your API tokens and login sessions (never the secrets).
    Tokens,
    /// Make an API token for a script; prints it (and nothing else) once.
    TokenAdd { name: String },
    /// Revoke one of your tokens or sessions by id.
    TokenRm { id: String },
}

/// A failed client command, by exit code.
pub enum Failure {
    /// The server answered with an error (exit 1).
    Server(String),
    /// Could not reach the server (exit 3).
    Unreachable(String),
    /// A local mistake (exit 2).
    Usage(String),
}

impl Failure {
    pub fn exit(self) -> ExitCode {
        let (msg, code) = match self {
            Failure::Server(m) => (m, 1),
            Failure::Usage(m) => (m, 2),
            Failure::Unreachable(m) => (m, 3),
        };
        eprintln!("berth: {msg}");
        ExitCode::from(code)
    }
}

type Res<T> = std::result::Result<T, Failure>;

/// A connection to one server.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    pub json: bool,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Stored {
    server: Option<String>,
    token: Option<String>,
}

fn stored() -> Stored {
    credentials_path()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

impl Client {
    pub fn new(opts: &ClientOpts) -> Client {
        let saved = stored();
        let base = opts
            .server
            .clone()
            .or(saved.server)
            .unwrap_or_else(|| "http://127.0.0.1:7780".into())
            .trim_end_matches('/')
            .to_string();
        Client {
            base,
            token: opts.token.clone().or(saved.token),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .expect("HTTP client"),
            json: opts.json,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> Failure {
        let why = if e.is_connect() {
            "connection refused or no route (is `berth serve` running there?)".to_string()
        } else if e.is_timeout() {
            "timed out".to_string()
        } else {
            e.to_string()
        };
        Failure::Unreachable(format!(
            "cannot reach the Berth server at {}: {why}",
            self.base
        ))
    }

    /// Sends and turns an error envelope into [`Failure::Server`].
    async fn send(&self, req: reqwest::RequestBuilder) -> Res<reqwest::Response> {
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            " (log in with `berth login`, or pass --token / BERTH_TOKEN)"
        } else {
            ""
        };
        Err(Failure::Server(format!(
            "{msg}{hint} [HTTP {}]",
            status.as_u16()
        )))
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Res<Value> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = self.send(req).await?;
        let v: Value = resp
            .json()
            .await
            .map_err(|e| Failure::Server(format!("the server's answer is not JSON: {e}")))?;
        Ok(v.get("data").cloned().unwrap_or(v))
    }

    async fn get(&self, path: &str) -> Res<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Res<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Res<Value> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Reads the Server-Sent Events at `path`, calling `on(event, data)`
    /// per event (`event` is "message" when unnamed) until it returns false
    /// or the stream ends. Bytes are split into lines before decoding, so a
    /// character across two chunks stays whole.
    async fn follow_events(&self, path: &str, mut on: impl FnMut(&str, &str) -> bool) -> Res<()> {
        let mut resp = self.send(self.request(reqwest::Method::GET, path)).await?;
        let mut pending: Vec<u8> = Vec::new();
        let mut event = String::new();
        let mut data: Vec<String> = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.unreachable(e))? {
            pending.extend_from_slice(&chunk);
            while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = pending.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&raw);
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if !data.is_empty() {
                        let name = if event.is_empty() { "message" } else { &event };
                        if !on(name, &data.join("\n")) {
                            return Ok(());
                        }
                    }
                    event.clear();
                    data.clear();
                } else if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_string();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d).to_string());
                }
            }
        }
        Ok(())
    }

    /// Prints `data` as JSON (with --json) or with `human`.
    fn show(&self, data: &Value, human: impl FnOnce(&Value)) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(data).expect("JSON"));
        } else {
            human(data);
        }
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints rows under headers, columns padded to their widest cell.
pub(super) fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

fn mb(bytes: &Value) -> String {
    bytes
        .as_f64()
        .map(|b| format!("{:.1} MB", b / 1e6))
        .unwrap_or_else(|| "-".into())
}

/// A progress bar on stderr when it is a terminal.
fn bar(len: Option<u64>, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::no_length(),
    };
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .expect("template")
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(what.to_string());
    pb
}

/// `berth login --email E` (password on stdin) or `berth login --token T`.
pub async fn login(opts: &ClientOpts, email: Option<String>) -> Res<()> {
    let client = Client::new(opts);
    let token = match email {
        None => opts.token.clone().ok_or_else(|| {
            Failure::Usage("give --email (the password is read from stdin) or --token".into())
        })?,
        Some(email) => {
            if std::io::stdin().is_terminal() {
                eprint!("password for {email}: ");
                let _ = std::io::stderr().flush();
            }
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| Failure::Usage(format!("reading the password: {e}")))?;
            let v = client
                .post(
                    "/api/auth/login",
                    json!({ "email": email, "password": password.trim_end_matches(['\r', '\n']) }),
                )
                .await?;
            s(&v["accessToken"])
        }
    };
    // Check it before keeping it.
    let check = Client {
        token: Some(token.clone()),
        ..Client::new(opts)
    };
    let me = check.get("/api/auth/me").await?;
    let path = credentials_path()
        .ok_or_else(|| Failure::Usage("no HOME or XDG_CONFIG_HOME to keep the token in".into()))?;
    write_private(
        &path,
        &serde_json::to_vec_pretty(&Stored {
            server: Some(check.base.clone()),
            token: Some(token),
        })
        .expect("JSON"),
    )
    .map_err(|e| Failure::Usage(format!("writing {}: {e}", path.display())))?;
    eprintln!(
        "logged in to {} as {}; token kept in {}",
        check.base,
        s(&me["email"]),
        path.display()
    );
    Ok(())
}

pub fn logout() -> Res<()> {
    if let Some(p) = credentials_path() {
        match std::fs::remove_file(&p) {
            Ok(()) => eprintln!("removed {}", p.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Failure::Usage(format!("removing {}: {e}", p.display()))),
        }
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open: make sure.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)
}

pub async fn project(opts: &ClientOpts, cmd: ProjectCmd) -> Res<()> {
    let c = Client::new(opts);
    match cmd {
        ProjectCmd::Create { name, description } => {
            let v = c
                .post(
                    "/api/projects",
                    json!({ "name": name, "description": description }),
                )
                .await?;
            c.show(&v, |v| {
                println!("{}", s(&v["id"]));
                eprintln!(
                    "created project {} on volume {}",
                    s(&v["name"]),
                    s(&v["volumeName"])
                );
            });
        }
        ProjectCmd::Ls => {
            let v = c.get("/api/projects").await?;
            c.show(&v, |v| {
                let rows = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        vec![
                            s(&p["id"]),
                            s(&p["name"]),
                            s(&p["volumeName"]),
                            s(&p["createdAt"]),
                        ]
                    })
                    .collect();
                table(&["ID", "NAME", "VOLUME", "CREATED"], rows);
            });
        }
        ProjectCmd::Rm { id, purge } => {
            let v = c
                .delete(&format!(
                    "/api/projects/{id}{}",
                    if purge { "?purge=true" } else { "" }
                ))
                .await?;
            c.show(&v, |_| eprintln!("deleted project {id}"));
        }
    }
    Ok(())
}

fn workspace_rows(v: &Value) -> Vec<Vec<String>> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            vec![
                s(&w["id"]),
                s(&w["name"]),
                s(&w["type"]),
                s(&w["status"]),
                s(&w["currentProjectId"]),
                // What a person opens (the proxy or the app's own origin),
                // not the 127.0.0.1 port only this host reaches.
                s(&w["appUrl"]),
            ]
        })
        .collect()
}

/// Parses `--since`: Unix seconds, or a duration back from now (30s, 10m, 2h, 1d).
fn since_arg(raw: &str) -> Res<i64> {
    if let Ok(n) = raw.parse::<i64>() {
        return Ok(n);
    }
    let (num, unit) = raw.split_at(raw.len().saturating_sub(1));
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    match num.parse::<i64>() {
        Ok(n) if secs > 0 => Ok(chrono::Utc::now().timestamp() - n * secs),
        _ => Err(Failure::Usage(format!(
            "--since {raw:?}: give Unix seconds or a duration like 30s, 10m, 2h, 1d"
        ))),
    }
}

pub async fn ws(opts: &ClientOpts, cmd: WsCmd) -> Res<()> {
    let c = Client::new(opts);
    match cmd {
        WsCmd::Create {
            name,
            type_name,
            project,
            description,
        } => {
            let v = c
                .post(
                    "/api/workspaces",
                    json!({ "name": name, "type": type_name, "projectId": project, "description": description }),
                )
                .await?;
            c.show(&v, |v| {
                println!("{}", s(&v["id"]));
                eprintln!("created workspace {} ({})", s(&v["name"]), s(&v["type"]));
            });
        }
        WsCmd::Ls => {
            let v = c.get("/api/workspaces").await?;
            c.show(&v, |v| {
                table(
                    &["ID", "NAME", "TYPE", "STATUS", "PROJECT", "URL"],
                    workspace_rows(v),
                )
            });
        }
        WsCmd::Types => return types(opts, TypeCmd::Ls).await,
        WsCmd::Show { id } => {
            let v = c.get(&format!("/api/workspaces/{id}")).await?;
            c.show(&v, |v| {
                for key in [
                    "id",
                    "name",
                    "type",
                    "status",
                    "statusReason",
                    "currentProjectId",
                    "appUrl",
                    "url",
                    "containerName",
                    "lastActivityAt",
                    "createdAt",
                ] {
                    println!("{key:<17}{}", s(&v[key]));
                }
            });
        }
        WsCmd::Start { id, wait, timeout } => {
            let v = c
                .post(&format!("/api/workspaces/{id}/start"), json!({}))
                .await?;
            if wait {
                wait_healthy(&c, &id, Duration::from_secs(timeout)).await?;
            }
            let v = if wait {
                c.get(&format!("/api/workspaces/{id}")).await?
            } else {
                v
            };
            c.show(&v, |v| eprintln!("{} {}", s(&v["status"]), s(&v["appUrl"])));
        }
        WsCmd::Stop { id } => {
            let v = c
                .post(&format!("/api/workspaces/{id}/stop"), json!({}))
                .await?;
            c.show(&v, |v| eprintln!("{}", s(&v["status"])));
        }
        WsCmd::Restart { id } => {
            let v = c
                .post(&format!("/api/workspaces/{id}/restart"), json!({}))
                .await?;
            c.show(&v, |v| eprintln!("{}", s(&v["status"])));
        }
        WsCmd::Rm { id } => {
            let v = c.delete(&format!("/api/workspaces/{id}")).await?;
            c.show(&v, |_| eprintln!("deleted workspace {id}"));
        }
        WsCmd::Status { id } => {
            let v = c.get(&format!("/api/workspaces/{id}/status")).await?;
            c.show(&v, |v| {
                println!("status           {}", s(&v["status"]));
                if !v["statusReason"].is_null() {
                    println!("reason           {}", s(&v["statusReason"]));
                }
                println!("health           {}", s(&v["health"]["status"]));
                println!("container        {}", s(&v["containerInfo"]["state"]));
                let r = &v["resources"];
                if !r.is_null() {
                    println!(
                        "cpu              {}%",
                        r["cpuUsage"]
                            .as_f64()
                            .map(|x| format!("{x:.1}"))
                            .unwrap_or("-".into())
                    );
                    println!(
                        "memory           {} MB of {} MB",
                        s(&r["memoryUsage"]),
                        s(&r["memoryLimit"])
                    );
                }
            });
        }
        WsCmd::Health { id } => {
            let v = c.get(&format!("/api/workspaces/{id}/health")).await?;
            c.show(&v, |v| {
                println!(
                    "{} (failing streak {})",
                    s(&v["status"]),
                    s(&v["failingStreak"])
                );
                if let Some(o) = v["lastCheck"]["output"].as_str() {
                    if !o.trim().is_empty() {
                        println!("last check: {}", o.trim());
                    }
                }
            });
        }
        WsCmd::Logs {
            id,
            follow,
            tail,
            since,
            timestamps,
        } => logs(&c, &id, follow, tail, since, timestamps).await?,
        WsCmd::Stats { id, watch: false } => {
            let v = c.get(&format!("/api/workspaces/{id}/stats")).await?;
            c.show(&v, |v| println!("{}", stats_line(v)));
        }
        WsCmd::Stats { id, watch: true } => {
            let path = format!("/api/workspaces/{id}/stats/stream?interval=2");
            c.follow_events(&path, |event, data| match event {
                "end" => {
                    eprintln!("{data}");
                    false
                }
                "error" => {
                    eprintln!("error: {data}");
                    true
                }
                _ => {
                    match serde_json::from_str::<Value>(data) {
                        Ok(v) => c.show(&v, |v| println!("{}", stats_line(v))),
                        Err(_) => eprintln!("unreadable event: {data}"),
                    }
                    true
                }
            })
            .await?;
        }
        WsCmd::Resources {
            id,
            cpus,
            memory,
            memory_swap,
            memory_reservation,
        } => {
            let change = [
                ("cpus", cpus.map(Value::from)),
                ("memory", memory.map(Value::from)),
                ("memorySwap", memory_swap.map(Value::from)),
                ("memoryReservation", memory_reservation.map(Value::from)),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?)))
            .collect::<serde_json::Map<_, _>>();
            let v = if change.is_empty() {
                c.get(&format!("/api/workspaces/{id}")).await?
            } else {
                c.call(
                    reqwest::Method::PATCH,
                    &format!("/api/workspaces/{id}/resources"),
                    Some(Value::Object(change)),
                )
                .await?
            };
            let limits = v["config"]["resourceLimits"].clone();
            c.show(&limits, |l| {
                println!("cpus               {}", s(&l["cpus"]));
                println!("memory             {} MB", s(&l["memory"]));
                println!("memory+swap        {} MB", s(&l["memorySwap"]));
                println!("memory reservation {} MB", s(&l["memoryReservation"]));
            });
        }
        WsCmd::Update {
            id,
            name,
            description,
            default,
            archive,
            unarchive,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(n) = name {
                body.insert("name".into(), n.into());
            }
            if let Some(d) = description {
                body.insert("description".into(), d.into());
            }
            if default {
                body.insert("isDefault".into(), true.into());
            }
            if archive || unarchive {
                body.insert("archived".into(), archive.into());
            }
            if body.is_empty() {
                return Err(Failure::Usage(
                    "nothing to change: give --name, --description, --default, --archive or --unarchive".into(),
                ));
            }
            let v = c
                .call(
                    reqwest::Method::PUT,
                    &format!("/api/workspaces/{id}"),
                    Some(Value::Object(body)),
                )
                .await?;
            c.show(&v, |v| {
                eprintln!(
                    "updated {} ({}, {})",
                    s(&v["name"]),
                    s(&v["status"]),
                    s(&v["id"])
                )
            });
        }
        WsCmd::Events { id, limit } => {
            let v = c
                .get(&format!("/api/workspaces/{id}/events?limit={limit}"))
                .await?;
            c.show(&v, |v| {
                let rows = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| vec![s(&e["at"]), s(&e["kind"]), s(&e["message"])])
                    .collect();
                table(&["AT", "KIND", "MESSAGE"], rows);
            });
        }
    }
    Ok(())
}

fn stats_line(v: &Value) -> String {
    format!(
        "cpu {:>6}%  memory {} MB / {} MB  pids {}  net rx {} tx {}",
        v["cpu"]["percent"]
            .as_f64()
            .map(|x| format!("{x:.1}"))
            .unwrap_or("-".into()),
        s(&v["memory"]["usage"]),
        s(&v["memory"]["limit"]),
        s(&v["pids"]),
        s(&v["network"]["rxBytes"]),
        s(&v["network"]["txBytes"]),
    )
}

async fn wait_healthy(c: &Client, id: &str, timeout: Duration) -> Res<()> {
    let started = Instant::now();
    let spinner = if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .expect("template"),
        );
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    loop {
        let h = c.get(&format!("/api/workspaces/{id}/health")).await?;
        let status = s(&h["status"]);
        spinner.set_message(format!("waiting for workspace {id}: {status}"));
        match status.as_str() {
            // Running without a health check counts as ready.
            "healthy" | "none" => {
                spinner.finish_and_clear();
                return Ok(());
            }
            "stopped" | "no_container" => {
                spinner.finish_and_clear();
                return Err(Failure::Server(format!(
                    "workspace {id} stopped while starting"
                )));
            }
            _ => {}
        }
        if started.elapsed() > timeout {
            spinner.finish_and_clear();
            return Err(Failure::Server(format!(
                "workspace {id} is not healthy after {} s (last: {status})",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn logs(
    c: &Client,
    id: &str,
    follow: bool,
    tail: Option<u64>,
    since: Option<String>,
    timestamps: bool,
) -> Res<()> {
    let mut q = vec![format!("timestamps={timestamps}")];
    if let Some(t) = tail {
        q.push(format!("tail={t}"));
    }
    if !follow {
        if let Some(s) = since {
            q.push(format!("since={}", since_arg(&s)?));
        }
        let resp = c
            .send(c.request(
                reqwest::Method::GET,
                &format!("/api/workspaces/{id}/logs?{}", q.join("&")),
            ))
            .await?;
        let text = resp.text().await.map_err(|e| c.unreachable(e))?;
        print!("{text}");
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    c.follow_events(
        &format!("/api/workspaces/{id}/logs/stream?{}", q.join("&")),
        |event, data| match event {
            "end" => false,
            "error" => {
                eprintln!("error: {data}");
                true
            }
            _ => {
                let _ = writeln!(out, "{data}");
                let _ = out.flush();
                true
            }
        },
    )
    .await
}

pub async fn backup(opts: &ClientOpts, cmd: BackupCmd) -> Res<()> {
    let c = Client::new(opts);
    let summary = |b: &Value| {
        format!(
            "{} {} {} {} sha256 {}",
            s(&b["id"]),
            s(&b["state"]),
            s(&b["compression"]),
            mb(&b["sizeBytes"]),
            s(&b["sha256"])
        )
    };
    match cmd {
        BackupCmd::Create {
            project,
            compression,
            pause,
        } => {
            let mut body = json!({ "pauseWorkspace": pause });
            if let Some(comp) = compression {
                body["compression"] = json!(comp);
            }
            let v = c
                .post(&format!("/api/workspaces/projects/{project}/backup"), body)
                .await?;
            c.show(&v, |v| println!("{}", summary(v)));
        }
        BackupCmd::Ls { project } => {
            let v = c.get(&format!("/api/projects/{project}/backups")).await?;
            c.show(&v, |v| {
                let rows = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| {
                        // Where the archive is: here, in remote storage, or
                        // both (`backups.remote`).
                        let remote = &b["remote"]["state"];
                        let place = match (b["storedLocally"] == true, remote.as_str()) {
                            _ if b["state"] != "complete" => "-".to_string(),
                            (true, None) => "local".to_string(),
                            (true, Some(r)) => format!("local, remote {r}"),
                            (false, Some("stored")) => "remote only".to_string(),
                            (false, Some(r)) => format!("missing (remote {r})"),
                            (false, None) => "missing".to_string(),
                        };
                        vec![
                            s(&b["id"]),
                            s(&b["createdAt"]),
                            s(&b["state"]),
                            s(&b["compression"]),
                            mb(&b["sizeBytes"]),
                            place,
                        ]
                    })
                    .collect();
                table(
                    &["ID", "CREATED", "STATE", "COMPRESSION", "SIZE", "STORED"],
                    rows,
                );
            });
        }
        BackupCmd::Download { id, output } => download(&c, &id, output).await?,
        BackupCmd::Upload { project, file } => {
            let v = upload(&c, &project, &file).await?;
            c.show(&v, |v| println!("{}", summary(v)));
        }
        BackupCmd::Restore {
            project,
            backup,
            stop,
        } => {
            let v = c
                .post(
                    &format!("/api/workspaces/projects/{project}/restore"),
                    json!({ "backupId": backup, "stopWorkspace": stop }),
                )
                .await?;
            c.show(&v, |v| {
                eprintln!(
                    "restored {backup} into volume {} (previous volume {} kept for the retention period)",
                    s(&v["volumeName"]),
                    s(&v["previousVolume"])
                )
            });
        }
        BackupCmd::Verify { id } => {
            let v = c
                .post(&format!("/api/backups/{id}/verify"), json!({}))
                .await?;
            c.show(&v, |v| {
                println!("ok: {} entries, checksum matches", s(&v["entries"]))
            });
        }
        BackupCmd::Rm { id } => {
            let v = c.delete(&format!("/api/backups/{id}")).await?;
            c.show(&v, |_| eprintln!("deleted backup {id}"));
        }
        BackupCmd::Policy {
            project,
            schedule,
            keep_last,
            keep_daily,
            keep_weekly,
            reset,
        } => {
            let path = format!("/api/projects/{project}/backup-policy");
            let changes = [
                ("schedule", schedule.map(Value::from)),
                ("keepLast", keep_last.map(Value::from)),
                ("keepDaily", keep_daily.map(Value::from)),
                ("keepWeekly", keep_weekly.map(Value::from)),
            ];
            let v = if reset {
                c.call(reqwest::Method::PUT, &path, Some(json!({}))).await?
            } else if changes.iter().all(|(_, v)| v.is_none()) {
                c.get(&path).await?
            } else {
                // PUT replaces the project's own settings: start from them.
                let current = c.get(&path).await?;
                let mut own = current["own"].as_object().cloned().unwrap_or_default();
                own.retain(|_, v| !v.is_null());
                for (k, v) in changes {
                    if let Some(v) = v {
                        own.insert(k.into(), v);
                    }
                }
                c.call(reqwest::Method::PUT, &path, Some(Value::Object(own)))
                    .await?
            };
            c.show(&v, |v| {
                let mark = |k: &str| {
                    if v["own"][k].is_null() {
                        "(default)"
                    } else {
                        "(this project)"
                    }
                };
                println!("schedule     {} {}", s(&v["schedule"]), mark("schedule"));
                println!("keep last    {} {}", s(&v["keepLast"]), mark("keepLast"));
                println!("keep daily   {} {}", s(&v["keepDaily"]), mark("keepDaily"));
                println!(
                    "keep weekly  {} {}",
                    s(&v["keepWeekly"]),
                    mark("keepWeekly")
                );
            });
        }
    }
    Ok(())
}

async fn download(c: &Client, id: &str, output: Option<PathBuf>) -> Res<()> {
    let mut resp = c
        .send(c.request(reqwest::Method::GET, &format!("/api/backups/{id}/download")))
        .await?;
    let name = resp
        .headers()
        .get(reqwest::header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("filename=\"").nth(1))
        .and_then(|v| v.split('"').next())
        .map(str::to_string)
        .unwrap_or_else(|| format!("{id}.tar"));
    let want = resp
        .headers()
        .get("x-checksum-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let path = output.unwrap_or_else(|| PathBuf::from(&name));
    let part = path.with_extension("part");
    let mut file = std::fs::File::create(&part)
        .map_err(|e| Failure::Usage(format!("creating {}: {e}", part.display())))?;
    let pb = bar(resp.content_length(), "download");
    let mut hash = sha2::Sha256::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| c.unreachable(e))? {
        hash.update(&chunk);
        file.write_all(&chunk)
            .map_err(|e| Failure::Usage(format!("writing {}: {e}", part.display())))?;
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    file.sync_all()
        .map_err(|e| Failure::Usage(format!("writing {}: {e}", part.display())))?;
    let got = hex::encode(hash.finalize());
    if let Some(want) = want {
        if want != got {
            let _ = std::fs::remove_file(&part);
            return Err(Failure::Server(format!(
                "the download's checksum {got} is not the server's {want}; nothing was kept"
            )));
        }
    }
    std::fs::rename(&part, &path)
        .map_err(|e| Failure::Usage(format!("renaming to {}: {e}", path.display())))?;
    let info = json!({ "file": path, "sha256": got });
    c.show(&info, |_| println!("{}  {}", got, path.display()));
    Ok(())
}

async fn upload(c: &Client, project: &str, file: &Path) -> Res<Value> {
    let f = tokio::fs::File::open(file)
        .await
        .map_err(|e| Failure::Usage(format!("opening {}: {e}", file.display())))?;
    let len = f
        .metadata()
        .await
        .map_err(|e| Failure::Usage(format!("reading {}: {e}", file.display())))?
        .len();
    // The checksum first, so the server can check what it received.
    let sum = {
        let file = file.to_path_buf();
        tokio::task::spawn_blocking(move || crate::backup::sha256_file(&file))
            .await
            .map_err(|e| Failure::Usage(e.to_string()))?
            .map_err(|e| Failure::Usage(e.to_string()))?
    };
    let pb = bar(Some(len), "upload");
    let pb2 = pb.clone();
    let stream = futures_util::stream::unfold(f, move |mut f| {
        let pb = pb2.clone();
        async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    pb.inc(n as u64);
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        }
    });
    let resp = c
        .send(
            c.request(
                reqwest::Method::POST,
                &format!("/api/projects/{project}/backups/upload"),
            )
            .header("x-checksum-sha256", sum)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(stream)),
        )
        .await;
    pb.finish_and_clear();
    let v: Value = resp?
        .json()
        .await
        .map_err(|e| Failure::Server(format!("the server's answer is not JSON: {e}")))?;
    Ok(v.get("data").cloned().unwrap_or(v))
}

pub async fn volume(opts: &ClientOpts, cmd: VolumeCmd) -> Res<()> {
    let c = Client::new(opts);
    match cmd {
        VolumeCmd::Clone {
            project,
            to,
            name,
            overwrite,
        } => {
            let body = match (to, name) {
                (Some(t), _) => json!({ "targetProjectId": t, "overwrite": overwrite }),
                (None, Some(n)) => json!({ "name": n }),
                (None, None) => unreachable!("clap requires --to or --name"),
            };
            let v = c
                .post(&format!("/api/workspaces/projects/{project}/clone"), body)
                .await?;
            c.show(&v, |v| {
                println!("{}", s(&v["volumeName"]));
            });
        }
        VolumeCmd::Size { project } => {
            let v = c
                .get(&format!("/api/workspaces/projects/{project}/volume-size"))
                .await?;
            c.show(&v, |v| {
                println!("{} bytes ({} MB)", s(&v["sizeBytes"]), s(&v["sizeMB"]))
            });
        }
    }
    Ok(())
}

pub async fn cleanup(opts: &ClientOpts, dry_run: bool) -> Res<()> {
    let c = Client::new(opts);
    let v = c
        .post(
            &format!("/api/workspaces/cleanup?dryRun={dry_run}"),
            json!({}),
        )
        .await?;
    c.show(&v, |v| {
        println!(
            "{}inactive {}, orphaned containers {}, orphaned volumes {}, error workspaces {}",
            if dry_run {
                "would clean: "
            } else {
                "cleaned: "
            },
            s(&v["inactiveContainers"]),
            s(&v["orphanedContainers"]),
            s(&v["orphanedVolumes"]),
            s(&v["errorWorkspaces"])
        );
        let rows: Vec<Vec<String>> = v["details"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                vec![
                    s(&d["job"]),
                    s(&d["action"]),
                    s(&d["resource"]),
                    s(&d["outcome"]),
                    s(&d["reason"]),
                ]
            })
            .collect();
        if !rows.is_empty() {
            table(&["JOB", "ACTION", "RESOURCE", "OUTCOME", "REASON"], rows);
        }
        for e in v["errors"].as_array().into_iter().flatten() {
            eprintln!("job {} failed: {}", s(&e["job"]), s(&e["error"]));
        }
    });
    Ok(())
}

pub async fn account(opts: &ClientOpts, cmd: AccountCmd) -> Res<()> {
    let c = Client::new(opts);
    match cmd {
        AccountCmd::Show => {
            let v = c.get("/api/auth/me").await?;
            c.show(&v, |v| {
                println!("{} ({}), id {}", s(&v["email"]), s(&v["role"]), s(&v["id"]))
            });
        }
        AccountCmd::Passwd => {
            let tty = std::io::stdin().is_terminal();
            let line = |prompt: &str| -> Res<String> {
                if tty {
                    eprint!("{prompt}: ");
                }
                let mut l = String::new();
                std::io::stdin()
                    .read_line(&mut l)
                    .map_err(|e| Failure::Usage(format!("reading standard input: {e}")))?;
                Ok(l.trim_end_matches(['\r', '\n']).to_string())
            };
            let current = line("current password")?;
            let new = line("new password")?;
            if current.is_empty() || new.is_empty() {
                return Err(Failure::Usage(
                    "give the current and the new password on standard input, one per line".into(),
                ));
            }
            let v = c
                .post(
                    "/api/auth/password",
                    json!({ "currentPassword": current, "newPassword": new }),
                )
                .await?;
            c.show(&v, |v| {
                eprintln!(
                    "password changed; {} other login session(s) ended",
                    s(&v["endedSessions"])
                )
            });
        }
        AccountCmd::Tokens => {
            let v = c.get("/api/auth/tokens").await?;
            c.show(&v, |v| {
                let rows = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        let name = if t["current"] == true {
                            format!("{} (this one)", s(&t["name"]))
                        } else {
                            s(&t["name"])
                        };
                        vec![
                            s(&t["id"]),
                            s(&t["kind"]),
                            name,
                            s(&t["createdAt"]),
                            s(&t["lastUsedAt"]),
                            s(&t["expiresAt"]),
                        ]
                    })
                    .collect();
                table(
                    &["ID", "KIND", "NAME", "CREATED", "LAST USED", "EXPIRES"],
                    rows,
                );
            });
        }
        AccountCmd::TokenAdd { name } => {
            let v = c.post("/api/auth/tokens", json!({ "name": name })).await?;
            c.show(&v, |v| println!("{}", s(&v["token"])));
        }
        AccountCmd::TokenRm { id } => {
            let id = uuid::Uuid::parse_str(id.trim()).map_err(|_| {
                Failure::Usage(format!(
                    "{id:?} is not a token id (see `berth account tokens`)"
                ))
            })?;
            let v = c.delete(&format!("/api/auth/tokens/{id}")).await?;
            c.show(&v, |_| eprintln!("revoked token {id}"));
        }
    }
    Ok(())
}

/// `berth type ls|pull`.
pub async fn types(opts: &ClientOpts, cmd: TypeCmd) -> Res<()> {
    let c = Client::new(opts);
    match cmd {
        TypeCmd::Ls => {
            let v = c.get("/api/workspaces/types").await?;
            c.show(&v, |v| {
                let rows = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        vec![
                            s(&t["type"]),
                            if t["available"] == true { "yes" } else { "no" }.into(),
                            s(&t["image"]),
                            s(&t["unavailableReason"]),
                        ]
                    })
                    .collect();
                table(&["TYPE", "AVAILABLE", "IMAGE", "WHY NOT"], rows);
            });
        }
        TypeCmd::Pull { name } => {
            let path = format!("/api/workspaces/types/{name}/pull");
            let mut v = c.post(&path, json!({})).await?;
            let pb = bar(None, &format!("pulling {}", s(&v["image"])));
            while v["state"] == "pulling" {
                let (done, total) = (
                    v["bytesDone"].as_u64().unwrap_or(0),
                    v["bytesTotal"].as_u64().unwrap_or(0),
                );
                if total > 0 {
                    pb.set_length(total);
                }
                pb.set_position(done);
                tokio::time::sleep(Duration::from_millis(500)).await;
                v = c.get(&path).await?;
            }
            pb.finish_and_clear();
            if v["state"] == "failed" {
                return Err(Failure::Server(s(&v["error"])));
            }
            c.show(&v, |v| {
                let layers = v["layers"].as_array().map_or(0, Vec::len);
                eprintln!(
                    "pulled {}: {layers} layer(s), {}",
                    s(&v["image"]),
                    mb(&v["bytesTotal"])
                );
            });
        }
    }
    Ok(())
}

pub async fn jobs(opts: &ClientOpts) -> Res<()> {
    let c = Client::new(opts);
    let v = c.get("/api/jobs").await?;
    c.show(&v, |v| {
        let rows = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|j| {
                let last = &j["recentRuns"][0];
                vec![
                    s(&j["name"]),
                    s(&j["schedule"]),
                    s(&j["nextRun"]),
                    if last.is_null() {
                        "-".into()
                    } else {
                        format!("{} {}", s(&last["outcome"]), s(&last["startedAt"]))
                    },
                ]
            })
            .collect();
        table(&["JOB", "SCHEDULE", "NEXT RUN", "LAST RUN"], rows);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_seconds_or_durations() {
        assert!(matches!(since_arg("1700000000"), Ok(1_700_000_000)));
        let now = chrono::Utc::now().timestamp();
        let ten_min = since_arg("10m").ok().unwrap();
        assert!((now - 600 - ten_min).abs() <= 2);
        assert!(since_arg("2h").is_ok() && since_arg("1d").is_ok() && since_arg("30s").is_ok());
        assert!(since_arg("soon").is_err());
        assert!(since_arg("5y").is_err());
        assert!(since_arg("").is_err());
    }
}

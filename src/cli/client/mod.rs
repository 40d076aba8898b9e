//! The client half of `berth`: commands that talk to a running server over
//! its HTTP API (`--server`/`BERTH_SERVER`, token from `--token`/
//! `BERTH_TOKEN` or what `berth login` stored). Human tables by default,
//! `--json` prints the server's `data` as JSON for scripts.
//!
//! Exit codes: 0 done; 1 the server said no (its message is printed);
//! 2 usage (clap's, and local mistakes such as a missing file); 3 the
//! server could not be reached.
//!
//! Here: options, the HTTP client, credentials, table and byte
//! formatting, login; the commands are in `workspaces`, `backups` and
//! `admin`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::http::wire;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use sha2::Digest;

mod admin;
mod backups;
mod nodes;
mod workspaces;

pub use admin::{account, audit, cleanup, jobs, replicas, types, AccountCmd, AuditArgs, TypeCmd};
pub use backups::{backup, volume, BackupCmd, VolumeCmd};
pub use nodes::{node, NodeCmd};
pub use workspaces::{project, ws, ProjectCmd, WsCmd};

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
        let msg = serde_json::from_str::<crate::http::error::ErrorEnvelope>(&text)
            .map(|e| e.error.message)
            .unwrap_or_else(|_| text.trim().to_string());
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

    /// A whole list, fetched page by page (`limit` and the `nextCursor`
    /// of each page), so no one answer grows with the list.
    async fn get_all(&self, path: &str) -> Res<Value> {
        const PAGE: u32 = 200;
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit={PAGE}&cursor={c}"),
                None => format!("{path}{sep}limit={PAGE}"),
            };
            let resp = self.send(self.request(reqwest::Method::GET, &url)).await?;
            let v: crate::http::wire::Envelope<Vec<Value>> = resp
                .json()
                .await
                .map_err(|e| Failure::Server(format!("the server's answer is not a list: {e}")))?;
            items.extend(v.data);
            match v.page.and_then(|p| p.next_cursor) {
                Some(c) => cursor = Some(c),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    /// POSTs `body`: a request type of `http::wire` (or `json!({})`).
    async fn post(&self, path: &str, body: impl serde::Serialize) -> Res<Value> {
        let body = serde_json::to_value(body).expect("request bodies serialise");
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// PATCHes `body`: a request type of `http::wire`.
    async fn patch(&self, path: &str, body: impl serde::Serialize) -> Res<Value> {
        let body = serde_json::to_value(body).expect("request bodies serialise");
        self.call(reqwest::Method::PATCH, path, Some(body)).await
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

    /// Prints `data` as JSON (with --json, as the server sent it) or with
    /// `human`, given the answer read as the wire type the server's handler
    /// wrote (`http::wire`): a field renamed there breaks this build, not a
    /// command at run time.
    fn show<T: serde::de::DeserializeOwned>(
        &self,
        data: &Value,
        human: impl FnOnce(&T),
    ) -> Res<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(data).expect("JSON"));
        } else {
            human(&read(data)?);
        }
        Ok(())
    }
}

/// The server's answer as a wire type.
fn read<T: serde::de::DeserializeOwned>(data: &Value) -> Res<T> {
    T::deserialize(data).map_err(|e| {
        Failure::Server(format!(
            "the server's answer does not read as this berth expects ({e}): are the client and the server the same version?"
        ))
    })
}

/// An optional field as a cell: "-" when absent.
fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), T::to_string)
}

/// A number as JSON spells it (`12.0`, not `12`), as the tables show it.
fn num(x: f64) -> String {
    Value::from(x).to_string()
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

fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
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
                    wire::LoginRequest {
                        email,
                        password: password.trim_end_matches(['\r', '\n']).to_string(),
                    },
                )
                .await?;
            read::<wire::LoginResponse>(&v)?.access_token
        }
    };
    // Check it before keeping it.
    let check = Client {
        token: Some(token.clone()),
        ..Client::new(opts)
    };
    let me: wire::UserDto = read(&check.get("/api/auth/me").await?)?;
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
        me.email,
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

//! Configuration: built-in defaults, then a TOML file, then `BERTH_*`
//! environment variables (`docs/original-api.md` §4). Every key is optional; a misspelt key is
//! an error that names it, never silently ignored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::recovery::RecoveryPolicy;
use crate::domain::types::builtin_types;
use crate::domain::WorkspaceType;
use crate::secret::Secret;

/// `BERTH_*` variables that are not configuration keys (the client and
/// logging use them); everything else under `BERTH_` must be a key.
const NON_CONFIG_VARS: &[&str] = &[
    "BERTH_CONFIG",
    "BERTH_SERVER",
    "BERTH_TOKEN",
    "BERTH_LOG",
    "BERTH_CLIENT_CONFIG",
];

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config`/`BERTH_CONFIG` could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    /// A key is unknown or has the wrong type (after layering).
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// The URL people open Berth at (e.g. `https://berth.example.com`);
    /// empty: `http://` + `listen` (a wildcard address as 127.0.0.1). The
    /// login handoff of app origins sends browsers there, and app URLs take
    /// their scheme and port from it.
    pub public_url: String,
    /// Directory for the SQLite database and local backups.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to `berth.db` in `data_dir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<Secret>,
    /// A name for this Berth installation, put on every container and volume
    /// it makes (`berth.instance`), so that two installations sharing an
    /// engine never take each other's resources for their own.
    pub instance: String,
    /// Largest request body accepted on JSON endpoints, in bytes.
    pub max_body_bytes: usize,
    /// How long `stop` waits for a workspace to exit before killing it.
    pub stop_timeout_s: u32,
    pub auth: AuthConfig,
    pub types: BTreeMap<String, WorkspaceType>,
    pub cleanup: CleanupConfig,
    pub recovery: RecoveryPolicy,
    pub stats: StatsConfig,
    pub logs: LogsConfig,
    pub backups: BackupsConfig,
    pub metrics: MetricsConfig,
    pub proxy: ProxyConfig,
    pub images: ImagesConfig,
    pub nodes: NodesConfig,
    /// Several `berth serve` processes on one PostgreSQL database: their
    /// heartbeat, and when one counts as gone.
    pub replicas: crate::domain::replicas::ReplicaPolicy,
    pub audit: AuditConfig,
    pub quotas: QuotasConfig,
}

/// The pool of Docker engines (`[nodes]`). The nodes themselves are added
/// by an admin (`berth node add`, `POST /api/nodes`) and kept in the store,
/// so every replica on one database sees the same pool; the engine Berth
/// starts with is the node `local`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodesConfig {
    /// How often each node's engine is asked whether it answers (ping and
    /// info), in seconds.
    pub heartbeat_s: u64,
    /// How long one heartbeat waits for an answer before the node counts as
    /// unreachable, in seconds (at most `heartbeat_s`).
    pub heartbeat_timeout_s: u64,
    /// How a workspace's node is chosen among those that can take it:
    /// `spread` (the most memory left, then CPU: load spreads out) or
    /// `pack` (the least: nodes fill one by one).
    pub placement: String,
    /// How often each node's engine view (what status reads answer from)
    /// is rebuilt from a full listing, in seconds, besides at start and
    /// after every reconnect: an event stream can stall without failing.
    pub resync_s: u64,
    /// How many CPUs of workspaces' CPU limits a node's each core may
    /// hold, for placement and for every start (memory is never
    /// overcommitted): 1.0 reserves a core per CPU a limit allows; more
    /// lets quiet workspaces share (a CPU limit is a cap, not a share).
    pub cpu_allocation_ratio: f64,
}

impl NodesConfig {
    /// The placement strategy (`check` made sure it is one).
    pub fn strategy(&self) -> crate::domain::placement::Strategy {
        match self.placement.as_str() {
            "pack" => crate::domain::placement::Strategy::Pack,
            _ => crate::domain::placement::Strategy::Spread,
        }
    }
}

impl Default for NodesConfig {
    fn default() -> Self {
        NodesConfig {
            heartbeat_s: 10,
            heartbeat_timeout_s: 5,
            placement: "spread".into(),
            resync_s: 300,
            cpu_allocation_ratio: 1.0,
        }
    }
}

/// Type images from a registry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesConfig {
    /// Pull a type's image when a workspace of it starts and the image is
    /// not on the engine's host (the start waits for the pull).
    pub pull_on_start: bool,
    /// Credentials per registry (`host[:port]`, `docker.io` for Docker
    /// Hub); registries not listed are pulled from anonymously.
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryAuth>,
}

/// `[images.registries."host:port"]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuth {
    pub username: String,
    /// Better given as `BERTH_IMAGES_REGISTRIES_<HOST>_PASSWORD` than in the file.
    pub password: Secret,
}

/// The workspace proxy (`/api/workspaces/:id/proxy/…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// How long a request to a stopped workspace waits for it to start and
    /// become healthy before it is answered 504.
    pub wake_timeout_s: u64,
    /// How long the proxy waits for the workspace's response headers.
    pub response_timeout_s: u64,
    /// Proxy traffic records activity at most this often per workspace (an
    /// open WebSocket counts as traffic).
    pub activity_interval_s: u64,
    /// Serve each workspace's app on an origin of its own,
    /// `<name>--<short id>.<app_domain>` (and `<port>--<name>--<short id>.…`
    /// for its other ports), behind a wildcard DNS record. `localhost` works
    /// on one machine with no DNS set-up (browsers resolve `*.localhost` to
    /// loopback). Empty: path mode only.
    pub app_domain: String,
    /// Let admins open other users' apps in path mode, where the app's page
    /// runs on Berth's origin with the admin's credentials. Dangerous: any
    /// member could then act as an admin by getting one to look.
    pub dangerous_allow_path_app_admin_access: bool,
    /// Let owners share a port with everyone, without a login.
    pub allow_public_shares: bool,
}

/// The audit log (`[audit]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Records older than this many days are removed by the
    /// `audit-retention` job.
    pub retention_days: u64,
    /// When that job runs (cron; `off` keeps everything).
    pub schedule: String,
    /// Also write each record as one JSON line: empty (no), `-` (standard
    /// output) or a file appended to.
    pub log: String,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention_days: 365,
            schedule: "30 3 * * *".into(),
            log: String::new(),
        }
    }
}

/// Quotas (`[quotas]`): defaults per role (`member`, `admin`; a limit left
/// out is no limit), which admins override per user, and optional caps on
/// what all running workspaces together reserve (`site`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotasConfig {
    #[serde(default)]
    pub member: RoleQuota,
    #[serde(default)]
    pub admin: RoleQuota,
    #[serde(default)]
    pub site: SiteQuota,
}

/// One role's default limits; each left out is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleQuota {
    /// Workspaces in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspaces: Option<u64>,
    /// Workspaces running (or starting) at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<u64>,
    /// CPUs the running workspaces' limits add up to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory the running workspaces reserve (reservation, else limit), MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// The user's project volumes and backups, MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_mb: Option<u64>,
}

/// Caps on every running workspace together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteQuota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// The token `GET /metrics` needs (`Authorization: Bearer <token>`);
    /// unset: one is generated at first start and kept in
    /// `<data_dir>/metrics-token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Serve `/metrics` to anyone (it names every workspace and project
    /// with their figures): only where the port is private.
    #[serde(default)]
    pub public: bool,
}

/// Defaults for every project's backups; a project may set its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupsConfig {
    /// When each project is backed up (5-field cron, local time), or "off".
    pub schedule: String,
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    /// How often the scheduler looks for projects that are due.
    pub check_schedule: String,
    /// Largest archive accepted by upload, in MB.
    pub max_upload_mb: u64,
    /// The most an archive's files may hold, in MB: an upload or a restore
    /// past it is refused (413), whatever the archive's compressed size.
    pub max_unpacked_mb: u64,
    /// What an upload or a restore must leave free on the volumes' file
    /// system, in MB (507 otherwise).
    pub free_space_reserve_mb: u64,
    /// How volume data is read and written: `host` (the volume's directory,
    /// as root on the engine's host), `engine` (the engine's archive API,
    /// works with a remote engine) or `auto` (host when readable).
    pub volume_access: VolumeAccess,
    /// A copy of every complete backup in S3-compatible object storage.
    pub remote: RemoteConfig,
}

/// Where backups are copied off this host: any S3-compatible object store
/// (AWS S3, MinIO, Ceph, Cloudflare R2, Backblaze B2, …). Off while `url`
/// is empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// `s3://bucket` or `s3://bucket/prefix`; empty: no remote copies.
    pub url: String,
    /// The store's endpoint, e.g. `https://minio.internal:9000`; empty for
    /// AWS itself.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    /// Better given as `BERTH_BACKUPS_REMOTE_SECRET_ACCESS_KEY` than in
    /// the file.
    pub secret_access_key: Secret,
    /// Allow an `http://` endpoint (a store on a trusted network).
    pub allow_http: bool,
    /// Keep only this many newest archives per project on this host once
    /// their remote copy is stored (older ones are fetched back when
    /// needed); unset: keep every archive here too.
    #[serde(default)]
    pub keep_local: Option<u32>,
}

impl RemoteConfig {
    /// A store at `url` and `endpoint` with made-up keys (unit tests).
    #[cfg(test)]
    pub(crate) fn for_tests(url: &str, endpoint: &str) -> RemoteConfig {
        RemoteConfig {
            url: url.into(),
            endpoint: endpoint.into(),
            region: "us-east-1".into(),
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
            allow_http: false,
            keep_local: None,
        }
    }

    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// Bucket and prefix from `s3://bucket[/prefix]`.
    pub fn bucket_and_prefix(&self) -> Result<(String, String), String> {
        let url = &self.url;
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            format!("url {url:?} must look like s3://bucket or s3://bucket/prefix")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !valid_bucket {
            return Err(format!(
                "{bucket:?} is not a bucket name (3 to 63 lowercase letters, digits, '-' or '.')"
            ));
        }
        Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
    }

    /// The rules serde cannot express, checked without connecting.
    pub fn check(&self) -> Result<(), String> {
        let c = self;
        if !c.enabled() {
            return Ok(());
        }
        c.bucket_and_prefix()?;
        if c.endpoint.starts_with("http://") && !c.allow_http {
            return Err(format!(
                "endpoint {} is plain http; set allow_http = true if that is meant",
                c.endpoint
            ));
        }
        if !c.endpoint.is_empty()
            && !c.endpoint.starts_with("http://")
            && !c.endpoint.starts_with("https://")
        {
            return Err(format!(
                "endpoint {:?} must start with https:// (or http://)",
                c.endpoint
            ));
        }
        if c.access_key_id.is_empty() != c.secret_access_key.is_empty() {
            return Err(
                "give both access_key_id and secret_access_key, or neither (then the \
                 AWS_* environment variables are used)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// See [`BackupsConfig::volume_access`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeAccess {
    Auto,
    Host,
    Engine,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Seconds between background samples of running workspaces.
    pub interval_s: u64,
    /// Minutes of CPU/memory history kept per running workspace.
    pub history_min: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// Largest plain-text log response, in bytes; longer output is cut
    /// with a note saying so.
    pub max_bytes: u64,
    /// Largest `tail` accepted.
    pub max_tail: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Lifetime of a login session (token and cookie), in hours.
    pub session_ttl_h: u64,
    /// Mark the session cookie `Secure` (set when served over HTTPS).
    pub cookie_secure: bool,
    /// Failed logins an account may have before it is locked…
    pub login_free_attempts: u32,
    /// …and failed logins one client address may have (it may try many
    /// accounts; behind a reverse proxy every client shares its address).
    pub login_ip_free_attempts: u32,
    /// The first lock, in seconds; every further failure doubles it…
    pub login_lock_base_s: u64,
    /// …up to this.
    pub login_lock_max_s: u64,
    /// Failures older than this are forgotten, in seconds.
    pub login_window_s: u64,
}

impl AuthConfig {
    pub fn throttle(&self, per_address: bool) -> crate::domain::throttle::ThrottlePolicy {
        crate::domain::throttle::ThrottlePolicy {
            free_attempts: if per_address {
                self.login_ip_free_attempts
            } else {
                self.login_free_attempts
            },
            base_s: self.login_lock_base_s,
            max_s: self.login_lock_max_s,
            window_s: self.login_window_s,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupConfig {
    /// A running workspace with no activity for this long is stopped.
    pub inactive_after_h: u64,
    /// Days a deleted project's volume is kept before cleanup removes it.
    pub volume_retention_days: u64,
    /// A managed container without a workspace record is left alone this
    /// long (it may be being created).
    pub container_grace_min: u64,
    pub schedules: CleanupSchedules,
}

/// 5-field cron expressions (local time), or "off".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupSchedules {
    pub inactive: String,
    pub orphaned_containers: String,
    pub orphaned_volumes: String,
    pub error_recovery: String,
    /// Measuring every project volume's size (what storage quotas count).
    #[serde(default = "default_volume_sizes")]
    pub volume_sizes: String,
}

fn default_volume_sizes() -> String {
    "15 * * * *".into()
}

/// A parsed schedule: `None` when "off".
pub fn parse_schedule(expr: &str) -> Result<Option<croner::Cron>, String> {
    let e = expr.trim();
    if e.eq_ignore_ascii_case("off") || e.is_empty() {
        return Ok(None);
    }
    let fields = e.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "{expr:?} has {fields} fields; use 5 (minute hour day-of-month month day-of-week) or \"off\""
        ));
    }
    e.parse::<croner::Cron>()
        .map(Some)
        .map_err(|err| format!("{expr:?} is not a valid cron expression: {err}"))
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:7780".into(),
            public_url: String::new(),
            data_dir: PathBuf::from("./berth-data"),
            database_url: None,
            instance: "default".into(),
            max_body_bytes: 1024 * 1024,
            stop_timeout_s: 10,
            auth: AuthConfig {
                session_ttl_h: 24 * 7,
                cookie_secure: false,
                login_free_attempts: 5,
                login_ip_free_attempts: 50,
                login_lock_base_s: 30,
                login_lock_max_s: 900,
                login_window_s: 900,
            },
            types: builtin_types(),
            cleanup: CleanupConfig {
                inactive_after_h: 24,
                volume_retention_days: 7,
                container_grace_min: 10,
                // The original's defaults (`docs/original-api.md` §3).
                schedules: CleanupSchedules {
                    inactive: "0 * * * *".into(),
                    orphaned_containers: "0 */6 * * *".into(),
                    orphaned_volumes: "0 2 * * *".into(),
                    error_recovery: "*/30 * * * *".into(),
                    volume_sizes: default_volume_sizes(),
                },
            },
            recovery: RecoveryPolicy::default(),
            stats: StatsConfig {
                interval_s: 5,
                history_min: 15,
            },
            logs: LogsConfig {
                max_bytes: 64 * 1024 * 1024,
                max_tail: 100_000,
            },
            backups: BackupsConfig {
                schedule: "off".into(),
                keep_last: 7,
                keep_daily: 7,
                keep_weekly: 4,
                check_schedule: "* * * * *".into(),
                max_upload_mb: 20 * 1024,
                max_unpacked_mb: 100 * 1024,
                free_space_reserve_mb: 1024,
                volume_access: VolumeAccess::Auto,
                remote: RemoteConfig {
                    url: String::new(),
                    endpoint: String::new(),
                    region: "us-east-1".into(),
                    access_key_id: String::new(),
                    secret_access_key: Secret::default(),
                    allow_http: false,
                    keep_local: None,
                },
            },
            metrics: MetricsConfig::default(),
            images: ImagesConfig::default(),
            nodes: NodesConfig::default(),
            replicas: Default::default(),
            audit: AuditConfig::default(),
            quotas: QuotasConfig::default(),
            proxy: ProxyConfig {
                wake_timeout_s: 60,
                response_timeout_s: 300,
                activity_interval_s: 30,
                app_domain: String::new(),
                dangerous_allow_path_app_admin_access: false,
                allow_public_shares: false,
            },
        }
    }
}

impl Config {
    /// Loads defaults → `file` (if given) → the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// As [`Config::load`], with the environment given (for tests).
    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut value =
            toml::Value::try_from(Config::default()).expect("default config serialises");
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let file_value: toml::Value =
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
            merge_file(&mut value, file_value);
        }
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("BERTH_") else {
                continue;
            };
            if NON_CONFIG_VARS.contains(&k.as_str()) || rest.is_empty() {
                continue;
            }
            apply_env(&mut value, rest, v);
        }
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let message = readable(e.into_inner().message());
            ConfigError::Invalid(if path == "." || path.is_empty() {
                message
            } else {
                format!("{path}: {message}")
            })
        })?;
        config.check()?;
        Ok(config)
    }

    /// Rules serde cannot express.
    fn check(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        self.public_origin()?;
        check_app_domain(&self.proxy.app_domain).map_err(ConfigError::Invalid)?;
        self.backups
            .remote
            .check()
            .map_err(|e| ConfigError::Invalid(format!("backups.remote: {e}")))?;
        if self.instance.is_empty()
            || !self
                .instance
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(ConfigError::Invalid(
                "instance must be non-empty and use only letters, digits, '-', '_' and '.'".into(),
            ));
        }
        for (name, t) in &self.types {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ConfigError::Invalid(format!(
                    "type name {name:?} must use only letters, digits, '-' and '_'"
                )));
            }
            // The host's CPU count is checked per workspace, where the
            // message can tell the user which override to set.
            t.validate(u32::MAX)
                .map_err(|e| ConfigError::Invalid(format!("types.{name}: {e}")))?;
        }
        self.recovery.validate().map_err(ConfigError::Invalid)?;
        self.replicas.check().map_err(ConfigError::Invalid)?;
        let sch = &self.cleanup.schedules;
        for (key, expr) in [
            ("backups.schedule", &self.backups.schedule),
            ("backups.check_schedule", &self.backups.check_schedule),
            ("audit.schedule", &self.audit.schedule),
            ("volume_sizes", &sch.volume_sizes),
            ("inactive", &sch.inactive),
            ("orphaned_containers", &sch.orphaned_containers),
            ("orphaned_volumes", &sch.orphaned_volumes),
            ("error_recovery", &sch.error_recovery),
        ] {
            parse_schedule(expr).map_err(|e| {
                let key = if key.starts_with("backups.") || key.starts_with("audit.") {
                    key.to_string()
                } else {
                    format!("cleanup.schedules.{key}")
                };
                ConfigError::Invalid(format!("{key}: {e}"))
            })?;
        }
        if self.stats.interval_s == 0 {
            return Err(ConfigError::Invalid(
                "stats.interval_s must be above 0".into(),
            ));
        }
        if self.nodes.heartbeat_s == 0
            || self.nodes.heartbeat_timeout_s == 0
            || self.nodes.heartbeat_timeout_s > self.nodes.heartbeat_s
        {
            return Err(ConfigError::Invalid(format!(
                "nodes.heartbeat_timeout_s ({}) must be between 1 and nodes.heartbeat_s ({}), which must be above 0",
                self.nodes.heartbeat_timeout_s, self.nodes.heartbeat_s
            )));
        }
        if self.nodes.resync_s == 0 {
            return Err(ConfigError::Invalid(
                "nodes.resync_s must be above 0 (seconds between full resyncs of each engine view)"
                    .into(),
            ));
        }
        let r = self.nodes.cpu_allocation_ratio;
        if !(r.is_finite() && r > 0.0 && r <= 100.0) {
            return Err(ConfigError::Invalid(format!(
                "nodes.cpu_allocation_ratio ({r}) must be above 0 and at most 100 (CPUs of limits per core)"
            )));
        }
        if !matches!(self.nodes.placement.as_str(), "spread" | "pack") {
            return Err(ConfigError::Invalid(format!(
                "nodes.placement {:?}: use \"spread\" or \"pack\"",
                self.nodes.placement
            )));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be at least 1024".into(),
            ));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "listen {:?} is not an address like 127.0.0.1:7780",
                self.listen
            ))
        })
    }

    /// Berth's own origin (`scheme://host[:port]`, no trailing slash), from
    /// `public_url` or `listen`.
    pub fn public_origin(&self) -> Result<url::Url, ConfigError> {
        let raw = if self.public_url.trim().is_empty() {
            let addr = self.listen_addr()?;
            let ip = match addr.ip() {
                ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
                ip => ip,
            };
            format!("http://{}", SocketAddr::new(ip, addr.port()))
        } else {
            self.public_url.trim().to_string()
        };
        let bad = |why: &str| {
            ConfigError::Invalid(format!(
                "public_url {raw:?} {why}; give the URL people open Berth at, like https://berth.example.com"
            ))
        };
        let url = url::Url::parse(&raw).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("must be an http:// or https:// URL with a host"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(bad(
                "must not have a path, query or fragment (Berth is served at the root)",
            ));
        }
        Ok(url)
    }

    /// The database URL, defaulting to SQLite in the data directory
    /// (created if missing).
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_string(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("berth.db").display()
            ),
        }
    }
}

/// `proxy.app_domain`: empty, or a DNS name (no wildcard, no port).
fn check_app_domain(d: &str) -> Result<(), String> {
    if d.is_empty() {
        return Ok(());
    }
    if let Some(bare) = d.strip_prefix("*.") {
        return Err(format!(
            "proxy.app_domain: give the domain without the wildcard ({bare:?}); the DNS record is *.{bare}"
        ));
    }
    let ok = d.len() <= 200
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
    if !ok {
        return Err(format!(
            "proxy.app_domain {d:?} is not a lowercase DNS name like apps.example.com or localhost (no port: apps use public_url's)"
        ));
    }
    Ok(())
}

/// serde's messages, in the words of a config file: "expected an array of
/// strings, found a string" rather than "invalid type: string …, expected a
/// sequence".
fn readable(message: &str) -> String {
    let m = message
        .replace("a sequence", "an array")
        .replace("a map", "a table");
    match m
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.rsplit_once(", expected "))
    {
        Some((found, expected)) => format!("expected {expected}, found {found}"),
        None => m,
    }
}

/// Lays the file over the defaults: tables merge key by key, except that a
/// `[types.X]` table replaces the built-in type X whole (`docs/original-api.md` §1), so a
/// replaced type never inherits half of the old one.
fn merge_file(base: &mut toml::Value, file: toml::Value) {
    fn merge(base: &mut toml::Value, over: toml::Value, path: &[&str]) {
        match (base, over) {
            (toml::Value::Table(b), toml::Value::Table(o)) => {
                for (k, v) in o {
                    let replace_whole = path == ["types"];
                    match b.get_mut(&k) {
                        Some(existing) if !replace_whole => {
                            let mut p = path.to_vec();
                            p.push(&k);
                            merge(existing, v, &p);
                        }
                        _ => {
                            b.insert(k, v);
                        }
                    }
                }
            }
            (b, o) => *b = o,
        }
    }
    merge(base, file, &[]);
}

/// Sets the key that `BERTH_<SECTION>_<KEY>` names. Keys contain
/// underscores themselves, so the name is matched against the keys that
/// exist, longest path first; what does not match is set as a new key at
/// the deepest table reached (and an unknown one is then reported by serde).
fn apply_env(root: &mut toml::Value, name: &str, raw: &str) {
    let parts: Vec<String> = name
        .to_ascii_lowercase()
        .split('_')
        .map(String::from)
        .collect();
    let mut table = root;
    let mut i = 0;
    'walk: while i < parts.len() {
        let toml::Value::Table(t) = table else { return };
        for j in (i + 1..=parts.len()).rev() {
            let key = parts[i..j].join("_");
            if !t.contains_key(&key) {
                continue;
            }
            if j == parts.len() {
                let existing = t.get(&key).expect("checked");
                let v = parse_env_value(raw, Some(existing));
                t.insert(key, v);
                return;
            }
            if t.get(&key).is_some_and(toml::Value::is_table) {
                table = t.get_mut(&key).expect("checked");
                i = j;
                continue 'walk;
            }
        }
        let key = parts[i..].join("_");
        let v = parse_env_value(raw, None);
        t.insert(key, v);
        return;
    }
}

/// An environment value as TOML (numbers, booleans, arrays), except where
/// the key it replaces is a string: then it stays the text it is.
fn parse_env_value(raw: &str, existing: Option<&toml::Value>) -> toml::Value {
    if matches!(existing, Some(toml::Value::String(_))) {
        return toml::Value::String(raw.to_string());
    }
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str, endpoint: &str) -> RemoteConfig {
        RemoteConfig::for_tests(url, endpoint)
    }

    #[test]
    fn remote_urls_name_a_bucket_and_an_optional_prefix() {
        assert_eq!(
            remote("s3://backups", "").bucket_and_prefix().unwrap(),
            ("backups".into(), "".into())
        );
        assert_eq!(
            remote("s3://backups/berth/prod/", "")
                .bucket_and_prefix()
                .unwrap(),
            ("backups".into(), "berth/prod".into())
        );
        for bad in [
            "backups",
            "http://x/y",
            "s3://",
            "s3://UPPER",
            "s3://a",
            "s3://a_b",
        ] {
            assert!(remote(bad, "").bucket_and_prefix().is_err(), "{bad}");
        }
    }

    #[test]
    fn remote_configuration_mistakes_are_named() {
        assert!(remote("", "").check().is_ok(), "off is fine");
        assert!(remote("s3://b-1", "").check().is_ok());
        let err = remote("s3://b-1", "http://127.0.0.1:9000")
            .check()
            .unwrap_err();
        assert!(err.contains("allow_http"), "{err}");
        let mut c = remote("s3://b-1", "http://127.0.0.1:9000");
        c.allow_http = true;
        assert!(c.check().is_ok());
        let err = remote("s3://b-1", "minio:9000").check().unwrap_err();
        assert!(err.contains("https://"), "{err}");
        let mut c = remote("s3://b-1", "");
        c.secret_access_key = Default::default();
        let err = c.check().unwrap_err();
        assert!(err.contains("both"), "{err}");
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn defaults_without_file_or_env() {
        let c = Config::load_from(None, &[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7780");
        assert_eq!(c.data_dir, PathBuf::from("./berth-data"));
        assert!(c.types.contains_key("vscode"));
        assert!(c.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn file_adds_types_and_replaces_builtins_whole() {
        let f = file(
            r#"
            listen = "127.0.0.1:9999"
            [types.shell]
            image = "busybox:local"
            port = 8080
            [types.shell.resources]
            cpus = 0.5
            memory_mb = 64
            [types.vscode]
            image = "my/code:1"
            port = 9000
            [types.vscode.resources]
            cpus = 1.0
            memory_mb = 512
            "#,
        );
        let c = Config::load_from(Some(f.path()), &[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9999");
        assert_eq!(c.types["shell"].resources.memory_mb, 64);
        assert!(c.types.contains_key("spreadsheet"));
        let vs = &c.types["vscode"];
        assert_eq!(vs.image, "my/code:1");
        // Replaced whole: the built-in health check and reservation are gone.
        assert!(vs.health_check.is_none());
        assert_eq!(vs.resources.memory_reservation_mb, None);
    }

    #[test]
    fn env_overrides_file_including_keys_with_underscores() {
        let f = file("data_dir = \"/tmp/a\"\n");
        let c = Config::load_from(
            Some(f.path()),
            &env(&[
                ("BERTH_DATA_DIR", "/tmp/b"),
                ("BERTH_CLEANUP_INACTIVE_AFTER_H", "12"),
                ("BERTH_TYPES_VSCODE_RESOURCES_MEMORY_MB", "1024"),
                ("BERTH_TYPES_VSCODE_RESOURCES_MEMORY_SWAP_MB", "2048"),
                ("BERTH_DATABASE_URL", "sqlite://x.db"),
                ("BERTH_INSTANCE", "123"),
                ("BERTH_TOKEN", "not-config"),
                ("BERTH_CLIENT_CONFIG", "/tmp/creds.json"),
                ("BERTH_SERVER", "http://x"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/b"));
        assert_eq!(c.cleanup.inactive_after_h, 12);
        assert_eq!(c.types["vscode"].resources.memory_mb, 1024);
        assert_eq!(c.types["vscode"].resources.memory_swap_mb, Some(2048));
        assert_eq!(c.database_url(), "sqlite://x.db");
        assert_eq!(c.instance, "123");
    }

    #[test]
    fn remote_backup_storage_comes_from_the_file_and_its_secret_from_the_environment() {
        let f = file(
            "[backups.remote]\nurl = \"s3://team-backups/berth\"\nendpoint = \"https://minio.example:9000\"\naccess_key_id = \"berth\"\n",
        );
        let c = Config::load_from(
            Some(f.path()),
            &env(&[
                (
                    "BERTH_BACKUPS_REMOTE_SECRET_ACCESS_KEY",
                    "s3cr3t/with+chars",
                ),
                ("BERTH_BACKUPS_REMOTE_KEEP_LOCAL", "3"),
            ]),
        )
        .unwrap();
        let r = &c.backups.remote;
        assert!(r.enabled());
        assert_eq!(r.url, "s3://team-backups/berth");
        assert_eq!(r.secret_access_key, "s3cr3t/with+chars");
        assert_eq!(r.region, "us-east-1");
        assert_eq!(r.keep_local, Some(3));
        assert!(
            !format!("{c:?}").contains("s3cr3t"),
            "the secret is never printed"
        );
        // Off by default.
        assert!(!Config::load_from(None, &[])
            .unwrap()
            .backups
            .remote
            .enabled());
        // A mistake is refused at load, naming the key.
        let e =
            Config::load_from(None, &env(&[("BERTH_BACKUPS_REMOTE_URL", "minio:/x")])).unwrap_err();
        assert!(e.to_string().contains("backups.remote: url"), "{e}");
    }

    #[test]
    fn unknown_keys_are_errors_that_name_them() {
        let f = file("lisen = \"x\"\n");
        let e = Config::load_from(Some(f.path()), &[]).unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let e = Config::load_from(None, &env(&[("BERTH_BOGUS_KEY", "1")])).unwrap_err();
        assert!(e.to_string().contains("bogus_key"), "{e}");
    }

    #[test]
    fn type_errors_name_the_key_in_a_config_files_words() {
        let f = file("[types.jupyter]\nport = 8888\ncommand = \"jupyter lab\"\n[types.jupyter.resources]\ncpus = 1.0\nmemory_mb = 512\n");
        let e = Config::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("types.jupyter.command: expected an array of strings"),
            "{e}"
        );
        let f = file("[types.x]\nport = \"8080\"\n");
        let e = Config::load_from(Some(f.path()), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("types.x.port: expected u16, found string"),
            "{e}"
        );
        let e = Config::load_from(
            None,
            &env(&[("BERTH_PROXY_APP_DOMAIN", "*.apps.example.com")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("without the wildcard"), "{e}");
        let e = Config::load_from(
            None,
            &env(&[("BERTH_PUBLIC_URL", "https://x.example/berth")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("public_url"), "{e}");
    }

    #[test]
    fn the_example_configs_load_and_public_url_defaults_from_listen() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let both = format!(
            "{}\n{}",
            std::fs::read_to_string(dir.join("berth.toml")).unwrap(),
            std::fs::read_to_string(dir.join("jupyterlab.toml")).unwrap()
        );
        let f = file(&both);
        let c = Config::load_from(Some(f.path()), &[]).unwrap();
        let j = &c.types["jupyter"];
        assert!(j.proxy.keep_prefix);
        assert_eq!(j.port, 8888);
        assert_eq!(
            c.public_origin().unwrap().as_str(),
            "http://127.0.0.1:7780/"
        );
        let c = Config::load_from(None, &env(&[("BERTH_LISTEN", "0.0.0.0:9000")])).unwrap();
        assert_eq!(
            c.public_origin().unwrap().as_str(),
            "http://127.0.0.1:9000/"
        );
        let c = Config::load_from(
            None,
            &env(&[
                ("BERTH_PUBLIC_URL", "https://berth.example.com"),
                ("BERTH_PROXY_APP_DOMAIN", "apps.example.com"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.public_origin().unwrap().as_str(),
            "https://berth.example.com/"
        );
        assert_eq!(c.proxy.app_domain, "apps.example.com");
    }

    #[test]
    fn schedules_are_five_field_cron_or_off() {
        assert!(parse_schedule("0 * * * *").unwrap().is_some());
        assert!(parse_schedule("off").unwrap().is_none());
        assert!(parse_schedule("*/30 * * * *").unwrap().is_some());
        assert!(parse_schedule("0 0 * * * *")
            .unwrap_err()
            .contains("6 fields"));
        assert!(parse_schedule("61 * * * *").is_err());
        let e = Config::load_from(
            None,
            &env(&[("BERTH_CLEANUP_SCHEDULES_INACTIVE", "every hour")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("cleanup.schedules.inactive"), "{e}");
        let c =
            Config::load_from(None, &env(&[("BERTH_CLEANUP_SCHEDULES_INACTIVE", "off")])).unwrap();
        assert_eq!(c.cleanup.schedules.inactive, "off");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let e = Config::load_from(None, &env(&[("BERTH_LISTEN", "nowhere")])).unwrap_err();
        assert!(e.to_string().contains("listen"), "{e}");
        let f = file("[types.x]\nport = 1\n[types.x.resources]\ncpus = -1.0\nmemory_mb = 64\n");
        let e = Config::load_from(Some(f.path()), &[]).unwrap_err();
        assert!(e.to_string().contains("types.x"), "{e}");
        let f = file("not toml [");
        assert!(matches!(
            Config::load_from(Some(f.path()), &[]),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::load_from(Some(Path::new("/nonexistent/berth.toml")), &[]),
            Err(ConfigError::Read { .. })
        ));
    }
}

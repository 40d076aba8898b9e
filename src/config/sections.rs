//! The configuration's sections (`[nodes]`, `[proxy]`, `[backups]`, …):
//! each a type with its defaults and its own checks. `Config` (in
//! `mod.rs`) holds them and loads the layers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

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
    pub placement: crate::domain::placement::Strategy,
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

impl Default for NodesConfig {
    fn default() -> Self {
        NodesConfig {
            heartbeat_s: 10,
            heartbeat_timeout_s: 5,
            placement: crate::domain::placement::Strategy::Spread,
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

/// Projects cloned from git (`[git]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    /// The git program Berth runs (on Berth's host; the clone then goes
    /// into the project's volume on whichever node it lives).
    pub program: String,
    /// How long one clone may take, in seconds, before it is stopped and
    /// the project is not made.
    pub clone_timeout_s: u64,
    /// The hosts projects may be cloned from (and their submodules): `*`
    /// (any), `*.example.com` (its subdomains) or a host name. Berth's host
    /// makes the connection, so a site whose Berth can reach internal
    /// services lists the git servers here.
    pub allowed_hosts: Vec<String>,
    /// The owner (uid, gid) of the cloned files in the volume: the user
    /// the workspace images run as (code-server's `coder` is 1000).
    pub file_uid: u64,
    pub file_gid: u64,
}

impl Default for GitConfig {
    fn default() -> Self {
        GitConfig {
            program: "git".into(),
            clone_timeout_s: 600,
            allowed_hosts: vec!["*".into()],
            file_uid: 1000,
            file_gid: 1000,
        }
    }
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

pub(super) fn default_volume_sizes() -> String {
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

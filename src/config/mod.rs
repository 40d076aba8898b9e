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

mod sections;

pub use sections::*;

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
    pub git: GitConfig,
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
            git: GitConfig::default(),
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
    fn the_placement_is_one_of_its_strategies() {
        use crate::domain::placement::Strategy;
        let c = Config::load_from(None, &env(&[("BERTH_NODES_PLACEMENT", "pack")])).unwrap();
        assert_eq!(c.nodes.placement, Strategy::Pack);
        let e = Config::load_from(None, &env(&[("BERTH_NODES_PLACEMENT", "fill")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nodes.placement") && e.contains("`spread` or `pack`"),
            "{e}"
        );
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

//! Workspace types: what image a workspace runs, on which port, with which
//! default limits and health check. They come from the config file (`docs/original-api.md` §1);
//! the built-in `vscode` and `spreadsheet` types are only defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::limits::{HealthCheck, LimitsError, ResourceLimits};

/// One configured workspace type, as written under `[types.NAME]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceType {
    /// Image reference. Empty means "not configured yet": the type is listed
    /// as unavailable until an operator sets one.
    #[serde(default)]
    pub image: String,
    /// The port the workspace serves on inside the container; published on
    /// 127.0.0.1 with a host port the engine picks.
    pub port: u16,
    /// Arguments given to the image (Docker's `Cmd`); the image's own when
    /// empty. No shell is involved: use `["sh", "-c", "…"]` to expand the
    /// variables Berth sets (`$BERTH_PROXY_PREFIX`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "string_list"
    )]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub resources: ResourceLimits,
    /// When absent the image's own HEALTHCHECK (if any) applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// How to ask a running workspace when it was last used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_probe: Option<ActivityProbe>,
    /// How the proxy forwards to this type's app.
    #[serde(default, skip_serializing_if = "TypeProxy::is_default")]
    pub proxy: TypeProxy,
}

/// `[types.NAME.proxy]`: how requests reach the type's app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeProxy {
    /// The app is served under a base path, `$BERTH_PROXY_PREFIX`
    /// (`/api/workspaces/<id>/proxy/`), and wants to see it: path mode
    /// forwards the full path instead of removing the prefix, and an app
    /// origin adds it. For apps that take a base URL, such as
    /// `jupyter lab --ServerApp.base_url="$BERTH_PROXY_PREFIX"`.
    #[serde(default)]
    pub keep_prefix: bool,
}

impl TypeProxy {
    fn is_default(&self) -> bool {
        self == &TypeProxy::default()
    }
}

/// A list of strings, refused with a message a config file's author
/// understands when it is a single string (the usual slip).
fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of strings (e.g. [\"sh\", \"-c\", \"…\"])")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V)
}

/// An HTTP endpoint of the workspace that reports its last use, e.g.
/// code-server's `/healthz` → `{"status":"alive","lastHeartbeat":1700000000000}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityProbe {
    /// Path on the workspace's port, starting with `/`.
    pub path: String,
    /// JSON field holding the time: unix milliseconds or seconds, or RFC 3339.
    pub field: String,
}

impl ActivityProbe {
    /// Reads the last-use time (unix ms) out of the endpoint's JSON answer.
    pub fn read(&self, body: &serde_json::Value) -> Option<super::Millis> {
        match body.get(&self.field)? {
            serde_json::Value::Number(n) => {
                let v = n.as_f64()?;
                // Seconds until the year 5138; milliseconds after.
                let ms = if v < 1e11 { v * 1000.0 } else { v };
                (ms > 0.0).then_some(ms as i64)
            }
            serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.timestamp_millis()),
            _ => None,
        }
    }
}

/// Whether a type can be used right now, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeAvailability {
    pub available: bool,
    pub reason: Option<String>,
}

impl WorkspaceType {
    /// Checks what can be checked without the engine: port, limits (against
    /// `host_cpus`), health check, environment names.
    pub fn validate(&self, host_cpus: u32) -> Result<(), LimitsError> {
        if self.port == 0 {
            return Err(LimitsError("port must be between 1 and 65535".into()));
        }
        self.resources.validate(host_cpus)?;
        if let Some(h) = &self.health_check {
            h.validate()?;
        }
        if let Some(k) = self.env.keys().find(|k| k.is_empty() || k.contains('=')) {
            return Err(LimitsError(format!("env name {k:?} is not valid")));
        }
        Ok(())
    }
}

/// The built-in types (`docs/original-api.md` §1). A `[types.X]` table in the config file
/// adds a type or replaces one of these whole.
pub fn builtin_types() -> BTreeMap<String, WorkspaceType> {
    let mut m = BTreeMap::new();
    m.insert(
        "vscode".to_string(),
        WorkspaceType {
            image: "codercom/code-server:latest".into(),
            port: 8080,
            command: vec![
                "--auth".into(),
                "none".into(),
                "--bind-addr".into(),
                "0.0.0.0:8080".into(),
                "/workspace".into(),
            ],
            env: BTreeMap::new(),
            description: "VS Code in the browser (code-server)".into(),
            resources: ResourceLimits {
                cpus: 2.0,
                memory_mb: 2048,
                memory_swap_mb: None,
                memory_reservation_mb: Some(512),
            },
            health_check: Some(HealthCheck::http_default(8080)),
            activity_probe: Some(ActivityProbe {
                path: "/healthz".into(),
                field: "lastHeartbeat".into(),
            }),
            proxy: TypeProxy::default(),
        },
    );
    m.insert(
        "spreadsheet".to_string(),
        WorkspaceType {
            // `docs/original-api.md` §1: the spreadsheet image is the operator's choice.
            image: String::new(),
            port: 8081,
            command: Vec::new(),
            env: BTreeMap::new(),
            description: "Spreadsheet workspace (set types.spreadsheet.image)".into(),
            resources: ResourceLimits {
                cpus: 1.5,
                memory_mb: 1536,
                memory_swap_mb: None,
                memory_reservation_mb: Some(384),
            },
            health_check: Some(HealthCheck::http_default(8081)),
            activity_probe: None,
            proxy: TypeProxy::default(),
        },
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_match_the_spec() {
        let t = builtin_types();
        let vs = &t["vscode"];
        assert_eq!(vs.image, "codercom/code-server:latest");
        assert_eq!(vs.port, 8080);
        assert_eq!(vs.resources.cpus, 2.0);
        assert_eq!(vs.resources.memory_mb, 2048);
        assert_eq!(vs.resources.memory_reservation_mb, Some(512));
        let hc = vs.health_check.as_ref().unwrap();
        assert_eq!(
            (hc.interval_s, hc.timeout_s, hc.retries, hc.start_period_s),
            (30, 10, 3, 60)
        );
        let sp = &t["spreadsheet"];
        assert_eq!(sp.port, 8081);
        assert_eq!(sp.resources.cpus, 1.5);
        assert_eq!(sp.resources.memory_mb, 1536);
        assert_eq!(sp.resources.memory_reservation_mb, Some(384));
        vs.validate(2).unwrap();
        sp.validate(2).unwrap();
    }

    #[test]
    fn activity_probes_read_ms_seconds_and_rfc3339() {
        let p = ActivityProbe {
            path: "/healthz".into(),
            field: "lastHeartbeat".into(),
        };
        let j = |v: serde_json::Value| serde_json::json!({ "lastHeartbeat": v });
        assert_eq!(
            p.read(&j(serde_json::json!(1_700_000_000_000i64))),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            p.read(&j(serde_json::json!(1_700_000_000))),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            p.read(&j(serde_json::json!("2023-11-14T22:13:20Z"))),
            Some(1_700_000_000_000)
        );
        assert_eq!(p.read(&j(serde_json::json!(0))), None);
        assert_eq!(p.read(&j(serde_json::json!(null))), None);
        assert_eq!(p.read(&serde_json::json!({})), None);
    }

    #[test]
    fn bad_env_names_and_ports_are_refused() {
        let mut t = builtin_types()["vscode"].clone();
        t.env.insert("A=B".into(), "x".into());
        assert!(t.validate(2).is_err());
        t.env.clear();
        t.port = 0;
        assert!(t.validate(2).is_err());
    }
}

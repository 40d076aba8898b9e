//! Workspace types: what image a workspace runs, on which port, with which
//! default limits and health check. They come from the config file (SPEC §1);
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
    /// Arguments given to the image (Docker's `Cmd`); the image's own when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub resources: ResourceLimits,
    /// When absent the image's own HEALTHCHECK (if any) applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
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

/// The built-in types of SPEC §1. A `[types.X]` table in the config file
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
        },
    );
    m.insert(
        "spreadsheet".to_string(),
        WorkspaceType {
            // SPEC §1: the spreadsheet image is the operator's choice.
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
    fn bad_env_names_and_ports_are_refused() {
        let mut t = builtin_types()["vscode"].clone();
        t.env.insert("A=B".into(), "x".into());
        assert!(t.validate(2).is_err());
        t.env.clear();
        t.port = 0;
        assert!(t.validate(2).is_err());
    }
}

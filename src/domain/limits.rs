//! Resource limits and health checks: the type's defaults, a workspace's
//! overrides, how they merge, and the rules a merged value must obey before
//! it reaches the engine.

use serde::{Deserialize, Serialize};

/// The smallest memory limit the engine accepts (Docker rejects below 6 MB).
pub const MIN_MEMORY_MB: u64 = 6;

/// What the engine enforces for one container. Memory in MB.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    /// CPU cores (1.5 = one and a half cores), applied as NanoCpus.
    pub cpus: f64,
    /// Hard memory limit.
    pub memory_mb: u64,
    /// Memory plus swap. When absent it equals `memory_mb`: no swap, so a
    /// workspace that outgrows its memory is OOM-killed and reported rather
    /// than slowing the whole host down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap_mb: Option<u64>,
    /// Soft limit the kernel reclaims down to under memory pressure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation_mb: Option<u64>,
}

/// A workspace's own choices, each replacing the type's default when set.
/// Field names are the API's (`memory`, not `memory_mb`), MB as in the
/// original system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<u64>,
}

/// Why a set of limits cannot be applied. The message names the field as the
/// API does and says what would be accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct LimitsError(pub String);

impl ResourceLimits {
    /// The type's defaults with the workspace's overrides laid over them.
    /// A swap limit the type set explicitly follows an overridden memory
    /// limit only if it would otherwise be below it.
    pub fn merged(&self, o: &ResourceOverrides) -> ResourceLimits {
        ResourceLimits {
            cpus: o.cpus.unwrap_or(self.cpus),
            memory_mb: o.memory.unwrap_or(self.memory_mb),
            memory_swap_mb: o.memory_swap.or(self.memory_swap_mb),
            memory_reservation_mb: o.memory_reservation.or(self.memory_reservation_mb),
        }
    }

    /// A workspace's overrides after a change (`patch`): fields left out
    /// keep their value, and a new memory limit given without a new
    /// memory+swap limit keeps the swap the type gives (memory+swap minus
    /// memory), so raising memory alone never trips over the type's sum. A
    /// memory+swap limit the workspace set itself stays as set (a memory
    /// above it is refused, saying how to fix it).
    pub fn patched(
        &self,
        current: &ResourceOverrides,
        patch: &ResourceOverrides,
    ) -> ResourceOverrides {
        let mut next = ResourceOverrides {
            cpus: patch.cpus.or(current.cpus),
            memory: patch.memory.or(current.memory),
            memory_swap: patch.memory_swap.or(current.memory_swap),
            memory_reservation: patch.memory_reservation.or(current.memory_reservation),
        };
        if let (Some(memory), None, None) = (patch.memory, patch.memory_swap, current.memory_swap) {
            let before = self.merged(current);
            if let Some(swap) = before.memory_swap_mb {
                let swap_only = swap.saturating_sub(before.memory_mb);
                next.memory_swap = Some(memory.saturating_add(swap_only));
            }
        }
        next
    }

    /// Memory plus swap as the engine gets it.
    pub fn effective_swap_mb(&self) -> u64 {
        self.memory_swap_mb.unwrap_or(self.memory_mb)
    }

    /// Checks the rules of `docs/original-api.md` §3 "Limits": everything positive, cpus at
    /// most the host's, reservation ≤ memory ≤ memory+swap.
    pub fn validate(&self, host_cpus: u32) -> Result<(), LimitsError> {
        let err = |m: String| Err(LimitsError(m));
        if !self.cpus.is_finite() || self.cpus <= 0.0 {
            return err(format!("cpus must be a number above 0 (got {})", self.cpus));
        }
        if self.cpus > f64::from(host_cpus) {
            return err(format!(
                "cpus ({}) exceeds the host's {host_cpus} CPUs",
                self.cpus
            ));
        }
        // NanoCpus is an integer: 0.000000001 cores would round to 0.
        if (self.cpus * 1e9).round() < 1e6 {
            return err("cpus must be at least 0.001".into());
        }
        if self.memory_mb < MIN_MEMORY_MB {
            return err(format!(
                "memory must be at least {MIN_MEMORY_MB} MB (got {})",
                self.memory_mb
            ));
        }
        if let Some(swap) = self.memory_swap_mb {
            if swap < self.memory_mb {
                return err(format!(
                    "memorySwap ({swap} MB, memory plus swap) must be at least memory ({} MB): give memorySwap (--memory-swap) of {} or more, or leave it out to keep the current swap",
                    self.memory_mb, self.memory_mb
                ));
            }
        }
        if let Some(res) = self.memory_reservation_mb {
            if res == 0 {
                return err("memoryReservation must be above 0 MB".into());
            }
            if res > self.memory_mb {
                return err(format!(
                    "memoryReservation ({res} MB) must not exceed memory ({} MB)",
                    self.memory_mb
                ));
            }
        }
        // Bytes must fit the engine's int64.
        if self.effective_swap_mb() > (i64::MAX as u64) / (1024 * 1024) {
            return err("memory values are too large".into());
        }
        Ok(())
    }

    pub fn nano_cpus(&self) -> i64 {
        (self.cpus * 1e9).round() as i64
    }
}

/// Bytes in `mb` mebibytes, as the engine counts memory.
pub fn mb_to_bytes(mb: u64) -> i64 {
    (mb as i64).saturating_mul(1024 * 1024)
}

fn default_interval() -> u64 {
    30
}
fn default_timeout() -> u64 {
    10
}
fn default_retries() -> u32 {
    3
}
fn default_start_period() -> u64 {
    60
}

/// A Docker health check, run by the engine inside the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// A shell command (run as `CMD-SHELL`); exit 0 means healthy.
    #[serde(default)]
    pub command: String,
    /// Turns the check off (the engine's `NONE`), including one the image
    /// declares.
    #[serde(default)]
    pub disabled: bool,
    #[serde(default = "default_interval")]
    pub interval_s: u64,
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_start_period")]
    pub start_period_s: u64,
}

impl HealthCheck {
    /// The original's default check: `curl -f` on the type's port.
    pub fn http_default(port: u16) -> HealthCheck {
        HealthCheck {
            command: format!("curl -f http://localhost:{port}/healthz || exit 1"),
            disabled: false,
            interval_s: default_interval(),
            timeout_s: default_timeout(),
            retries: default_retries(),
            start_period_s: default_start_period(),
        }
    }

    pub fn validate(&self) -> Result<(), LimitsError> {
        let err = |m: &str| Err(LimitsError(m.to_string()));
        // Values are checked even while disabled: enabling later must not
        // bring a bad one to the engine.
        if !self.disabled && self.command.trim().is_empty() {
            return err("healthCheck.command must not be empty (or set disabled)");
        }
        if let Err(m) = super::validate_text("healthCheck.command", &self.command, 4096, true) {
            return Err(LimitsError(m));
        }
        if self.interval_s == 0 || self.interval_s > 86_400 {
            return err("healthCheck interval must be between 1 and 86400 seconds");
        }
        if self.timeout_s == 0 || self.timeout_s > 86_400 {
            return err("healthCheck timeout must be between 1 and 86400 seconds");
        }
        if self.retries == 0 || self.retries > 100 {
            return err("healthCheck retries must be between 1 and 100");
        }
        if self.start_period_s > 86_400 {
            return err("healthCheck start period must be at most 86400 seconds");
        }
        Ok(())
    }
}

/// A workspace's changes to its type's health check. Seconds, in the
/// API's names; unset fields keep the type's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheckOverride {
    /// `false` turns the check off (also one the image declares).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// A shell command (`sh -c`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096), extend("x-berth-text" = "multiline"))]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_period: Option<u64>,
}

impl HealthCheckOverride {
    pub fn is_empty(&self) -> bool {
        self == &HealthCheckOverride::default()
    }

    /// `self` with the fields `newer` sets replaced.
    pub fn updated(&self, newer: &HealthCheckOverride) -> HealthCheckOverride {
        HealthCheckOverride {
            enabled: newer.enabled.or(self.enabled),
            command: newer.command.clone().or_else(|| self.command.clone()),
            interval: newer.interval.or(self.interval),
            timeout: newer.timeout.or(self.timeout),
            retries: newer.retries.or(self.retries),
            start_period: newer.start_period.or(self.start_period),
        }
    }

    /// The check a workspace runs: the type's (`base`) with this laid over
    /// it, validated. `None`: no check of Berth's (the image's own applies).
    pub fn apply(&self, base: Option<&HealthCheck>) -> Result<Option<HealthCheck>, LimitsError> {
        if self.is_empty() {
            return Ok(base.cloned());
        }
        if self.command.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err(LimitsError("healthCheck.command must not be empty".into()));
        }
        let mut h = match (base, &self.command) {
            (Some(b), _) => b.clone(),
            (None, Some(_)) | (None, None) if self.enabled == Some(false) => HealthCheck {
                disabled: true,
                ..HealthCheck::http_default(0)
            },
            (None, Some(_)) => HealthCheck {
                command: String::new(),
                ..HealthCheck::http_default(0)
            },
            (None, None) => {
                return Err(LimitsError(
                    "healthCheck.command is required: this workspace type has no health check to adjust"
                        .into(),
                ))
            }
        };
        if let Some(c) = &self.command {
            h.command = c.clone();
        }
        if let Some(v) = self.interval {
            h.interval_s = v;
        }
        if let Some(v) = self.timeout {
            h.timeout_s = v;
        }
        if let Some(v) = self.retries {
            h.retries = v;
        }
        if let Some(v) = self.start_period {
            h.start_period_s = v;
        }
        if let Some(e) = self.enabled {
            h.disabled = !e;
        }
        h.validate()?;
        Ok(Some(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_memory_alone_keeps_the_swap_the_workspace_had() {
        let t = ResourceLimits {
            cpus: 0.5,
            memory_mb: 128,
            memory_swap_mb: Some(256),
            memory_reservation_mb: Some(32),
        };
        let none = ResourceOverrides::default();
        let up = ResourceOverrides {
            cpus: Some(2.0),
            memory: Some(4096),
            ..Default::default()
        };
        let next = t.patched(&none, &up);
        assert_eq!(next.memory_swap, Some(4096 + 128));
        let l = t.merged(&next);
        assert!(l.validate(2).is_ok(), "{:?}", l.validate(2));
        // Given explicitly, the swap limit is the caller's.
        let explicit = ResourceOverrides {
            memory: Some(4096),
            memory_swap: Some(4096),
            ..Default::default()
        };
        assert_eq!(t.patched(&none, &explicit).memory_swap, Some(4096));
        // No swap before: none after.
        let no_swap = ResourceLimits {
            memory_swap_mb: None,
            ..t.clone()
        };
        assert_eq!(no_swap.patched(&none, &up).memory_swap, None);
        // A memory+swap the workspace set itself is kept as it is.
        let own = ResourceOverrides {
            memory_swap: Some(200),
            ..Default::default()
        };
        assert_eq!(t.patched(&own, &up).memory_swap, Some(200));
        // Other fields keep their value.
        let cur = ResourceOverrides {
            memory_reservation: Some(64),
            ..Default::default()
        };
        assert_eq!(t.patched(&cur, &up).memory_reservation, Some(64));
        // A swap below memory says how to fix it.
        let bad = t.merged(&explicit.clone());
        let bad = ResourceLimits {
            memory_swap_mb: Some(100),
            ..bad
        };
        let e = bad.validate(2).unwrap_err().to_string();
        assert!(
            e.contains("--memory-swap") && e.contains("4096 or more"),
            "{e}"
        );
    }

    fn base() -> ResourceLimits {
        ResourceLimits {
            cpus: 2.0,
            memory_mb: 2048,
            memory_swap_mb: None,
            memory_reservation_mb: Some(512),
        }
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let m = base().merged(&ResourceOverrides {
            memory: Some(1024),
            ..Default::default()
        });
        assert_eq!(m.cpus, 2.0);
        assert_eq!(m.memory_mb, 1024);
        assert_eq!(m.memory_reservation_mb, Some(512));
        assert_eq!(m.effective_swap_mb(), 1024);
    }

    #[test]
    fn valid_defaults_pass() {
        base().validate(4).unwrap();
    }

    #[test]
    fn cpus_must_be_positive_finite_and_within_host() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 4.5, 0.0000001] {
            let mut l = base();
            l.cpus = bad;
            assert!(l.validate(4).is_err(), "cpus {bad} accepted");
        }
        let mut l = base();
        l.cpus = 4.0;
        l.validate(4).unwrap();
        l.cpus = 0.001;
        l.validate(4).unwrap();
    }

    #[test]
    fn memory_order_is_reservation_memory_swap() {
        let mut l = base();
        l.memory_reservation_mb = Some(2049);
        let e = l.validate(4).unwrap_err();
        assert!(e.0.contains("memoryReservation"), "{e}");
        l.memory_reservation_mb = Some(2048);
        l.validate(4).unwrap();

        l.memory_swap_mb = Some(2047);
        let e = l.validate(4).unwrap_err();
        assert!(e.0.contains("memorySwap"), "{e}");
        l.memory_swap_mb = Some(2048);
        l.validate(4).unwrap();

        l.memory_mb = MIN_MEMORY_MB - 1;
        l.memory_reservation_mb = None;
        l.memory_swap_mb = None;
        assert!(l.validate(4).is_err());
        l.memory_mb = MIN_MEMORY_MB;
        l.validate(4).unwrap();

        l.memory_reservation_mb = Some(0);
        assert!(l.validate(4).is_err());
    }

    #[test]
    fn huge_memory_is_refused_not_overflowed() {
        let mut l = base();
        l.memory_mb = u64::MAX / 2;
        l.memory_reservation_mb = None;
        assert!(l.validate(4).is_err());
    }

    #[test]
    fn nano_cpus_and_bytes() {
        let mut l = base();
        l.cpus = 1.5;
        assert_eq!(l.nano_cpus(), 1_500_000_000);
        assert_eq!(mb_to_bytes(512), 536_870_912);
    }

    #[test]
    fn health_overrides_lay_over_the_type() {
        let base = HealthCheck::http_default(8080);
        assert_eq!(
            HealthCheckOverride::default().apply(Some(&base)).unwrap(),
            Some(base.clone())
        );
        assert_eq!(HealthCheckOverride::default().apply(None).unwrap(), None);
        let o = HealthCheckOverride {
            interval: Some(5),
            retries: Some(1),
            ..Default::default()
        };
        let h = o.apply(Some(&base)).unwrap().unwrap();
        assert_eq!((h.interval_s, h.retries, h.timeout_s), (5, 1, 10));
        assert_eq!(h.command, base.command);
        // Disabled.
        let off = HealthCheckOverride {
            enabled: Some(false),
            ..Default::default()
        };
        assert!(off.apply(Some(&base)).unwrap().unwrap().disabled);
        assert!(off.apply(None).unwrap().unwrap().disabled);
        // A type without a check needs a command.
        assert!(o.apply(None).is_err());
        let cmd = HealthCheckOverride {
            command: Some("true".into()),
            ..Default::default()
        };
        assert_eq!(cmd.apply(None).unwrap().unwrap().command, "true");
        // Out-of-range values are refused.
        for bad in [
            HealthCheckOverride {
                interval: Some(0),
                ..Default::default()
            },
            HealthCheckOverride {
                retries: Some(0),
                ..Default::default()
            },
            HealthCheckOverride {
                timeout: Some(100_000),
                ..Default::default()
            },
            HealthCheckOverride {
                command: Some("  ".into()),
                ..Default::default()
            },
        ] {
            assert!(bad.apply(Some(&base)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn health_override_updates_field_by_field() {
        let a = HealthCheckOverride {
            interval: Some(5),
            command: Some("a".into()),
            ..Default::default()
        };
        let b = HealthCheckOverride {
            interval: Some(7),
            ..Default::default()
        };
        let u = a.updated(&b);
        assert_eq!(u.interval, Some(7));
        assert_eq!(u.command.as_deref(), Some("a"));
    }

    #[test]
    fn health_check_bounds() {
        let mut h = HealthCheck::http_default(8080);
        h.validate().unwrap();
        h.interval_s = 0;
        assert!(h.validate().is_err());
        h.interval_s = 1;
        h.retries = 0;
        assert!(h.validate().is_err());
        h.retries = 1;
        h.command = " ".into();
        assert!(h.validate().is_err());
        h.disabled = true;
        h.validate().unwrap();
    }
}

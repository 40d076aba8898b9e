//! When to restart a failed workspace, when to wait, and when to give up:
//! exponential backoff inside a restart budget per time window. Pure; the
//! service's recovery executor applies the step.

use serde::{Deserialize, Serialize};

use super::Millis;

/// How hard Berth tries to bring a failed workspace back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryPolicy {
    /// Off: a failed workspace is marked stopped (crash) or left running
    /// (unhealthy), and nothing is restarted.
    pub enabled: bool,
    /// Restarts allowed within `window_s`; the next failure gives up.
    pub max_restarts: u32,
    pub window_s: u64,
    /// Delay before the second restart in a window; doubles each time. The
    /// first restart in a window is immediate.
    pub backoff_base_s: u64,
    pub backoff_max_s: u64,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        RecoveryPolicy {
            enabled: true,
            max_restarts: 3,
            window_s: 600,
            backoff_base_s: 2,
            backoff_max_s: 60,
        }
    }
}

impl RecoveryPolicy {
    pub fn validate(&self) -> Result<(), String> {
        if self.window_s == 0 {
            return Err("recovery.window_s must be above 0".into());
        }
        if self.backoff_max_s < self.backoff_base_s {
            return Err("recovery.backoff_max_s must be at least backoff_base_s".into());
        }
        Ok(())
    }
}

/// What went wrong with a workspace that should be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The engine's health check failed `retries` times in a row.
    Unhealthy,
    /// The main process was killed for exceeding the memory limit.
    OomKilled,
    /// The container exited on its own with this code.
    Exited(i64),
}

impl Failure {
    /// A short description, as used in reasons ("OOM killed 3 times …").
    pub fn describe(&self) -> String {
        match self {
            Failure::Unhealthy => "unhealthy".into(),
            Failure::OomKilled => "OOM killed".into(),
            Failure::Exited(code) => format!("exited with code {code}"),
        }
    }
}

/// The next thing to do about a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryStep {
    /// Restart after this many milliseconds (0: now).
    Restart { after_ms: u64, attempt: u32 },
    /// The budget is spent: mark the workspace `error` with this reason.
    GiveUp { reason: String },
}

fn give_up_reason(failure: &Failure, count: u32, policy: &RecoveryPolicy) -> String {
    let times = if count == 1 { "time" } else { "times" };
    let window = window_text(policy.window_s);
    let (what, detail) = match failure {
        Failure::Unhealthy => ("unhealthy", String::new()),
        Failure::OomKilled => ("OOM killed", String::new()),
        Failure::Exited(code) => ("crashed", format!(", last exit code {code}")),
    };
    format!(
        "{what} {count} {times} in {window}{detail} (restart budget of {} used up)",
        policy.max_restarts
    )
}

fn window_text(s: u64) -> String {
    if s % 3600 == 0 {
        format!("{} h", s / 3600)
    } else if s % 60 == 0 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// Decides what to do about `failure` at `now`, given when the workspace
/// was restarted by recovery before (`restarts`, any order) and since when
/// those count (`counted_since`, e.g. the last start by a user, who resets
/// the budget).
pub fn next_recovery_step(
    failure: &Failure,
    restarts: &[Millis],
    counted_since: Option<Millis>,
    now: Millis,
    policy: &RecoveryPolicy,
) -> RecoveryStep {
    let window_ms = i64::try_from(policy.window_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    let floor = now
        .saturating_sub(window_ms)
        .max(counted_since.unwrap_or(i64::MIN));
    // A restart exactly `window` ago has left the window.
    let recent = restarts.iter().filter(|&&t| t > floor && t <= now).count() as u32;
    if recent >= policy.max_restarts {
        return RecoveryStep::GiveUp {
            reason: give_up_reason(failure, recent + 1, policy),
        };
    }
    let after_ms = if recent == 0 {
        0
    } else {
        let factor = 1u64.checked_shl(recent - 1).unwrap_or(u64::MAX);
        policy
            .backoff_base_s
            .saturating_mul(factor)
            .min(policy.backoff_max_s)
            .saturating_mul(1000)
    };
    RecoveryStep::Restart {
        after_ms,
        attempt: recent + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn policy() -> RecoveryPolicy {
        RecoveryPolicy {
            enabled: true,
            max_restarts: 3,
            window_s: 600,
            backoff_base_s: 2,
            backoff_max_s: 5,
        }
    }

    fn step(restarts: &[Millis], since: Option<Millis>, now: Millis) -> RecoveryStep {
        next_recovery_step(&Failure::Unhealthy, restarts, since, now, &policy())
    }

    #[test]
    fn first_failure_restarts_at_once() {
        assert_eq!(
            step(&[], None, 100 * MIN),
            RecoveryStep::Restart {
                after_ms: 0,
                attempt: 1
            }
        );
    }

    #[test]
    fn later_failures_back_off_exponentially_up_to_the_cap() {
        let now = 100 * MIN;
        assert_eq!(
            step(&[now - MIN], None, now),
            RecoveryStep::Restart {
                after_ms: 2_000,
                attempt: 2
            }
        );
        assert_eq!(
            step(&[now - 2 * MIN, now - MIN], None, now),
            RecoveryStep::Restart {
                after_ms: 4_000,
                attempt: 3
            }
        );
        let mut p = policy();
        p.max_restarts = 10;
        let many: Vec<Millis> = (1..=5).map(|i| now - i * 1000).collect();
        assert_eq!(
            next_recovery_step(&Failure::Unhealthy, &many, None, now, &p),
            RecoveryStep::Restart {
                after_ms: 5_000,
                attempt: 6
            },
            "capped at backoff_max_s"
        );
    }

    #[test]
    fn the_budget_gives_up_with_a_reason() {
        let now = 100 * MIN;
        let r = [now - 3 * MIN, now - 2 * MIN, now - MIN];
        assert_eq!(
            step(&r, None, now),
            RecoveryStep::GiveUp {
                reason: "unhealthy 4 times in 10 min (restart budget of 3 used up)".into()
            }
        );
        let oom = next_recovery_step(&Failure::OomKilled, &r, None, now, &policy());
        assert!(
            matches!(oom, RecoveryStep::GiveUp { reason } if reason.starts_with("OOM killed 4 times"))
        );
    }

    #[test]
    fn restarts_outside_the_window_do_not_count() {
        let now = 100 * MIN;
        // Exactly one window ago: outside. One ms later: inside.
        let r = [now - 10 * MIN, now - 10 * MIN, now - 10 * MIN];
        assert!(matches!(
            step(&r, None, now),
            RecoveryStep::Restart { attempt: 1, .. }
        ));
        let r = [now - 10 * MIN + 1, now - MIN, now - MIN];
        assert!(matches!(step(&r, None, now), RecoveryStep::GiveUp { .. }));
        // Future timestamps (clock went back) do not count.
        let r = [now + MIN, now + MIN, now + MIN];
        assert!(matches!(
            step(&r, None, now),
            RecoveryStep::Restart { attempt: 1, .. }
        ));
    }

    #[test]
    fn a_user_start_resets_the_budget() {
        let now = 100 * MIN;
        let r = [now - 3 * MIN, now - 2 * MIN, now - MIN];
        assert!(matches!(
            step(&r, Some(now - MIN), now),
            RecoveryStep::Restart { attempt: 1, .. }
        ));
        assert!(matches!(
            step(&r, Some(now - 2 * MIN - 1), now),
            RecoveryStep::Restart { attempt: 3, .. }
        ));
    }

    #[test]
    fn zero_budget_gives_up_at_once() {
        let mut p = policy();
        p.max_restarts = 0;
        assert!(matches!(
            next_recovery_step(&Failure::Exited(1), &[], None, 0, &p),
            RecoveryStep::GiveUp { reason } if reason == "crashed 1 time in 10 min, last exit code 1 (restart budget of 0 used up)"
        ));
    }

    #[test]
    fn windows_print_in_natural_units() {
        assert_eq!(window_text(600), "10 min");
        assert_eq!(window_text(7200), "2 h");
        assert_eq!(window_text(90), "90 s");
    }

    #[test]
    fn policy_validation() {
        policy().validate().unwrap();
        let mut p = policy();
        p.window_s = 0;
        assert!(p.validate().is_err());
        let mut p = policy();
        p.backoff_max_s = 1;
        assert!(p.validate().is_err());
    }
}

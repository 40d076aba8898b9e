//! Quotas: what one user may hold and use — workspaces in total, running
//! workspaces, the CPUs and memory their running workspaces reserve, and
//! storage (their project volumes and backups) — and optional caps on what
//! every running workspace together reserves. Limits come from the user's
//! role (`quotas.member`, `quotas.admin`), overridden per user by an
//! admin. Pure: the service measures usage and asks [`check`] whether an
//! action's need fits, under the user's lock.

use super::Millis;

/// One limit as an admin sets it for a user.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Setting<T> {
    /// The role's default.
    #[default]
    Role,
    /// No limit, whatever the role says.
    Unlimited,
    Limit(T),
}

impl<T: Copy> Setting<T> {
    fn over(self, role: Option<T>) -> (Option<T>, Source) {
        match self {
            Setting::Role => (role, Source::Role),
            Setting::Unlimited => (None, Source::User),
            Setting::Limit(v) => (Some(v), Source::User),
        }
    }
}

super::spelled_enum! {
    /// Where a limit comes from.
    pub enum Source("quota source") {
        /// The user's role (`quotas.member` / `quotas.admin`).
        Role = "role",
        /// Set for this user by an admin.
        User = "user",
    }
}

/// An admin's overrides for one user.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Overrides {
    pub workspaces: Setting<u64>,
    pub running: Setting<u64>,
    pub cpus: Setting<f64>,
    pub memory_mb: Setting<u64>,
    pub storage_mb: Setting<u64>,
}

/// A role's default limits (`None`: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RoleLimits {
    pub workspaces: Option<u64>,
    pub running: Option<u64>,
    pub cpus: Option<f64>,
    pub memory_mb: Option<u64>,
    pub storage_mb: Option<u64>,
}

/// One user's limits in force, and where each comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub workspaces: (Option<u64>, Source),
    pub running: (Option<u64>, Source),
    pub cpus: (Option<f64>, Source),
    pub memory_mb: (Option<u64>, Source),
    pub storage_mb: (Option<u64>, Source),
}

impl Limits {
    pub fn of(role: &RoleLimits, o: &Overrides) -> Limits {
        Limits {
            workspaces: o.workspaces.over(role.workspaces),
            running: o.running.over(role.running),
            cpus: o.cpus.over(role.cpus),
            memory_mb: o.memory_mb.over(role.memory_mb),
            storage_mb: o.storage_mb.over(role.storage_mb),
        }
    }

    /// Whether any limit bounds what `need` grows: when none does, [`check`]
    /// passes whatever the usage, so there is nothing to measure or lock.
    pub fn bind(&self, need: &Need) -> bool {
        (need.workspaces > 0 && self.workspaces.0.is_some())
            || (need.running > 0 && self.running.0.is_some())
            || (need.cpus > 0.0 && self.cpus.0.is_some())
            || (need.memory_mb > 0 && self.memory_mb.0.is_some())
            || (need.storage_bytes > 0 && self.storage_mb.0.is_some())
    }
}

/// What a user holds and uses now.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    pub workspaces: u64,
    /// Running or starting.
    pub running: u64,
    /// The CPU limits of the running workspaces.
    pub cpus: f64,
    /// The memory reservations (else limits) of the running workspaces.
    pub memory_mb: u64,
    /// Their project volumes as last measured.
    pub volume_bytes: u64,
    /// Their backups' archives.
    pub backup_bytes: u64,
    /// The oldest volume measurement counted (storage is approximate
    /// between measurements); `None` when no volume was measured.
    pub measured_at: Option<Millis>,
}

impl Usage {
    pub fn storage_bytes(&self) -> u64 {
        self.volume_bytes.saturating_add(self.backup_bytes)
    }
}

/// What an action adds (only what grows counts).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Need {
    pub workspaces: u64,
    pub running: u64,
    pub cpus: f64,
    pub memory_mb: u64,
    pub storage_bytes: u64,
}

impl Need {
    /// A workspace created.
    pub fn workspace() -> Need {
        Need {
            workspaces: 1,
            ..Need::default()
        }
    }

    /// A workspace started with these limits.
    pub fn start(cpus: f64, memory_mb: u64) -> Need {
        Need {
            running: 1,
            cpus,
            memory_mb,
            ..Need::default()
        }
    }

    /// A running workspace's limits changed from `old` to `new` (cpus,
    /// memory): what grows.
    pub fn resize(old: (f64, u64), new: (f64, u64)) -> Need {
        Need {
            cpus: (new.0 - old.0).max(0.0),
            memory_mb: new.1.saturating_sub(old.1),
            ..Need::default()
        }
    }

    /// Storage that grows by `bytes`.
    pub fn storage(bytes: u64) -> Need {
        Need {
            storage_bytes: bytes,
            ..Need::default()
        }
    }
}

/// What every running workspace together reserves, and the caps.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Site {
    pub cpus: f64,
    pub memory_mb: u64,
    pub cap_cpus: Option<f64>,
    pub cap_memory_mb: Option<u64>,
}

const MB: u64 = 1024 * 1024;

fn cpus(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r}")
    }
}

fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / (1024.0 * MB as f64))
}

/// What to do about a refusal: free something when something is held,
/// else (a limit of 0, or a request bigger than the limit) only an admin
/// can help.
fn remedy(holds_some: bool, free: &str) -> &str {
    if holds_some {
        free
    } else {
        "your limit allows none; an admin can raise it"
    }
}

/// Whether `need` fits `limits` given `usage`; the refusal says what is in
/// use, what the request needs and the limit, and what to do.
pub fn check(usage: &Usage, need: &Need, limits: &Limits) -> Result<(), String> {
    if need.workspaces > 0 {
        if let Some(l) = limits.workspaces.0 {
            if usage.workspaces + need.workspaces > l {
                return Err(format!(
                    "{} of {l} workspaces: {}",
                    usage.workspaces,
                    remedy(usage.workspaces > 0, "delete one first")
                ));
            }
        }
    }
    if need.running > 0 {
        if let Some(l) = limits.running.0 {
            if usage.running + need.running > l {
                return Err(format!(
                    "running {} of {l} workspaces: {}",
                    usage.running,
                    remedy(usage.running > 0, "stop one first")
                ));
            }
        }
    }
    if need.cpus > 0.0 {
        if let Some(l) = limits.cpus.0 {
            if usage.cpus + need.cpus > l + 1e-9 {
                return Err(format!(
                    "running workspaces reserve {} of {} CPUs and this needs {} more: {}",
                    cpus(usage.cpus),
                    cpus(l),
                    cpus(need.cpus),
                    if need.cpus > l + 1e-9 {
                        "lower its CPU limit or ask an admin to raise yours"
                    } else {
                        "stop one or lower its CPU limit"
                    }
                ));
            }
        }
    }
    if need.memory_mb > 0 {
        if let Some(l) = limits.memory_mb.0 {
            if usage.memory_mb + need.memory_mb > l {
                return Err(format!(
                    "running workspaces reserve {} of {l} MB of memory and this needs {} MB more: {}",
                    usage.memory_mb,
                    need.memory_mb,
                    if need.memory_mb > l {
                        "lower its memory or ask an admin to raise your limit"
                    } else {
                        "stop one or lower its memory"
                    }
                ));
            }
        }
    }
    if need.storage_bytes > 0 {
        if let Some(l) = limits.storage_mb.0 {
            let limit = l.saturating_mul(MB);
            if usage.storage_bytes().saturating_add(need.storage_bytes) > limit {
                return Err(format!(
                    "storage: {} of {} used by your project volumes and backups, and this needs about {} more: {}",
                    gb(usage.storage_bytes()),
                    gb(limit),
                    gb(need.storage_bytes),
                    if need.storage_bytes > limit {
                        "ask an admin to raise your limit"
                    } else {
                        "delete backups or data first"
                    }
                ));
            }
        }
    }
    Ok(())
}

/// Whether `need` fits the site's caps.
pub fn check_site(site: &Site, need: &Need) -> Result<(), String> {
    if need.cpus > 0.0 {
        if let Some(cap) = site.cap_cpus {
            if site.cpus + need.cpus > cap + 1e-9 {
                return Err(format!(
                    "all running workspaces reserve {} of the site's {} CPUs and this needs {} more: try again when others stop",
                    cpus(site.cpus),
                    cpus(cap),
                    cpus(need.cpus)
                ));
            }
        }
    }
    if need.memory_mb > 0 {
        if let Some(cap) = site.cap_memory_mb {
            if site.memory_mb + need.memory_mb > cap {
                return Err(format!(
                    "all running workspaces reserve {} of the site's {cap} MB of memory and this needs {} MB more: try again when others stop",
                    site.memory_mb, need.memory_mb
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(role: RoleLimits) -> Limits {
        Limits::of(&role, &Overrides::default())
    }

    #[test]
    fn overrides_replace_the_role_limit_one_by_one() {
        let role = RoleLimits {
            workspaces: Some(10),
            running: Some(3),
            cpus: Some(4.0),
            memory_mb: None,
            storage_mb: Some(1024),
        };
        let o = Overrides {
            running: Setting::Limit(5),
            storage_mb: Setting::Unlimited,
            memory_mb: Setting::Limit(2048),
            ..Overrides::default()
        };
        let l = Limits::of(&role, &o);
        assert_eq!(l.workspaces, (Some(10), Source::Role));
        assert_eq!(l.running, (Some(5), Source::User));
        assert_eq!(l.cpus, (Some(4.0), Source::Role));
        assert_eq!(l.memory_mb, (Some(2048), Source::User));
        assert_eq!(l.storage_mb, (None, Source::User));
    }

    #[test]
    fn each_limit_refuses_at_the_limit_and_accepts_below() {
        let l = limits(RoleLimits {
            workspaces: Some(2),
            running: Some(1),
            cpus: Some(2.0),
            memory_mb: Some(1024),
            storage_mb: Some(1),
        });
        // Workspaces.
        let mut u = Usage {
            workspaces: 1,
            ..Usage::default()
        };
        assert!(check(&u, &Need::workspace(), &l).is_ok());
        u.workspaces = 2;
        assert_eq!(
            check(&u, &Need::workspace(), &l).unwrap_err(),
            "2 of 2 workspaces: delete one first"
        );
        // Running.
        assert!(check(&u, &Need::start(0.5, 64), &l).is_ok());
        u.running = 1;
        assert_eq!(
            check(&u, &Need::start(0.5, 64), &l).unwrap_err(),
            "running 1 of 1 workspaces: stop one first"
        );
        u.running = 0;
        // CPUs: exactly at the limit fits.
        u.cpus = 1.5;
        assert!(check(&u, &Need::start(0.5, 64), &l).is_ok());
        let e = check(&u, &Need::start(1.0, 64), &l).unwrap_err();
        assert!(e.contains("1.5 of 2 CPUs") && e.contains("1 more"), "{e}");
        // Memory.
        u.cpus = 0.0;
        u.memory_mb = 960;
        assert!(check(&u, &Need::start(0.1, 64), &l).is_ok());
        let e = check(&u, &Need::start(0.1, 65), &l).unwrap_err();
        assert!(
            e.contains("960 of 1024 MB") && e.contains("65 MB more"),
            "{e}"
        );
        // Storage (1 MB).
        u.volume_bytes = 512 * 1024;
        u.backup_bytes = 256 * 1024;
        assert!(check(&u, &Need::storage(256 * 1024), &l).is_ok());
        let e = check(&u, &Need::storage(256 * 1024 + 1), &l).unwrap_err();
        assert!(e.contains("delete backups"), "{e}");
        // What does not grow is never refused.
        u.workspaces = 99;
        u.running = 99;
        assert!(check(&u, &Need::default(), &l).is_ok());
        assert!(check(&u, &Need::storage(0), &l).is_ok());
    }

    #[test]
    fn a_refusal_with_nothing_to_free_points_to_an_admin() {
        // A limit of 0, or a request bigger than the whole limit: stopping
        // or deleting cannot help, so the message must not say to.
        let l = limits(RoleLimits {
            workspaces: Some(0),
            running: Some(0),
            cpus: Some(1.0),
            memory_mb: Some(256),
            storage_mb: Some(1),
        });
        let u = Usage::default();
        assert_eq!(
            check(&u, &Need::workspace(), &l).unwrap_err(),
            "0 of 0 workspaces: your limit allows none; an admin can raise it"
        );
        assert_eq!(
            check(&u, &Need::start(0.5, 64), &l).unwrap_err(),
            "running 0 of 0 workspaces: your limit allows none; an admin can raise it"
        );
        let l = limits(RoleLimits {
            cpus: Some(1.0),
            memory_mb: Some(256),
            storage_mb: Some(1),
            ..RoleLimits::default()
        });
        let e = check(&u, &Need::start(2.0, 64), &l).unwrap_err();
        assert!(
            e.ends_with("lower its CPU limit or ask an admin to raise yours"),
            "{e}"
        );
        let e = check(&u, &Need::start(0.5, 512), &l).unwrap_err();
        assert!(
            e.ends_with("lower its memory or ask an admin to raise your limit"),
            "{e}"
        );
        let e = check(&u, &Need::storage(2 * MB), &l).unwrap_err();
        assert!(e.ends_with("ask an admin to raise your limit"), "{e}");
    }

    #[test]
    fn limits_bind_only_what_the_need_grows() {
        let l = limits(RoleLimits {
            running: Some(1),
            storage_mb: Some(10),
            ..RoleLimits::default()
        });
        assert!(!l.bind(&Need::default()));
        assert!(!l.bind(&Need::workspace()));
        assert!(l.bind(&Need::start(0.5, 64)));
        assert!(!l.bind(&Need::resize((1.0, 64), (2.0, 128))));
        assert!(l.bind(&Need::storage(1)));
        assert!(!l.bind(&Need::storage(0)));
        let none = limits(RoleLimits::default());
        assert!(!none.bind(&Need::start(64.0, 1 << 20)));
        // Wherever bind says no, check passes whatever the usage.
        let full = Usage {
            workspaces: u64::MAX / 2,
            running: u64::MAX / 2,
            cpus: 1e12,
            memory_mb: u64::MAX / 2,
            volume_bytes: u64::MAX / 2,
            backup_bytes: u64::MAX / 2,
            measured_at: None,
        };
        for need in [Need::workspace(), Need::resize((1.0, 64), (2.0, 128))] {
            assert!(!l.bind(&need));
            assert!(check(&full, &need, &l).is_ok());
        }
    }

    #[test]
    fn nothing_is_refused_without_limits() {
        let l = limits(RoleLimits::default());
        let u = Usage {
            workspaces: 1_000,
            running: 1_000,
            cpus: 1_000.0,
            memory_mb: 1 << 30,
            volume_bytes: u64::MAX / 2,
            backup_bytes: u64::MAX / 2,
            measured_at: None,
        };
        let big = Need {
            workspaces: 1,
            running: 1,
            cpus: 64.0,
            memory_mb: 1 << 20,
            storage_bytes: 1 << 40,
        };
        assert!(check(&u, &big, &l).is_ok());
    }

    #[test]
    fn a_resize_needs_only_what_grows() {
        assert_eq!(
            Need::resize((1.0, 512), (2.0, 256)),
            Need {
                cpus: 1.0,
                ..Need::default()
            }
        );
        assert_eq!(Need::resize((2.0, 512), (1.0, 256)), Need::default());
    }

    #[test]
    fn the_site_caps_count_everyone() {
        let site = Site {
            cpus: 7.5,
            memory_mb: 30_000,
            cap_cpus: Some(8.0),
            cap_memory_mb: Some(32_000),
        };
        assert!(check_site(&site, &Need::start(0.5, 2_000)).is_ok());
        assert!(check_site(&site, &Need::start(1.0, 100))
            .unwrap_err()
            .contains("7.5 of the site's 8 CPUs"));
        assert!(check_site(&site, &Need::start(0.1, 2_001))
            .unwrap_err()
            .contains("30000 of the site's 32000 MB"));
        assert!(check_site(&Site::default(), &Need::start(100.0, 1 << 30)).is_ok());
    }
}

//! Throttling failed logins: how many failures a key (an account's email,
//! a client's address) may have before it is locked, and for how long — a
//! lock that doubles with every further failure, up to a maximum. Pure; the
//! service keeps one [`Attempts`] per key.

use super::Millis;

/// The rules, from `auth.login_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures allowed before the first lock.
    pub free_attempts: u32,
    /// The first lock, in seconds; each later failure doubles it.
    pub base_s: u64,
    pub max_s: u64,
    /// Failures older than this are forgotten.
    pub window_s: u64,
}

/// One key's recent failures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    pub failures: u32,
    pub last_failure: Millis,
    pub locked_until: Millis,
}

impl Attempts {
    /// Seconds until a login may be tried again (rounded up), if locked.
    pub fn locked_for(&self, now: Millis) -> Option<u64> {
        (self.locked_until > now).then(|| ((self.locked_until - now) as u64).div_ceil(1000))
    }

    /// Records a failure at `now`; returns the lock it starts, in seconds.
    pub fn fail(&mut self, now: Millis, p: &ThrottlePolicy) -> Option<u64> {
        if now.saturating_sub(self.last_failure) > (p.window_s as i64).saturating_mul(1000) {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        self.last_failure = now;
        if self.failures < p.free_attempts.max(1) {
            return None;
        }
        let doublings = (self.failures - p.free_attempts.max(1)).min(30);
        let lock_s = p
            .base_s
            .saturating_mul(1u64 << doublings)
            .min(p.max_s)
            .max(1);
        self.locked_until = now.saturating_add((lock_s as i64).saturating_mul(1000));
        Some(lock_s)
    }

    /// Whether the entry can be forgotten (nothing left to remember).
    pub fn expired(&self, now: Millis, p: &ThrottlePolicy) -> bool {
        self.locked_until <= now
            && now.saturating_sub(self.last_failure) > (p.window_s as i64).saturating_mul(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ThrottlePolicy = ThrottlePolicy {
        free_attempts: 3,
        base_s: 10,
        max_s: 60,
        window_s: 300,
    };

    #[test]
    fn free_attempts_then_doubling_locks_up_to_the_maximum() {
        let mut a = Attempts::default();
        let t = 1_000_000;
        assert_eq!(a.fail(t, &P), None);
        assert_eq!(a.fail(t, &P), None);
        assert_eq!(a.locked_for(t), None);
        assert_eq!(a.fail(t, &P), Some(10));
        assert_eq!(a.locked_for(t), Some(10));
        assert_eq!(a.locked_for(t + 9_001), Some(1));
        assert_eq!(a.locked_for(t + 10_000), None);
        assert_eq!(a.fail(t + 10_000, &P), Some(20));
        assert_eq!(a.fail(t + 30_000, &P), Some(40));
        assert_eq!(a.fail(t + 70_000, &P), Some(60));
        assert_eq!(a.fail(t + 130_000, &P), Some(60));
    }

    #[test]
    fn old_failures_are_forgotten() {
        let mut a = Attempts::default();
        a.fail(0, &P);
        a.fail(1, &P);
        // Past the window: counting starts again.
        assert_eq!(a.fail(400_000, &P), None);
        assert_eq!(a.failures, 1);
        assert!(!a.expired(400_000, &P));
        assert!(a.expired(800_000, &P));
    }

    #[test]
    fn a_lock_is_never_zero_and_never_overflows() {
        let p = ThrottlePolicy {
            free_attempts: 0,
            base_s: 0,
            max_s: u64::MAX,
            window_s: u64::MAX,
        };
        let mut a = Attempts::default();
        assert_eq!(a.fail(0, &p), Some(1));
        let mut b = Attempts {
            failures: u32::MAX - 1,
            last_failure: i64::MAX - 10,
            ..Default::default()
        };
        assert!(b.fail(i64::MAX - 5, &P).is_some());
    }
}

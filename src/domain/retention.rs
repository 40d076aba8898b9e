//! Which backups a retention policy keeps: the last N, the newest of each
//! of the last D days, the newest of each of the last W ISO weeks. Pure;
//! the scheduled backup job prunes what this returns.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::backups::BackupState;
use super::Millis;

/// How many backups to keep (each rule keeps its own; a backup any rule
/// keeps is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_last: 7,
            keep_daily: 7,
            keep_weekly: 4,
        }
    }
}

/// What the planner needs of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSeen {
    pub id: Uuid,
    pub created_at: Millis,
    pub state: BackupState,
}

fn day_of(ms: Millis) -> (i32, u32) {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    (t.year(), t.ordinal())
}

fn week_of(ms: Millis) -> (i32, u32) {
    let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    let w = t.iso_week();
    (w.year(), w.week())
}

/// The backups to delete. Never an `in_progress` one, never the newest
/// complete one (so a project with backups always keeps one it can restore),
/// and failed ones only once a complete backup newer than them exists.
/// Days and weeks are UTC; "the last D days" are the D most recent days
/// that have a backup, so days without one (a missed schedule) do not use
/// up the count.
pub fn plan_retention(backups: &[BackupSeen], policy: &RetentionPolicy) -> Vec<Uuid> {
    let mut complete: Vec<&BackupSeen> = backups
        .iter()
        .filter(|b| b.state == BackupState::Complete)
        .collect();
    // Newest first; ties broken by id so the plan is deterministic.
    complete.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let mut keep: HashSet<Uuid> = HashSet::new();
    if let Some(newest) = complete.first() {
        keep.insert(newest.id);
    }
    for b in complete.iter().take(policy.keep_last as usize) {
        keep.insert(b.id);
    }
    let mut days = Vec::new();
    let mut weeks = Vec::new();
    for b in &complete {
        let d = day_of(b.created_at);
        if !days.contains(&d) && days.len() < policy.keep_daily as usize {
            days.push(d);
            keep.insert(b.id);
        }
        let w = week_of(b.created_at);
        if !weeks.contains(&w) && weeks.len() < policy.keep_weekly as usize {
            weeks.push(w);
            keep.insert(b.id);
        }
    }
    let newest_complete = complete.first().map(|b| b.created_at);
    let mut out: Vec<Uuid> = complete
        .iter()
        .filter(|b| !keep.contains(&b.id))
        .map(|b| b.id)
        .collect();
    out.extend(
        backups
            .iter()
            .filter(|b| b.state == BackupState::Failed)
            .filter(|b| newest_complete.is_some_and(|n| n > b.created_at))
            .map(|b| b.id),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const H: i64 = 3_600_000;
    /// 2026-11-02 00:00 UTC, a Monday.
    const MONDAY: i64 = 1_793_577_600_000;

    fn b(at: Millis, state: BackupState) -> BackupSeen {
        BackupSeen {
            id: Uuid::new_v4(),
            created_at: at,
            state,
        }
    }

    fn ok(at: Millis) -> BackupSeen {
        b(at, BackupState::Complete)
    }

    fn policy(last: u32, daily: u32, weekly: u32) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: last,
            keep_daily: daily,
            keep_weekly: weekly,
        }
    }

    fn kept(all: &[BackupSeen], p: &RetentionPolicy) -> Vec<Millis> {
        let gone = plan_retention(all, p);
        let mut k: Vec<Millis> = all
            .iter()
            .filter(|x| !gone.contains(&x.id))
            .map(|x| x.created_at)
            .collect();
        k.sort();
        k
    }

    #[test]
    fn monday_is_a_monday_at_midnight() {
        use chrono::Timelike;
        let t = DateTime::<Utc>::from_timestamp_millis(MONDAY).unwrap();
        assert_eq!(t.weekday(), chrono::Weekday::Mon);
        assert_eq!((t.hour(), t.day()), (0, 2));
    }

    #[test]
    fn keep_last_keeps_the_newest_n() {
        let all: Vec<_> = (0..10).map(|i| ok(MONDAY + i * H)).collect();
        assert_eq!(
            kept(&all, &policy(3, 0, 0)),
            vec![MONDAY + 7 * H, MONDAY + 8 * H, MONDAY + 9 * H]
        );
    }

    #[test]
    fn keep_daily_keeps_the_newest_of_each_day_and_skips_missed_days() {
        // Two a day on days 0, 1, 3 (day 2 missed), 4.
        let mut all = Vec::new();
        for d in [0, 1, 3, 4] {
            all.push(ok(MONDAY + d * DAY + H));
            all.push(ok(MONDAY + d * DAY + 20 * H));
        }
        let k = kept(&all, &policy(0, 3, 0));
        assert_eq!(
            k,
            vec![
                MONDAY + DAY + 20 * H,
                MONDAY + 3 * DAY + 20 * H,
                MONDAY + 4 * DAY + 20 * H
            ]
        );
    }

    #[test]
    fn day_boundaries_are_utc_midnight() {
        let late = ok(MONDAY + DAY - 1);
        let early = ok(MONDAY + DAY);
        let k = kept(&[late.clone(), early.clone()], &policy(0, 2, 0));
        assert_eq!(k.len(), 2, "23:59:59.999 and 00:00 are different days");
        let k = kept(&[late, early], &policy(0, 1, 0));
        assert_eq!(k, vec![MONDAY + DAY]);
    }

    #[test]
    fn keep_weekly_uses_iso_weeks() {
        // Sunday 23:00 and the following Monday 01:00 are different weeks.
        let sunday = ok(MONDAY - H);
        let monday = ok(MONDAY + H);
        let tuesday = ok(MONDAY + DAY + H);
        let k = kept(&[sunday, monday, tuesday], &policy(0, 0, 2));
        assert_eq!(k, vec![MONDAY - H, MONDAY + DAY + H]);
    }

    #[test]
    fn rules_add_up() {
        let all: Vec<_> = (0..30).map(|d| ok(MONDAY + d * DAY)).collect();
        let k = kept(&all, &policy(2, 3, 2));
        // Last 2 (days 29, 28), daily 3 (29, 28, 27), weekly 2: newest of
        // the week of day 29 (day 29) and of the week before (day 27 is a
        // Sunday? day 0 is Monday, so day 27 is Sunday: same as daily).
        assert_eq!(
            k,
            vec![MONDAY + 27 * DAY, MONDAY + 28 * DAY, MONDAY + 29 * DAY]
        );
    }

    #[test]
    fn the_newest_complete_backup_is_never_deleted() {
        let all = vec![ok(MONDAY), ok(MONDAY + H)];
        assert_eq!(kept(&all, &policy(0, 0, 0)), vec![MONDAY + H]);
        let only = vec![ok(MONDAY)];
        assert!(plan_retention(&only, &policy(0, 0, 0)).is_empty());
    }

    #[test]
    fn in_progress_is_kept_and_failed_go_once_superseded() {
        let running = b(MONDAY - 10 * DAY, BackupState::InProgress);
        let old_fail = b(MONDAY - DAY, BackupState::Failed);
        let good = ok(MONDAY);
        let new_fail = b(MONDAY + H, BackupState::Failed);
        let gone = plan_retention(
            &[
                running.clone(),
                old_fail.clone(),
                good.clone(),
                new_fail.clone(),
            ],
            &policy(1, 0, 0),
        );
        assert_eq!(gone, vec![old_fail.id]);
        // No complete backup at all: failures stay as the record of why.
        let gone = plan_retention(&[old_fail, new_fail], &policy(0, 0, 0));
        assert!(gone.is_empty());
    }

    #[test]
    fn equal_timestamps_are_decided_deterministically() {
        let a = ok(MONDAY);
        let c = ok(MONDAY);
        let g1 = plan_retention(&[a.clone(), c.clone()], &policy(1, 0, 0));
        let g2 = plan_retention(&[c, a], &policy(1, 0, 0));
        assert_eq!(g1, g2);
        assert_eq!(g1.len(), 1);
    }
}

/// What the local-copy planner needs of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSeen {
    pub id: Uuid,
    pub created_at: Millis,
    pub state: BackupState,
    /// Its remote copy is stored (size checked).
    pub stored_remotely: bool,
    /// Its archive is on this host now.
    pub on_disk: bool,
}

/// The local archives to remove when only the newest `keep` per project
/// stay on this host (`backups.remote.keep_local`): complete backups past
/// the newest `keep` whose remote copy is stored. Never one without a
/// stored remote copy (it would be lost), never an in-progress or failed
/// one (not this planner's business), and only files that are there.
pub fn plan_local_eviction(backups: &[LocalSeen], keep: u32) -> Vec<Uuid> {
    let mut complete: Vec<&LocalSeen> = backups
        .iter()
        .filter(|b| b.state == BackupState::Complete)
        .collect();
    complete.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
    complete
        .into_iter()
        .skip(keep as usize)
        .filter(|b| b.stored_remotely && b.on_disk)
        .map(|b| b.id)
        .collect()
}

#[cfg(test)]
mod local_tests {
    use super::*;

    fn seen(n: u128, at: Millis, state: BackupState, stored: bool, on_disk: bool) -> LocalSeen {
        LocalSeen {
            id: Uuid::from_u128(n),
            created_at: at,
            state,
            stored_remotely: stored,
            on_disk,
        }
    }

    #[test]
    fn the_newest_stay_and_older_stored_ones_go() {
        use BackupState::Complete;
        let list = [
            seen(1, 100, Complete, true, true),
            seen(2, 300, Complete, true, true),
            seen(3, 200, Complete, true, true),
            seen(4, 400, Complete, true, true),
        ];
        // Input order does not matter: by time, newest first 4, 2, 3, 1.
        assert_eq!(
            plan_local_eviction(&list, 2),
            vec![Uuid::from_u128(3), Uuid::from_u128(1)]
        );
        assert_eq!(plan_local_eviction(&list, 4), Vec::<Uuid>::new());
        assert_eq!(plan_local_eviction(&list, 10), Vec::<Uuid>::new());
        assert_eq!(
            plan_local_eviction(&list, 0).len(),
            4,
            "0: none kept locally"
        );
    }

    #[test]
    fn nothing_without_a_stored_remote_copy_and_nothing_already_gone() {
        use BackupState::Complete;
        let list = [
            seen(1, 100, Complete, false, true),
            seen(2, 200, Complete, true, false),
            seen(3, 300, Complete, true, true),
            seen(4, 400, Complete, true, true),
        ];
        assert_eq!(plan_local_eviction(&list, 1), vec![Uuid::from_u128(3)]);
    }

    #[test]
    fn only_complete_backups_count_and_go() {
        use BackupState::{Complete, Failed, InProgress};
        let list = [
            seen(1, 100, Complete, true, true),
            seen(2, 500, InProgress, false, true),
            seen(3, 400, Failed, false, false),
            seen(4, 300, Complete, true, true),
        ];
        // The failed and in-progress ones neither use up `keep` nor go.
        assert_eq!(plan_local_eviction(&list, 1), vec![Uuid::from_u128(1)]);
    }

    #[test]
    fn equal_times_are_ordered_by_id_so_runs_agree() {
        use BackupState::Complete;
        let list = [
            seen(9, 100, Complete, true, true),
            seen(1, 100, Complete, true, true),
        ];
        assert_eq!(plan_local_eviction(&list, 1), vec![Uuid::from_u128(9)]);
    }
}

//! Several Berth processes ("replicas") on one database: when a replica
//! counts as gone, whose unfinished work is to be taken care of, and
//! whether a new replica may join the others. Pure: the service reads the
//! `replicas` table and the clock and asks these.
//!
//! Liveness is judged by heartbeat times written with each replica's own
//! clock and read with another's, so replicas' clocks must agree to well
//! within `replicas.dead_after_s` (NTP does).

use uuid::Uuid;

use super::Millis;

/// One replica's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: Uuid,
    /// Where it serves (`host:port`), for people.
    pub name: String,
    pub version: String,
    pub pid: i64,
    /// The id of the backup directory it writes archives to.
    pub archive_dir: String,
    /// The ID of the Docker engine it calls `local`.
    pub engine_id: String,
    pub started_at: Millis,
    pub heartbeat_at: Millis,
    /// When it stopped cleanly.
    pub stopped_at: Option<Millis>,
    /// When another replica took care of what it left under way.
    pub reaped_at: Option<Millis>,
    pub reaped_by: Option<Uuid>,
}

super::spelled_enum! {
    /// What a replica is doing, as far as the others can tell.
    pub enum ReplicaState("replica state") {
        /// Its heartbeat is recent.
        Live = "live",
        /// It stopped cleanly.
        Stopped = "stopped",
        /// It missed its heartbeats: killed, frozen or cut off.
        Gone = "gone",
    }
}

/// `[replicas]`: how often a replica beats, and after how long without a
/// beat it is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaPolicy {
    /// Seconds between a replica's heartbeats.
    pub heartbeat_s: u64,
    /// Seconds without a heartbeat after which a replica is gone and its
    /// unfinished work is taken care of by another.
    pub dead_after_s: u64,
}

impl Default for ReplicaPolicy {
    fn default() -> Self {
        ReplicaPolicy {
            heartbeat_s: 2,
            dead_after_s: 10,
        }
    }
}

impl ReplicaPolicy {
    fn dead_after_ms(&self) -> Millis {
        i64::try_from(self.dead_after_s.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// The rule a loaded configuration must follow, said as a fix.
    pub fn check(&self) -> Result<(), String> {
        if self.heartbeat_s == 0 {
            return Err("replicas.heartbeat_s must be at least 1".into());
        }
        if self.dead_after_s < self.heartbeat_s.saturating_mul(3) {
            return Err(format!(
                "replicas.dead_after_s ({}) must be at least three heartbeats (3 × replicas.heartbeat_s = {}): one late beat must not make a replica gone",
                self.dead_after_s,
                self.heartbeat_s.saturating_mul(3)
            ));
        }
        Ok(())
    }
}

impl Replica {
    pub fn state(&self, now: Millis, p: &ReplicaPolicy) -> ReplicaState {
        if self.stopped_at.is_some() {
            ReplicaState::Stopped
        } else if self.reaped_at.is_some()
            || now.saturating_sub(self.heartbeat_at) > p.dead_after_ms()
        {
            ReplicaState::Gone
        } else {
            ReplicaState::Live
        }
    }
}

/// The replicas whose unfinished work is to be taken care of now: not
/// `me`, not live, not yet reaped. A replica that stopped cleanly is
/// included (a backup its last request was writing stays `in_progress`).
pub fn to_reap(all: &[Replica], me: Uuid, now: Millis, p: &ReplicaPolicy) -> Vec<Uuid> {
    all.iter()
        .filter(|r| r.id != me && r.reaped_at.is_none() && r.state(now, p) != ReplicaState::Live)
        .map(|r| r.id)
        .collect()
}

/// How long a reaped replica's row stays listed (`GET /api/replicas`
/// shows who went, and when) before it is forgotten.
pub const FORGET_AFTER_MS: Millis = 24 * 3600 * 1000;

/// Reaped rows older than [`FORGET_AFTER_MS`].
pub fn to_forget(all: &[Replica], now: Millis) -> Vec<Uuid> {
    all.iter()
        .filter(|r| {
            r.reaped_at
                .is_some_and(|at| now.saturating_sub(at) > FORGET_AFTER_MS)
        })
        .map(|r| r.id)
        .collect()
}

/// What a replica about to start brings.
#[derive(Debug, Clone)]
pub struct Joining {
    pub archive_dir: String,
    pub engine_id: String,
    /// Archives also go to remote storage (`backups.remote`), where every
    /// replica can fetch them.
    pub remote_archives: bool,
}

/// Whether a replica may serve beside the live ones; the refusal says
/// what to change.
pub fn check_join(
    me: &Joining,
    all: &[Replica],
    my_id: Uuid,
    now: Millis,
    p: &ReplicaPolicy,
) -> Result<(), String> {
    for r in all
        .iter()
        .filter(|r| r.id != my_id && r.state(now, p) == ReplicaState::Live)
    {
        if r.engine_id != me.engine_id {
            return Err(format!(
                "replica {} calls another Docker engine its node 'local' (engine ID {}, this one {}): every replica must reach the same engine as 'local' (the same DOCKER_HOST), or workspaces on it would be looked for in the wrong place",
                r.name, r.engine_id, me.engine_id
            ));
        }
        if r.archive_dir != me.archive_dir && !me.remote_archives {
            return Err(format!(
                "replica {} keeps its backup archives in another directory than this one: with several replicas, each must reach every archive — set backups.remote.url (archives are then fetched from there when another replica made them) or give every replica the same backup directory (data_dir/backups on a shared file system)",
                r.name
            ));
        }
    }
    Ok(())
}

/// The replica a temporary file belongs to: files being written are named
/// `<name>.<replica id, 32 hex digits>.tmp`.
pub fn tmp_file_owner(file_name: &str) -> Option<Uuid> {
    let stem = file_name.strip_suffix(".tmp")?;
    let (_, tag) = stem.rsplit_once('.')?;
    (tag.len() == 32)
        .then(|| Uuid::parse_str(tag).ok())
        .flatten()
}

/// The temporary name of a file `name` that replica `me` is writing.
pub fn tmp_file_name(name: &str, me: Uuid) -> String {
    format!("{name}.{}.tmp", me.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: ReplicaPolicy = ReplicaPolicy {
        heartbeat_s: 2,
        dead_after_s: 10,
    };

    fn replica(beat: Millis) -> Replica {
        Replica {
            id: Uuid::new_v4(),
            name: "h:1".into(),
            version: "0".into(),
            pid: 1,
            archive_dir: "dir-a".into(),
            engine_id: "engine-a".into(),
            started_at: 0,
            heartbeat_at: beat,
            stopped_at: None,
            reaped_at: None,
            reaped_by: None,
        }
    }

    #[test]
    fn a_replica_is_gone_after_missing_its_heartbeats() {
        let r = replica(100_000);
        assert_eq!(r.state(100_000, &P), ReplicaState::Live);
        assert_eq!(r.state(110_000, &P), ReplicaState::Live);
        assert_eq!(r.state(110_001, &P), ReplicaState::Gone);
        // A clock a little behind the writer's is no reason to worry.
        assert_eq!(r.state(99_000, &P), ReplicaState::Live);
        let stopped = Replica {
            stopped_at: Some(100_500),
            ..r
        };
        assert_eq!(stopped.state(100_600, &P), ReplicaState::Stopped);
        assert_eq!(stopped.state(500_000, &P), ReplicaState::Stopped);
        // Taken for gone by the others: gone, whatever its heartbeat says.
        let reaped = Replica {
            reaped_at: Some(100_100),
            ..replica(100_000)
        };
        assert_eq!(reaped.state(100_200, &P), ReplicaState::Gone);
    }

    #[test]
    fn the_gone_and_the_stopped_are_reaped_once_never_me_or_the_live() {
        let now = 1_000_000;
        let me = replica(now);
        let live = replica(now - 5_000);
        let gone = replica(now - 60_000);
        let stopped = Replica {
            stopped_at: Some(now - 1_000),
            ..replica(now - 1_000)
        };
        let reaped = Replica {
            reaped_at: Some(now - 30_000),
            ..replica(now - 90_000)
        };
        // Me, even if my own row looks old (a long pause of this process).
        let me_old = Replica {
            heartbeat_at: now - 60_000,
            ..me.clone()
        };
        let all = vec![
            me_old,
            live.clone(),
            gone.clone(),
            stopped.clone(),
            reaped.clone(),
        ];
        let mut got = to_reap(&all, me.id, now, &P);
        got.sort();
        let mut want = vec![gone.id, stopped.id];
        want.sort();
        assert_eq!(got, want);
        assert!(to_forget(&all, now).is_empty());
        assert_eq!(to_forget(&all, now + FORGET_AFTER_MS), vec![reaped.id]);
    }

    #[test]
    fn a_replica_joins_only_with_the_same_engine_and_reachable_archives() {
        let now = 1_000_000;
        let me_id = Uuid::new_v4();
        let other = replica(now - 1_000);
        let same = Joining {
            archive_dir: "dir-a".into(),
            engine_id: "engine-a".into(),
            remote_archives: false,
        };
        assert!(check_join(&same, std::slice::from_ref(&other), me_id, now, &P).is_ok());
        // Another directory: only with remote storage.
        let elsewhere = Joining {
            archive_dir: "dir-b".into(),
            ..same.clone()
        };
        let e = check_join(&elsewhere, std::slice::from_ref(&other), me_id, now, &P).unwrap_err();
        assert!(e.contains("backups.remote.url"), "{e}");
        let remote = Joining {
            remote_archives: true,
            ..elsewhere.clone()
        };
        assert!(check_join(&remote, std::slice::from_ref(&other), me_id, now, &P).is_ok());
        // Another engine as 'local': never.
        let engine = Joining {
            engine_id: "engine-b".into(),
            ..remote.clone()
        };
        let e = check_join(&engine, std::slice::from_ref(&other), me_id, now, &P).unwrap_err();
        assert!(e.contains("DOCKER_HOST"), "{e}");
        // Replicas that are gone or stopped do not count; nor do I.
        let gone = replica(now - 60_000);
        let stopped = Replica {
            stopped_at: Some(now),
            ..replica(now)
        };
        let me_row = Replica {
            id: me_id,
            engine_id: "x".into(),
            ..replica(now)
        };
        assert!(check_join(&engine, &[gone, stopped, me_row], me_id, now, &P).is_ok());
    }

    #[test]
    fn temporary_files_name_their_replica() {
        let me = Uuid::new_v4();
        let name = tmp_file_name("0f.tar.zst", me);
        assert_eq!(tmp_file_owner(&name), Some(me));
        assert_eq!(tmp_file_owner("0f.tar.zst.tmp"), None);
        assert_eq!(tmp_file_owner("0f.tar.zst"), None);
        assert_eq!(tmp_file_owner("x.upload.tmp"), None);
    }

    #[test]
    fn the_policy_keeps_a_margin_of_three_beats() {
        assert!(P.check().is_ok());
        let tight = ReplicaPolicy {
            heartbeat_s: 5,
            dead_after_s: 10,
        };
        assert!(tight.check().unwrap_err().contains("three heartbeats"));
        assert!(ReplicaPolicy {
            heartbeat_s: 0,
            dead_after_s: 10
        }
        .check()
        .is_err());
    }
}

//! A container's CPU and memory use right now. Read straight from the
//! container's cgroup files when Berth runs on the engine's host (a few
//! small file reads, microseconds), else from the engine's one-shot stats
//! (about half a second per container).
//!
//! Memory usage excludes the inactive page cache, as the docker CLI does
//! (cgroup v1 `total_inactive_file`, v2 `inactive_file`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;

use super::{Engine, Result};

/// One reading of a container's resource counters.
#[derive(Debug, Clone)]
pub struct ResourceSample {
    /// CPU time used since the container started, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, page cache excluded, in bytes.
    pub memory_usage: u64,
    /// Inactive page cache, in bytes.
    pub memory_cache: u64,
    /// The memory limit in bytes; `None` when unlimited.
    pub memory_limit: Option<u64>,
    pub at: Instant,
    /// Where the figures came from: `cgroup` or `engine`.
    pub source: &'static str,
}

/// Limits at or above this are "unlimited" (cgroup v1 reports a page-aligned
/// i64::MAX).
const UNLIMITED: u64 = 1 << 62;

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn stat_field(p: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(p).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The cgroup directories a container may have, by driver and version.
fn v1_dirs(root: &Path, controller: &str, id: &str) -> [PathBuf; 2] {
    [
        root.join(controller).join("docker").join(id),
        root.join(controller)
            .join("system.slice")
            .join(format!("docker-{id}.scope")),
    ]
}

fn v2_dirs(root: &Path, id: &str) -> [PathBuf; 2] {
    [
        root.join("system.slice").join(format!("docker-{id}.scope")),
        root.join("docker").join(id),
    ]
}

/// Reads a container's counters from the cgroup filesystem under `root`
/// (normally `/sys/fs/cgroup`); `None` when they are not visible here.
pub fn read_cgroup(root: &Path, id: &str) -> Option<ResourceSample> {
    let at = Instant::now();
    // cgroup v2: one unified directory.
    for dir in v2_dirs(root, id) {
        if dir.join("memory.current").exists() {
            let usage = read_u64(&dir.join("memory.current"))?;
            let cache = stat_field(&dir.join("memory.stat"), "inactive_file").unwrap_or(0);
            let limit = std::fs::read_to_string(dir.join("memory.max"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            let cpu_us = stat_field(&dir.join("cpu.stat"), "usage_usec")?;
            return Some(ResourceSample {
                cpu_ns: cpu_us.saturating_mul(1000),
                memory_usage: usage.saturating_sub(cache),
                memory_cache: cache,
                memory_limit: limit.filter(|&l| l < UNLIMITED),
                at,
                source: "cgroup",
            });
        }
    }
    // cgroup v1: one directory per controller.
    let mem = v1_dirs(root, "memory", id)
        .into_iter()
        .find(|d| d.join("memory.usage_in_bytes").exists())?;
    let cpu = v1_dirs(root, "cpuacct", id)
        .into_iter()
        .find(|d| d.join("cpuacct.usage").exists())?;
    let usage = read_u64(&mem.join("memory.usage_in_bytes"))?;
    let cache = stat_field(&mem.join("memory.stat"), "total_inactive_file").unwrap_or(0);
    let limit = read_u64(&mem.join("memory.limit_in_bytes"));
    Some(ResourceSample {
        cpu_ns: read_u64(&cpu.join("cpuacct.usage"))?,
        memory_usage: usage.saturating_sub(cache),
        memory_cache: cache,
        memory_limit: limit.filter(|&l| l < UNLIMITED),
        at,
        source: "cgroup",
    })
}

/// CPU use between two samples, in percent of one core (200 = two cores
/// busy), as `docker stats` shows it. `None` when no time passed.
pub fn cpu_percent(earlier: &ResourceSample, later: &ResourceSample) -> Option<f64> {
    let wall = later.at.checked_duration_since(earlier.at)?.as_nanos() as f64;
    if wall <= 0.0 {
        return None;
    }
    let used = later.cpu_ns.saturating_sub(earlier.cpu_ns) as f64;
    Some(used / wall * 100.0)
}

impl Engine {
    /// The container's counters now; `None` when it is not running.
    pub async fn sample_resources(&self, id: &str) -> Result<Option<ResourceSample>> {
        // Full ids only: the cgroup directories are named by them.
        if id.len() == 64 {
            if let Some(s) = read_cgroup(Path::new("/sys/fs/cgroup"), id) {
                return Ok(Some(s));
            }
        }
        let opts = StatsOptionsBuilder::new()
            .stream(false)
            .one_shot(true)
            .build();
        let mut stream = self.docker.stats(id, Some(opts));
        let Some(r) = stream.next().await else {
            return Ok(None);
        };
        let stats = match r {
            Ok(s) => s,
            Err(e) => {
                return match super::EngineError::from(e) {
                    super::EngineError::NotFound(_) => Ok(None),
                    other => Err(other),
                }
            }
        };
        let mem = stats.memory_stats.unwrap_or_default();
        let Some(usage) = mem.usage else {
            // A stopped container answers with empty figures.
            return Ok(None);
        };
        let extra = mem.stats.unwrap_or_default();
        let cache = extra
            .get("total_inactive_file")
            .or_else(|| extra.get("inactive_file"))
            .copied()
            .unwrap_or(0);
        Ok(Some(ResourceSample {
            cpu_ns: stats
                .cpu_stats
                .and_then(|c| c.cpu_usage)
                .and_then(|u| u.total_usage)
                .unwrap_or(0),
            memory_usage: usage.saturating_sub(cache),
            memory_cache: cache,
            memory_limit: mem.limit.filter(|&l| l < UNLIMITED),
            at: Instant::now(),
            source: "engine",
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn reads_cgroup_v1_and_excludes_inactive_cache() {
        let root = tempfile::tempdir().unwrap();
        let id = "a".repeat(64);
        let mem = root.path().join("memory/docker").join(&id);
        write(&mem.join("memory.usage_in_bytes"), "10485760\n");
        write(&mem.join("memory.limit_in_bytes"), "67108864\n");
        write(
            &mem.join("memory.stat"),
            "cache 5000000\ninactive_file 1\ntotal_inactive_file 4194304\n",
        );
        write(
            &root
                .path()
                .join("cpuacct/docker")
                .join(&id)
                .join("cpuacct.usage"),
            "123456789\n",
        );
        let s = read_cgroup(root.path(), &id).unwrap();
        assert_eq!(s.memory_usage, 10_485_760 - 4_194_304);
        assert_eq!(s.memory_cache, 4_194_304);
        assert_eq!(s.memory_limit, Some(67_108_864));
        assert_eq!(s.cpu_ns, 123_456_789);
    }

    #[test]
    fn reads_cgroup_v2_with_unlimited_memory() {
        let root = tempfile::tempdir().unwrap();
        let id = "b".repeat(64);
        let dir = root
            .path()
            .join("system.slice")
            .join(format!("docker-{id}.scope"));
        write(&dir.join("memory.current"), "2000\n");
        write(&dir.join("memory.max"), "max\n");
        write(&dir.join("memory.stat"), "anon 1\ninactive_file 500\n");
        write(&dir.join("cpu.stat"), "usage_usec 7\nuser_usec 5\n");
        let s = read_cgroup(root.path(), &id).unwrap();
        assert_eq!(s.memory_usage, 1500);
        assert_eq!(s.memory_limit, None);
        assert_eq!(s.cpu_ns, 7000);
    }

    #[test]
    fn missing_cgroups_are_none() {
        let root = tempfile::tempdir().unwrap();
        assert!(read_cgroup(root.path(), &"c".repeat(64)).is_none());
    }

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let t0 = Instant::now();
        let a = ResourceSample {
            cpu_ns: 1_000_000_000,
            memory_usage: 0,
            memory_cache: 0,
            memory_limit: None,
            at: t0,
            source: "cgroup",
        };
        let mut b = a.clone();
        b.at = t0 + Duration::from_secs(2);
        b.cpu_ns = 2_000_000_000;
        assert_eq!(cpu_percent(&a, &b), Some(50.0));
        b.cpu_ns = 5_000_000_000;
        assert_eq!(cpu_percent(&a, &b), Some(200.0));
        assert_eq!(cpu_percent(&b, &a), None, "time cannot run backwards");
        assert_eq!(cpu_percent(&a, &a), None);
    }
}

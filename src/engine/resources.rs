//! A container's resource counters right now: CPU time, memory, network,
//! block I/O, pids. Read straight from the host's cgroup and /proc files
//! when Berth runs on the engine's host (a few small file reads,
//! microseconds), else from the engine's one-shot stats (about half a second
//! per container).
//!
//! Memory usage excludes the inactive page cache, as the docker CLI does
//! (cgroup v1 `total_inactive_file`, v2 `inactive_file`). Percentages are
//! computed from two samples by [`cpu_percent`]; a sample alone is counters.

use crate::domain::SampleSource;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bollard::query_parameters::StatsOptionsBuilder;
use futures_util::StreamExt;

use super::{Engine, Result};

/// Traffic of one network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetIo {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

/// One reading of a container's resource counters.
#[derive(Debug, Clone)]
pub struct ResourceSample {
    /// CPU time used since the container started, in nanoseconds.
    pub cpu_ns: u64,
    /// CPU time of the whole host (all CPUs), in nanoseconds, when known.
    pub system_ns: Option<u64>,
    /// CPUs the host has online.
    pub online_cpus: u32,
    /// Memory in use, page cache excluded, in bytes.
    pub memory_usage: u64,
    /// Inactive page cache, in bytes.
    pub memory_cache: u64,
    /// The memory limit in bytes; `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// Per interface (loopback left out, as the docker CLI does).
    pub networks: BTreeMap<String, NetIo>,
    pub blk_read: u64,
    pub blk_write: u64,
    pub pids: Option<u64>,
    pub at: Instant,
    /// Where the figures came from: `cgroup` or `engine`.
    pub source: SampleSource,
}

/// Limits at or above this are "unlimited" (cgroup v1 reports a page-aligned
/// i64::MAX).
const UNLIMITED: u64 = 1 << 62;

/// USER_HZ: /proc/stat counts in 1/100 s on every Linux platform Docker runs on.
const NS_PER_TICK: u64 = 10_000_000;

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

/// Host CPU time and online CPUs from `/proc/stat`.
pub fn read_proc_stat(proc_root: &Path) -> Option<(u64, u32)> {
    let text = std::fs::read_to_string(proc_root.join("stat")).ok()?;
    let mut total = None;
    let mut cpus = 0u32;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("cpu ") {
            let ticks: u64 = rest
                .split_whitespace()
                .filter_map(|f| f.parse::<u64>().ok())
                .sum();
            total = Some(ticks.saturating_mul(NS_PER_TICK));
        } else if line.starts_with("cpu") {
            cpus += 1;
        }
    }
    Some((total?, cpus.max(1)))
}

/// Interface counters from a `/proc/<pid>/net/dev` text.
pub fn parse_net_dev(text: &str) -> BTreeMap<String, NetIo> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if f.len() < 10 {
            continue;
        }
        out.insert(
            name.to_string(),
            NetIo {
                rx_bytes: f[0],
                rx_packets: f[1],
                tx_bytes: f[8],
                tx_packets: f[9],
            },
        );
    }
    out
}

/// Read and write bytes from cgroup v1 `blkio.throttle.io_service_bytes`
/// or v2 `io.stat` text.
fn parse_blkio(v1: Option<String>, v2: Option<String>) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    if let Some(t) = v1 {
        for l in t.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() == 3 {
                let n: u64 = f[2].parse().unwrap_or(0);
                match f[1] {
                    "Read" => r += n,
                    "Write" => w += n,
                    _ => {}
                }
            }
        }
    } else if let Some(t) = v2 {
        for l in t.lines() {
            for kv in l.split_whitespace().skip(1) {
                if let Some((k, v)) = kv.split_once('=') {
                    let n: u64 = v.parse().unwrap_or(0);
                    match k {
                        "rbytes" => r += n,
                        "wbytes" => w += n,
                        _ => {}
                    }
                }
            }
        }
    }
    (r, w)
}

/// Reads a container's counters from the cgroup filesystem under `cg_root`
/// (normally `/sys/fs/cgroup`) and `proc_root` (`/proc`); `pid` is the
/// container's main process on the host, for its network counters. `None`
/// when the cgroup is not visible from here.
pub fn read_cgroup(
    cg_root: &Path,
    proc_root: &Path,
    id: &str,
    pid: Option<u32>,
) -> Option<ResourceSample> {
    let at = Instant::now();
    let (system_ns, online_cpus) = match read_proc_stat(proc_root) {
        Some((s, n)) => (Some(s), n),
        None => (None, 1),
    };
    let networks = pid
        .filter(|&p| p > 0)
        .and_then(|p| std::fs::read_to_string(proc_root.join(p.to_string()).join("net/dev")).ok())
        .map(|t| parse_net_dev(&t))
        .unwrap_or_default();
    // cgroup v2: one unified directory.
    for dir in v2_dirs(cg_root, id) {
        if dir.join("memory.current").exists() {
            let usage = read_u64(&dir.join("memory.current"))?;
            let cache = stat_field(&dir.join("memory.stat"), "inactive_file").unwrap_or(0);
            let limit = std::fs::read_to_string(dir.join("memory.max"))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            let cpu_us = stat_field(&dir.join("cpu.stat"), "usage_usec")?;
            let (blk_read, blk_write) =
                parse_blkio(None, std::fs::read_to_string(dir.join("io.stat")).ok());
            return Some(ResourceSample {
                cpu_ns: cpu_us.saturating_mul(1000),
                system_ns,
                online_cpus,
                memory_usage: usage.saturating_sub(cache),
                memory_cache: cache,
                memory_limit: limit.filter(|&l| l < UNLIMITED),
                networks,
                blk_read,
                blk_write,
                pids: read_u64(&dir.join("pids.current")),
                at,
                source: SampleSource::Cgroup,
            });
        }
    }
    // cgroup v1: one directory per controller.
    let find = |controller: &str, file: &str| {
        v1_dirs(cg_root, controller, id)
            .into_iter()
            .find(|d| d.join(file).exists())
    };
    let mem = find("memory", "memory.usage_in_bytes")?;
    let cpu = find("cpuacct", "cpuacct.usage")?;
    let usage = read_u64(&mem.join("memory.usage_in_bytes"))?;
    let cache = stat_field(&mem.join("memory.stat"), "total_inactive_file").unwrap_or(0);
    let limit = read_u64(&mem.join("memory.limit_in_bytes"));
    let (blk_read, blk_write) = parse_blkio(
        find("blkio", "blkio.throttle.io_service_bytes")
            .and_then(|d| std::fs::read_to_string(d.join("blkio.throttle.io_service_bytes")).ok()),
        None,
    );
    Some(ResourceSample {
        cpu_ns: read_u64(&cpu.join("cpuacct.usage"))?,
        system_ns,
        online_cpus,
        memory_usage: usage.saturating_sub(cache),
        memory_cache: cache,
        memory_limit: limit.filter(|&l| l < UNLIMITED),
        networks,
        blk_read,
        blk_write,
        pids: find("pids", "pids.current").and_then(|d| read_u64(&d.join("pids.current"))),
        at,
        source: SampleSource::Cgroup,
    })
}

/// CPU use between two samples in percent of one core (200 = two cores
/// busy), as `docker stats` shows it: Δcontainer / Δsystem × online CPUs ×
/// 100 when both samples know the host's CPU time, else Δcontainer / Δwall
/// × 100. `None` when no time passed.
pub fn cpu_percent(earlier: &ResourceSample, later: &ResourceSample) -> Option<f64> {
    let used = later.cpu_ns.saturating_sub(earlier.cpu_ns) as f64;
    if let (Some(s0), Some(s1)) = (earlier.system_ns, later.system_ns) {
        let system = s1.saturating_sub(s0) as f64;
        if system > 0.0 {
            return Some(used / system * f64::from(later.online_cpus.max(1)) * 100.0);
        }
    }
    let wall = later.at.checked_duration_since(earlier.at)?.as_nanos() as f64;
    if wall <= 0.0 {
        return None;
    }
    Some(used / wall * 100.0)
}

impl Engine {
    /// The container's counters now; `None` when it is not running. `pid`
    /// (the main process on the host) enables network counters from /proc.
    /// A sample from the cgroup files alone, where this process can see
    /// them (a host-local engine, a full container id): no engine call.
    pub fn sample_local(&self, id: &str, pid: Option<u32>) -> Option<ResourceSample> {
        if !(self.host_local && id.len() == 64) {
            return None;
        }
        read_cgroup(Path::new("/sys/fs/cgroup"), Path::new("/proc"), id, pid)
    }

    pub async fn sample_resources(
        &self,
        id: &str,
        pid: Option<u32>,
    ) -> Result<Option<ResourceSample>> {
        // Full ids only: the cgroup directories are named by them. Another
        // host's container has no files here (and its pid is not ours).
        if let Some(s) = self.sample_local(id, pid) {
            return Ok(Some(s));
        }
        self.sample_from_engine(id).await
    }

    /// The engine's one-shot stats, as a sample.
    pub async fn sample_from_engine(&self, id: &str) -> Result<Option<ResourceSample>> {
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
        let cpu = stats.cpu_stats.unwrap_or_default();
        let online = cpu.online_cpus.filter(|&n| n > 0).unwrap_or_else(|| {
            cpu.cpu_usage
                .as_ref()
                .and_then(|u| u.percpu_usage.as_ref())
                .map(|p| p.len() as u32)
                .unwrap_or(1)
                .max(1)
        });
        let networks = stats
            .networks
            .unwrap_or_default()
            .into_iter()
            .map(|(k, n)| {
                (
                    k,
                    NetIo {
                        rx_bytes: n.rx_bytes.unwrap_or(0),
                        tx_bytes: n.tx_bytes.unwrap_or(0),
                        rx_packets: n.rx_packets.unwrap_or(0),
                        tx_packets: n.tx_packets.unwrap_or(0),
                    },
                )
            })
            .collect();
        let (mut blk_read, mut blk_write) = (0, 0);
        for e in stats
            .blkio_stats
            .and_then(|b| b.io_service_bytes_recursive)
            .unwrap_or_default()
        {
            match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => blk_read += e.value.unwrap_or(0),
                Some("write") => blk_write += e.value.unwrap_or(0),
                _ => {}
            }
        }
        Ok(Some(ResourceSample {
            cpu_ns: cpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
            system_ns: cpu.system_cpu_usage,
            online_cpus: online,
            memory_usage: usage.saturating_sub(cache),
            memory_cache: cache,
            memory_limit: mem.limit.filter(|&l| l < UNLIMITED),
            networks,
            blk_read,
            blk_write,
            pids: stats.pids_stats.and_then(|p| p.current),
            at: Instant::now(),
            source: SampleSource::Engine,
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

    fn proc_root() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        write(
            &d.path().join("stat"),
            "cpu  100 0 50 850 0 0 0 0 0 0\ncpu0 50 0 25 425 0 0 0 0 0 0\ncpu1 50 0 25 425 0 0 0 0 0 0\nintr 1\n",
        );
        write(
            &d.path().join("42/net/dev"),
            "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n  eth0: 200 2 0 0 0 0 0 0 300 3 0 0 0 0 0 0\n",
        );
        d
    }

    #[test]
    fn reads_cgroup_v1_and_excludes_inactive_cache() {
        let root = tempfile::tempdir().unwrap();
        let proc = proc_root();
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
        write(
            &root
                .path()
                .join("blkio/docker")
                .join(&id)
                .join("blkio.throttle.io_service_bytes"),
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\n8:16 Read 1\nTotal 12289\n",
        );
        write(
            &root
                .path()
                .join("pids/docker")
                .join(&id)
                .join("pids.current"),
            "3\n",
        );
        let s = read_cgroup(root.path(), proc.path(), &id, Some(42)).unwrap();
        assert_eq!(s.memory_usage, 10_485_760 - 4_194_304);
        assert_eq!(s.memory_cache, 4_194_304);
        assert_eq!(s.memory_limit, Some(67_108_864));
        assert_eq!(s.cpu_ns, 123_456_789);
        assert_eq!(s.system_ns, Some(1000 * NS_PER_TICK));
        assert_eq!(s.online_cpus, 2);
        assert_eq!((s.blk_read, s.blk_write), (4097, 8192));
        assert_eq!(s.pids, Some(3));
        assert_eq!(s.networks.len(), 1, "loopback left out");
        assert_eq!(
            s.networks["eth0"],
            NetIo {
                rx_bytes: 200,
                rx_packets: 2,
                tx_bytes: 300,
                tx_packets: 3
            }
        );
    }

    #[test]
    fn reads_cgroup_v2_with_unlimited_memory() {
        let root = tempfile::tempdir().unwrap();
        let proc = proc_root();
        let id = "b".repeat(64);
        let dir = root
            .path()
            .join("system.slice")
            .join(format!("docker-{id}.scope"));
        write(&dir.join("memory.current"), "2000\n");
        write(&dir.join("memory.max"), "max\n");
        write(&dir.join("memory.stat"), "anon 1\ninactive_file 500\n");
        write(&dir.join("cpu.stat"), "usage_usec 7\nuser_usec 5\n");
        write(
            &dir.join("io.stat"),
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n8:16 rbytes=1 wbytes=2\n",
        );
        write(&dir.join("pids.current"), "4\n");
        let s = read_cgroup(root.path(), proc.path(), &id, None).unwrap();
        assert_eq!(s.memory_usage, 1500);
        assert_eq!(s.memory_limit, None);
        assert_eq!(s.cpu_ns, 7000);
        assert_eq!((s.blk_read, s.blk_write), (11, 22));
        assert_eq!(s.pids, Some(4));
        assert!(s.networks.is_empty());
    }

    #[test]
    fn missing_cgroups_are_none() {
        let root = tempfile::tempdir().unwrap();
        assert!(read_cgroup(root.path(), root.path(), &"c".repeat(64), None).is_none());
    }

    fn sample(cpu_ns: u64, system_ns: Option<u64>, at: Instant) -> ResourceSample {
        ResourceSample {
            cpu_ns,
            system_ns,
            online_cpus: 2,
            memory_usage: 0,
            memory_cache: 0,
            memory_limit: None,
            networks: BTreeMap::new(),
            blk_read: 0,
            blk_write: 0,
            pids: None,
            at,
            source: SampleSource::Cgroup,
        }
    }

    #[test]
    fn cpu_percent_follows_the_docker_cli() {
        let t0 = Instant::now();
        // 1 s of CPU over 4 s of host CPU time on 2 CPUs (2 s wall): 50 %.
        let a = sample(1_000_000_000, Some(10_000_000_000), t0);
        let b = sample(
            2_000_000_000,
            Some(14_000_000_000),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(cpu_percent(&a, &b), Some(50.0));
        // Zero system delta: falls back to wall time.
        let c = sample(
            2_000_000_000,
            Some(10_000_000_000),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(cpu_percent(&a, &c), Some(50.0));
        // No system figures at all: wall time.
        let d = sample(1_000_000_000, None, t0);
        let e = sample(5_000_000_000, None, t0 + Duration::from_secs(2));
        assert_eq!(cpu_percent(&d, &e), Some(200.0));
        assert_eq!(cpu_percent(&e, &d), None, "time cannot run backwards");
        assert_eq!(cpu_percent(&d, &d), None);
    }
}

//! Nodes: the Docker engines Berth places workspaces on. What a node is
//! (a name, an endpoint, the address its published ports answer on, labels,
//! an operator's cordon), the rules its values obey, and how a heartbeat's
//! history becomes the condition the placement planner reads. Pure: the
//! service pings, this decides.
//!
//! The engine Berth connects to at start (`DOCKER_HOST`, else the local
//! socket) is the node [`LOCAL`]: it always exists, so one host needs no
//! configuration and behaves as before nodes existed.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::placement::NodeCondition;
use super::Millis;

/// The name of the engine Berth starts with.
pub const LOCAL: &str = "local";

/// How many labels a node may carry (a guard against a runaway request).
pub const MAX_LABELS: usize = 32;

/// Where a node's engine answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The engine Berth started with (`DOCKER_HOST` or the local socket):
    /// the `local` node's only endpoint.
    Default,
    /// A unix socket on Berth's host, e.g. `unix:///run/docker-b.sock`.
    Unix(String),
    /// TCP, e.g. `tcp://10.0.0.2:2376` (TLS when the node has client
    /// certificates: Docker's convention is 2376 for TLS, 2375 plain).
    Tcp { host: String, port: u16 },
}

impl Endpoint {
    /// Reads an endpoint as an operator writes it.
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') || path.len() < 2 {
                return Err(format!(
                    "endpoint {s:?}: a unix socket needs an absolute path, e.g. unix:///run/docker.sock"
                ));
            }
            if path.contains('\0') || path.split('/').any(|c| c == "..") {
                return Err(format!(
                    "endpoint {s:?}: the socket path may not contain '..'"
                ));
            }
            return Ok(Endpoint::Unix(path.to_string()));
        }
        if let Some(rest) = s.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = split_host_port(rest).ok_or_else(|| {
                format!("endpoint {s:?}: write tcp://HOST:PORT, e.g. tcp://10.0.0.2:2376")
            })?;
            check_host(host).map_err(|e| format!("endpoint {s:?}: {e}"))?;
            return Ok(Endpoint::Tcp {
                host: host.to_string(),
                port,
            });
        }
        if s.starts_with("ssh://") {
            return Err(format!(
                "endpoint {s:?}: ssh:// is not supported; expose the engine on tcp:// with TLS client certificates (see README, \"Adding a Docker host\")"
            ));
        }
        Err(format!(
            "endpoint {s:?}: use unix:///path/to/docker.sock or tcp://HOST:PORT"
        ))
    }

    /// The URL the engine client is given (`tcp://` as is; TLS is chosen by the
    /// certificates, not the scheme).
    pub fn url(&self) -> String {
        match self {
            Endpoint::Default => "default".into(),
            Endpoint::Unix(p) => format!("unix://{p}"),
            Endpoint::Tcp { host, port } => {
                if host.contains(':') {
                    format!("tcp://[{host}]:{port}")
                } else {
                    format!("tcp://{host}:{port}")
                }
            }
        }
    }
}

fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        (h, p)
    } else {
        let (h, p) = s.rsplit_once(':')?;
        if h.contains(':') {
            return None;
        }
        (h, p)
    };
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    Some((host, port))
}

/// A host name or IP literal, as DNS allows it.
fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{host:?} is neither an IP address nor a host name"))
    }
}

/// Checks a node's name: 1–32 of `a-z 0-9 -`, starting with a letter (it
/// appears in metrics labels, messages and later in hostnames).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node name {name:?}: use 1-32 lowercase letters, digits and '-', starting with a letter"
        ))
    }
}

/// Checks the address a node's published ports are reached on from Berth:
/// an IP literal or a host name.
pub fn check_address(address: &str) -> Result<(), String> {
    check_host(address).map_err(|e| format!("address: {e}"))
}

/// Checks labels: keys of `a-z 0-9 . _ / -` (1–63), values printable
/// without spaces (0–63), at most [`MAX_LABELS`].
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("at most {MAX_LABELS} labels per node"));
    }
    for (k, v) in labels {
        let key_ok = (1..=63).contains(&k.len())
            && k.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '/' | '-')
            });
        if !key_ok {
            return Err(format!(
                "label key {k:?}: use 1-63 of lowercase letters, digits, '.', '_', '/', '-'"
            ));
        }
        if v.len() > 63 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "label {k}={v:?}: a value is at most 63 characters without spaces"
            ));
        }
    }
    Ok(())
}

/// Reads `key=value` pairs, as the CLI and the config take labels.
pub fn parse_labels<'a>(
    pairs: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("label {p:?}: write key=value, e.g. disk=ssd"))?;
        labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    check_labels(&labels)?;
    Ok(labels)
}

/// What an operator set on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Schedule {
    /// Nothing new is placed here.
    pub cordoned: bool,
    /// Its projects are being moved away.
    pub draining: bool,
}

/// What the heartbeat has seen of a node so far.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heartbeat {
    /// The last answer (ping and info), if any.
    pub last_ok: Option<Millis>,
    /// The first failure since the last answer: unreachable since then.
    pub failing_since: Option<Millis>,
    /// Why the last beat failed.
    pub error: Option<String>,
}

impl Heartbeat {
    /// The next state after a beat at `now`.
    pub fn after(&self, now: Millis, outcome: Result<(), String>) -> Heartbeat {
        match outcome {
            Ok(()) => Heartbeat {
                last_ok: Some(now),
                failing_since: None,
                error: None,
            },
            Err(e) => Heartbeat {
                last_ok: self.last_ok,
                failing_since: Some(self.failing_since.unwrap_or(now)),
                error: Some(e),
            },
        }
    }

    /// Whether the node answered the last beat (`None`: not asked yet).
    pub fn reachable(&self) -> Option<bool> {
        match (self.last_ok, self.failing_since) {
            (_, Some(_)) => Some(false),
            (Some(_), None) => Some(true),
            (None, None) => None,
        }
    }
}

/// The state a node is shown in, most telling first: an unreachable node is
/// shown so even when cordoned (that is what an operator must act on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// No heartbeat yet (just added or Berth just started).
    Connecting,
    Ready,
    Unreachable,
    Cordoned,
    Draining,
}

impl NodeState {
    pub fn of(beat: &Heartbeat, schedule: Schedule) -> NodeState {
        match beat.reachable() {
            Some(false) => NodeState::Unreachable,
            None => NodeState::Connecting,
            Some(true) if schedule.draining => NodeState::Draining,
            Some(true) if schedule.cordoned => NodeState::Cordoned,
            Some(true) => NodeState::Ready,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Connecting => "connecting",
            NodeState::Ready => "ready",
            NodeState::Unreachable => "unreachable",
            NodeState::Cordoned => "cordoned",
            NodeState::Draining => "draining",
        }
    }

    /// How the placement planner sees it: a node not heard from yet takes
    /// nothing (as if unreachable) until its first answer.
    pub fn condition(self) -> NodeCondition {
        match self {
            NodeState::Ready => NodeCondition::Ready,
            NodeState::Connecting | NodeState::Unreachable => NodeCondition::Unreachable,
            NodeState::Cordoned => NodeCondition::Cordoned,
            NodeState::Draining => NodeCondition::Draining,
        }
    }
}

/// How a node's drain goes: any replica reads it (the `progress`
/// table), the one that runs it writes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrainProgress {
    pub node: String,
    pub started_at: super::Millis,
    pub finished_at: Option<super::Millis>,
    /// Projects on the node when the drain began.
    pub total: usize,
    /// The project being moved now.
    pub current: Option<uuid::Uuid>,
    /// Moved: project, where to, seconds.
    pub moved: Vec<(uuid::Uuid, String, f64)>,
    /// Not moved: project and why (they stay on the node).
    pub failed: Vec<(uuid::Uuid, String)>,
    /// Why it ended before it finished (the replica running it was gone).
    pub interrupted: Option<String>,
}

/// " (node n1)" for a node other than `local`, for messages that name the
/// Docker host.
pub fn on_node(node: &str) -> String {
    if node == LOCAL {
        String::new()
    } else {
        format!(" (node {node})")
    }
}

/// The client certificates of a TLS node (PEM text).
#[derive(Debug, Clone)]
pub struct NodeTls {
    pub ca: String,
    pub cert: String,
    pub key: crate::secret::Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_read_as_operators_write_them() {
        assert_eq!(
            Endpoint::parse("unix:///run/docker.sock").unwrap(),
            Endpoint::Unix("/run/docker.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://10.231.0.2:2376/").unwrap(),
            Endpoint::Tcp {
                host: "10.231.0.2".into(),
                port: 2376
            }
        );
        let v6 = Endpoint::parse("tcp://[fd00::2]:2376").unwrap();
        assert_eq!(v6.url(), "tcp://[fd00::2]:2376");
        assert_eq!(
            Endpoint::parse("tcp://docker-b.internal:2375")
                .unwrap()
                .url(),
            "tcp://docker-b.internal:2375"
        );
        for bad in [
            "",
            "10.0.0.2:2376",
            "http://10.0.0.2:2375",
            "tcp://10.0.0.2",
            "tcp://10.0.0.2:0",
            "tcp://10.0.0.2:99999",
            "tcp://:2375",
            "tcp://fd00::2:2375",
            "tcp://bad_host:2375",
            "unix://relative.sock",
            "unix:///run/../etc/x",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad:?} accepted");
        }
        let ssh = Endpoint::parse("ssh://user@b").unwrap_err();
        assert!(ssh.contains("tcp://"), "{ssh}");
    }

    #[test]
    fn names_addresses_and_labels_have_rules_that_say_what_to_fix() {
        for good in ["b", "node-2", "gpu1"] {
            check_name(good).unwrap();
        }
        for bad in ["", "B", "2b", "b-", "b_c", "a.b", &"n".repeat(33)] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains("lowercase"), "{e}");
        }
        check_address("10.231.0.2").unwrap();
        check_address("::1").unwrap();
        check_address("docker-b.internal").unwrap();
        assert!(check_address("10.0.0.2:80").is_err());
        assert!(check_address("").is_err());

        let l = parse_labels(["disk=ssd", "zone = a", "gpu="]).unwrap();
        assert_eq!(l["disk"], "ssd");
        assert_eq!(l["zone"], "a");
        assert_eq!(l["gpu"], "");
        assert!(parse_labels(["disk"]).unwrap_err().contains("key=value"));
        assert!(parse_labels(["Disk=ssd"]).is_err());
        assert!(parse_labels(["disk=s s d"]).is_err());
        let many: Vec<String> = (0..=MAX_LABELS).map(|i| format!("k{i}=v")).collect();
        assert!(parse_labels(many.iter().map(String::as_str)).is_err());
    }

    #[test]
    fn a_heartbeat_remembers_since_when_a_node_is_unreachable() {
        let b = Heartbeat::default();
        assert_eq!(b.reachable(), None);
        assert_eq!(
            NodeState::of(&b, Schedule::default()),
            NodeState::Connecting
        );
        let b = b.after(1_000, Ok(()));
        assert_eq!(b.reachable(), Some(true));
        let b = b.after(2_000, Err("connection refused".into()));
        let b = b.after(3_000, Err("timed out".into()));
        // Since the first failure, with the latest reason.
        assert_eq!(b.failing_since, Some(2_000));
        assert_eq!(b.last_ok, Some(1_000));
        assert_eq!(b.error.as_deref(), Some("timed out"));
        assert_eq!(
            NodeState::of(&b, Schedule::default()),
            NodeState::Unreachable
        );
        let b = b.after(4_000, Ok(()));
        assert_eq!(b.failing_since, None);
        assert_eq!(b.error, None);
        assert_eq!(NodeState::of(&b, Schedule::default()), NodeState::Ready);
    }

    #[test]
    fn the_shown_state_puts_what_needs_action_first() {
        let up = Heartbeat::default().after(1, Ok(()));
        let down = up.after(2, Err("x".into()));
        let cordoned = Schedule {
            cordoned: true,
            draining: false,
        };
        let draining = Schedule {
            cordoned: true,
            draining: true,
        };
        assert_eq!(NodeState::of(&up, cordoned), NodeState::Cordoned);
        assert_eq!(NodeState::of(&up, draining), NodeState::Draining);
        assert_eq!(NodeState::of(&down, cordoned), NodeState::Unreachable);
        assert_eq!(NodeState::of(&down, draining), NodeState::Unreachable);
        // Nothing is placed on a node before its first answer.
        assert_eq!(
            NodeState::Connecting.condition(),
            NodeCondition::Unreachable
        );
        assert_eq!(NodeState::Ready.condition(), NodeCondition::Ready);
    }
}

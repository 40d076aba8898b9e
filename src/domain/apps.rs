//! Workspace apps: where a workspace's web app (or another port of it) is
//! served, who may open it, and how its traffic is rewritten on the way.
//! Pure rules, no I/O; `service::apps` and `http::routes::apps` apply them.
//!
//! Two ways to reach an app:
//! - **Subdomain mode** (`proxy.app_domain` set): every app has an origin of
//!   its own, `[<port>--]<name>--<short id>.<app_domain>`, so the browser
//!   keeps it apart from Berth and from other workspaces. It is the only
//!   mode in which an app may be shown to anyone but its owner.
//! - **Path mode**: `/api/workspaces/<id>/proxy/…` (and `/ports/<port>/…`)
//!   on Berth's own origin. A page served there is same-origin with the API
//!   and could act as whoever views it, so path mode serves the owner only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use uuid::Uuid;

use super::User;

/// The cookie that authorises one app origin's proxy traffic (set on that
/// origin only, after the login handoff). Never accepted by the API.
pub const APP_COOKIE: &str = "berth_app";

/// The path on an app origin where the handoff's code is exchanged for the
/// app cookie. Berth answers it; it never reaches the workspace.
pub const AUTH_PATH: &str = "/__berth/auth";

/// Cookies whose name starts with this belong to Berth: never forwarded to
/// a workspace, never accepted from one.
pub const BERTH_COOKIE_PREFIX: &str = "berth_";

/// Longest DNS label (RFC 1035).
const MAX_LABEL: usize = 63;
/// Hex digits of the workspace id in its app label.
pub const SHORT_ID_LEN: usize = 8;

super::spelled_enum! {
    /// Who, besides its owner, may open a workspace's port on its app origin.
    #[derive(Default)]
    pub enum ShareLevel("share level") {
        /// The owner (and admins, on app origins).
        #[default]
        Owner = "owner",
        /// Anyone logged in to Berth.
        Authenticated = "authenticated",
        /// Anyone at all, without logging in (only if the operator allows it:
        /// `proxy.allow_public_shares`).
        Public = "public",
    }
}

/// The DNS-safe form of a workspace name: lowercase ASCII letters, digits
/// and single hyphens, at most 40 characters; `ws` when nothing is left.
/// Single hyphens only, so `--` can separate the label's parts.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "ws".to_string()
    } else {
        out.to_string()
    }
}

/// The first hex digits of a workspace id, as they appear in its app label.
pub fn short_id(id: Uuid) -> String {
    id.simple().to_string()[..SHORT_ID_LEN].to_string()
}

/// The DNS label of a workspace's app: `<slug>--<short id>`, or
/// `<port>--<slug>--<short id>` for another port than the type's.
pub fn app_label(name: &str, id: Uuid, port: Option<u16>) -> String {
    let base = format!("{}--{}", slug(name), short_id(id));
    let label = match port {
        Some(p) => format!("{p}--{base}"),
        None => base,
    };
    debug_assert!(label.len() <= MAX_LABEL);
    label
}

/// An app's address, read back from a request's `Host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppHost {
    /// Another port than the type's, when the label names one.
    pub port: Option<u16>,
    pub slug: String,
    /// The first [`SHORT_ID_LEN`] hex digits of the workspace id.
    pub short_id: String,
}

/// Whether `host` (a `Host` header: name and optional port) names an app
/// on `app_domain`, and which. Berth's own host, other names, and labels
/// that do not follow [`app_label`]'s shape are `None`.
pub fn parse_app_host(host: &str, app_domain: &str) -> Option<AppHost> {
    if app_domain.is_empty() {
        return None;
    }
    let name = strip_port(host).to_ascii_lowercase();
    let name = name.strip_suffix('.').unwrap_or(&name);
    let label = name.strip_suffix(app_domain)?.strip_suffix('.')?;
    if label.is_empty() || label.contains('.') || label.len() > MAX_LABEL {
        return None;
    }
    let parts: Vec<&str> = label.split("--").collect();
    let (port, slug, short) = match parts.as_slice() {
        [slug, short] => (None, *slug, *short),
        [port, slug, short] => {
            let p: u16 = port.parse().ok().filter(|p| *p > 0)?;
            // No leading zeros: one port, one name.
            if p.to_string() != *port {
                return None;
            }
            (Some(p), *slug, *short)
        }
        _ => return None,
    };
    let slug_ok = !slug.is_empty()
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    let short_ok = short.len() == SHORT_ID_LEN && short.chars().all(|c| c.is_ascii_hexdigit());
    (slug_ok && short_ok).then(|| AppHost {
        port,
        slug: slug.to_string(),
        short_id: short.to_string(),
    })
}

/// `host` without a trailing `:port` (IPv6 literals keep their brackets).
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.rsplit_once(':')
        .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

/// What may happen to a request for an app on its own origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppAccess {
    Allow,
    /// Nobody is logged in and the app is not public: log in first.
    Login,
    /// Someone is logged in who may not open it (answered as if it did not
    /// exist).
    Deny,
}

/// Who may open a port of a workspace owned by `owner` on its app origin:
/// the owner, admins (an app origin cannot act on Berth, so letting an
/// admin look is safe there), anyone logged in when shared with
/// `authenticated`, anyone when public shares are allowed and it is one.
pub fn app_access(
    viewer: Option<&User>,
    owner: Uuid,
    share: ShareLevel,
    public_allowed: bool,
) -> AppAccess {
    if share == ShareLevel::Public && public_allowed {
        return AppAccess::Allow;
    }
    let Some(user) = viewer else {
        return AppAccess::Login;
    };
    if user.id == owner || user.is_admin() || share == ShareLevel::Authenticated {
        AppAccess::Allow
    } else {
        AppAccess::Deny
    }
}

/// What may happen to a request for an app in path mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathAccess {
    Allow,
    /// An admin opening another user's app: refused, because the page would
    /// run with the admin's Berth credentials (unless the operator set
    /// `proxy.dangerous_allow_path_app_admin_access`).
    AdminRefused,
}

/// Path mode serves the owner only (shares do not apply there). `user` has
/// already been allowed to see the workspace (owner or admin).
pub fn path_access(user: &User, owner: Uuid, dangerous_admin_access: bool) -> PathAccess {
    if user.id == owner || (user.is_admin() && dangerous_admin_access) {
        PathAccess::Allow
    } else {
        PathAccess::AdminRefused
    }
}

/// Where the workspace sees a request, given the path and query the
/// browser asked for (still percent-encoded).
///
/// - Path mode: `prefix` (e.g. `/api/workspaces/<id>/proxy/`) is removed,
///   unless the type keeps it (an app with a base path, such as Jupyter's
///   `--ServerApp.base_url`), in which case the path goes as it came.
/// - Subdomain mode: the path goes as it came; a type that keeps the prefix
///   gets it added when it is not there yet, so one container serves both
///   modes.
pub fn upstream_path(subdomain: bool, keep_prefix: bool, prefix: &str, requested: &str) -> String {
    let bare = prefix.trim_end_matches('/');
    let (path, query) = match requested.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (requested, None),
    };
    let under_prefix = path == bare || path.starts_with(&format!("{bare}/"));
    let path = match (subdomain, keep_prefix) {
        (false, false) => match path.strip_prefix(bare) {
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => "/".to_string(),
        },
        (false, true) | (true, false) => path.to_string(),
        (true, true) if under_prefix => path.to_string(),
        (true, true) => format!("{bare}{path}"),
    };
    // `/proxy` alone is the app's root.
    let path = if keep_prefix && path == bare {
        prefix.to_string()
    } else {
        path
    };
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// A `Location` the workspace sent, as the browser should see it: in path
/// mode an absolute path on the workspace is put under the prefix (never
/// twice); otherwise it stays.
pub fn rewrite_location(subdomain: bool, prefix: &str, location: &str) -> Option<String> {
    if subdomain || !location.starts_with('/') || location.starts_with("//") {
        return None;
    }
    let bare = prefix.trim_end_matches('/');
    if location == bare || location.starts_with(&format!("{bare}/")) {
        return None;
    }
    Some(format!("{bare}{location}"))
}

/// How a workspace's `Set-Cookie` is scoped before it reaches the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieScope<'a> {
    /// App origin: host-only (no `Domain`), so it reaches no other origin.
    Host,
    /// Path mode: host-only and under this path prefix, so it reaches
    /// neither Berth nor another workspace.
    Prefix(&'a str),
}

/// Rewrites one `Set-Cookie` value of a workspace: `None` drops it (a
/// `berth_*` cookie: a workspace never sets Berth's cookies); `Domain` goes;
/// in path mode `Path` is put under the prefix.
pub fn rewrite_set_cookie(value: &str, scope: CookieScope<'_>) -> Option<String> {
    let mut parts = value.split(';');
    let pair = parts.next()?.trim();
    let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
    if name.is_empty() || name.to_ascii_lowercase().starts_with(BERTH_COOKIE_PREFIX) {
        return None;
    }
    let mut out = vec![pair.to_string()];
    let mut path: Option<String> = None;
    for attr in parts {
        let attr = attr.trim();
        let key = attr.split_once('=').map_or(attr, |(k, _)| k).trim();
        if key.eq_ignore_ascii_case("domain") {
            continue;
        }
        if key.eq_ignore_ascii_case("path") {
            path = Some(
                attr.split_once('=')
                    .map_or("", |(_, v)| v)
                    .trim()
                    .to_string(),
            );
            continue;
        }
        if !attr.is_empty() {
            out.push(attr.to_string());
        }
    }
    let path = match scope {
        CookieScope::Host => path,
        CookieScope::Prefix(prefix) => {
            let bare = prefix.trim_end_matches('/');
            Some(match path.filter(|p| p.starts_with('/')) {
                Some(p) if p == bare || p.starts_with(&format!("{bare}/")) => p,
                Some(p) if p == "/" => format!("{bare}/"),
                Some(p) => format!("{bare}{p}"),
                None => format!("{bare}/"),
            })
        }
    };
    if let Some(p) = path {
        out.push(format!("Path={p}"));
    }
    Some(out.join("; "))
}

/// The `Cookie` header a workspace gets: the browser's cookies without
/// Berth's own (`None` when nothing is left).
pub fn strip_berth_cookies<'a>(headers: impl Iterator<Item = &'a str>) -> Option<String> {
    let kept: Vec<&str> = headers
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|kv| !kv.is_empty())
        .filter(|kv| {
            !kv.split_once('=')
                .map_or(*kv, |(k, _)| k)
                .trim()
                .to_ascii_lowercase()
                .starts_with(BERTH_COOKIE_PREFIX)
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

/// A path on an app origin to send the browser to after the handoff: an
/// absolute path on the same origin, never another site (`//x`, `/\x`).
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && next.len() <= 4096;
    ok.then_some(next)
}

/// A TCP socket listening inside a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    pub port: u16,
    pub address: IpAddr,
}

/// The listening sockets in the text of `/proc/net/tcp` (or `tcp6` when
/// `v6`): state `0A`, the local address in the kernel's hex notation.
pub fn parse_proc_net_tcp(text: &str, v6: bool) -> Vec<Listener> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 4 || cols[3] != "0A" {
            continue;
        }
        let Some((addr, port)) = cols[1].split_once(':') else {
            continue;
        };
        let Ok(port) = u16::from_str_radix(port, 16) else {
            continue;
        };
        let address = if v6 {
            parse_v6(addr).map(IpAddr::V6)
        } else {
            u32::from_str_radix(addr, 16)
                .ok()
                // Stored as the kernel holds it: little-endian on x86.
                .map(|n| IpAddr::V4(Ipv4Addr::from(n.swap_bytes())))
        };
        if let Some(address) = address {
            out.push(Listener { port, address });
        }
    }
    out
}

fn parse_v6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (word, chunk) in hex.as_bytes().chunks(8).enumerate() {
        let n = u32::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
        bytes[word * 4..word * 4 + 4].copy_from_slice(&n.swap_bytes().to_be_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

/// One entry per listening port, sorted: a wildcard address wins over a
/// loopback one (it says more about who can reach it).
pub fn listening_ports(mut all: Vec<Listener>) -> Vec<Listener> {
    all.sort_by_key(|l| (l.port, !l.address.is_unspecified(), l.address));
    all.dedup_by_key(|l| l.port);
    all
}

/// One port's share.
#[derive(Debug, Clone)]
pub struct AppShare {
    pub workspace_id: uuid::Uuid,
    pub port: u16,
    pub level: ShareLevel,
    pub created_by: uuid::Uuid,
    pub created_at: super::Millis,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn user(role: Role) -> User {
        User {
            id: Uuid::new_v4(),
            email: "u@x".into(),
            role,
            created_at: 0,
        }
    }

    #[test]
    fn slugs_are_dns_safe_and_never_hold_a_double_hyphen() {
        assert_eq!(slug("Dev"), "dev");
        assert_eq!(slug("my  project -- two"), "my-project-two");
        assert_eq!(slug("--x--"), "x");
        assert_eq!(slug("Ünïcode ✓"), "n-code");
        assert_eq!(slug("✓✓"), "ws");
        assert_eq!(slug(&"a".repeat(100)).len(), 40);
        assert!(!slug(&"ab-".repeat(30)).ends_with('-'));
    }

    #[test]
    fn labels_round_trip_through_the_host() {
        let id = Uuid::parse_str("1a2b3c4d-0000-4000-8000-000000000000").unwrap();
        let label = app_label("Dev", id, None);
        assert_eq!(label, "dev--1a2b3c4d");
        let h = parse_app_host(&format!("{label}.localhost:7780"), "localhost").unwrap();
        assert_eq!(
            h,
            AppHost {
                port: None,
                slug: "dev".into(),
                short_id: "1a2b3c4d".into()
            }
        );
        let p = app_label("My App", id, Some(5173));
        assert_eq!(p, "5173--my-app--1a2b3c4d");
        let h = parse_app_host(&format!("{p}.apps.example.com"), "apps.example.com").unwrap();
        assert_eq!(h.port, Some(5173));
        assert_eq!(h.slug, "my-app");
        // The longest name still fits a DNS label.
        assert!(app_label(&"x".repeat(100), id, Some(65535)).len() <= 63);
        // Case and a trailing dot do not matter.
        assert!(parse_app_host("DEV--1A2B3C4D.LocalHost.", "localhost").is_some());
    }

    #[test]
    fn other_hosts_are_not_apps() {
        let d = "localhost";
        for host in [
            "localhost",
            "localhost:7780",
            "127.0.0.1:7780",
            "dev.localhost",
            "dev--1a2b3c4.localhost",
            "dev--1a2b3c4g.localhost",
            "a.dev--1a2b3c4d.localhost",
            "0--dev--1a2b3c4d.localhost",
            "080--dev--1a2b3c4d.localhost",
            "70000--dev--1a2b3c4d.localhost",
            "x--dev--1a2b3c4d.localhost",
            "--1a2b3c4d.localhost",
            "-dev--1a2b3c4d.localhost",
            "dev--1a2b3c4d.localhostx",
            "dev--1a2b3c4d.xlocalhost",
            "[::1]:7780",
        ] {
            assert_eq!(parse_app_host(host, d), None, "{host}");
        }
        assert_eq!(parse_app_host("dev--1a2b3c4d.localhost", ""), None);
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("a.localhost:7780"), "a.localhost");
        assert_eq!(strip_port("a.localhost"), "a.localhost");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }

    #[test]
    fn app_origins_serve_owner_admins_and_shares() {
        let owner = user(Role::Member);
        let other = user(Role::Member);
        let admin = user(Role::Admin);
        use AppAccess::*;
        use ShareLevel::*;
        let o = owner.id;
        assert_eq!(app_access(Some(&owner), o, Owner, false), Allow);
        assert_eq!(app_access(Some(&admin), o, Owner, false), Allow);
        assert_eq!(app_access(Some(&other), o, Owner, false), Deny);
        assert_eq!(app_access(None, o, Owner, false), Login);
        assert_eq!(app_access(Some(&other), o, Authenticated, false), Allow);
        assert_eq!(app_access(None, o, Authenticated, false), Login);
        // Public only when the operator allows it; otherwise as owner-only.
        assert_eq!(app_access(None, o, Public, true), Allow);
        assert_eq!(app_access(None, o, Public, false), Login);
        assert_eq!(app_access(Some(&other), o, Public, false), Deny);
    }

    #[test]
    fn path_mode_serves_the_owner_only() {
        let owner = user(Role::Member);
        let admin = user(Role::Admin);
        assert_eq!(path_access(&owner, owner.id, false), PathAccess::Allow);
        assert_eq!(
            path_access(&admin, owner.id, false),
            PathAccess::AdminRefused
        );
        assert_eq!(path_access(&admin, owner.id, true), PathAccess::Allow);
        assert_eq!(path_access(&admin, admin.id, false), PathAccess::Allow);
    }

    #[test]
    fn upstream_paths_in_each_mode() {
        let p = "/api/workspaces/W/proxy/";
        // Path mode strips the prefix…
        assert_eq!(
            upstream_path(false, false, p, "/api/workspaces/W/proxy/a/b?x=1"),
            "/a/b?x=1"
        );
        assert_eq!(
            upstream_path(false, false, p, "/api/workspaces/W/proxy/"),
            "/"
        );
        assert_eq!(
            upstream_path(false, false, p, "/api/workspaces/W/proxy"),
            "/"
        );
        // …unless the type keeps it.
        assert_eq!(
            upstream_path(false, true, p, "/api/workspaces/W/proxy/lab?x"),
            "/api/workspaces/W/proxy/lab?x"
        );
        assert_eq!(
            upstream_path(false, true, p, "/api/workspaces/W/proxy"),
            "/api/workspaces/W/proxy/"
        );
        // Subdomain mode: untouched, or with the prefix added once.
        assert_eq!(upstream_path(true, false, p, "/a?b"), "/a?b");
        assert_eq!(
            upstream_path(true, true, p, "/"),
            "/api/workspaces/W/proxy/"
        );
        assert_eq!(
            upstream_path(true, true, p, "/lab"),
            "/api/workspaces/W/proxy/lab"
        );
        assert_eq!(
            upstream_path(true, true, p, "/api/workspaces/W/proxy/lab?x=1"),
            "/api/workspaces/W/proxy/lab?x=1"
        );
        // A look-alike is not the prefix.
        assert_eq!(
            upstream_path(true, true, p, "/api/workspaces/W/proxyx"),
            "/api/workspaces/W/proxy/api/workspaces/W/proxyx"
        );
    }

    #[test]
    fn locations_never_get_the_prefix_twice() {
        let p = "/api/workspaces/W/proxy/";
        assert_eq!(
            rewrite_location(false, p, "/target").as_deref(),
            Some("/api/workspaces/W/proxy/target")
        );
        assert_eq!(
            rewrite_location(false, p, "/api/workspaces/W/proxy/lab"),
            None
        );
        assert_eq!(rewrite_location(false, p, "/api/workspaces/W/proxy"), None);
        assert_eq!(rewrite_location(false, p, "//evil.example/x"), None);
        assert_eq!(rewrite_location(false, p, "http://x/y"), None);
        assert_eq!(rewrite_location(false, p, "relative"), None);
        assert_eq!(rewrite_location(true, p, "/target"), None);
    }

    #[test]
    fn workspace_cookies_are_scoped_and_berths_dropped() {
        let p = CookieScope::Prefix("/api/workspaces/W/proxy/");
        assert_eq!(rewrite_set_cookie("berth_session=x; Path=/", p), None);
        assert_eq!(rewrite_set_cookie("BERTH_APP=x", CookieScope::Host), None);
        assert_eq!(
            rewrite_set_cookie("a=1; Path=/; Domain=localhost; HttpOnly", p).unwrap(),
            "a=1; HttpOnly; Path=/api/workspaces/W/proxy/"
        );
        assert_eq!(
            rewrite_set_cookie("a=1", p).unwrap(),
            "a=1; Path=/api/workspaces/W/proxy/"
        );
        assert_eq!(
            rewrite_set_cookie("a=1; path=/sub", p).unwrap(),
            "a=1; Path=/api/workspaces/W/proxy/sub"
        );
        assert_eq!(
            rewrite_set_cookie("_xsrf=1; Path=/api/workspaces/W/proxy/", p).unwrap(),
            "_xsrf=1; Path=/api/workspaces/W/proxy/"
        );
        assert_eq!(
            rewrite_set_cookie(
                "a=1; Domain=.example.com; Path=/; Secure",
                CookieScope::Host
            )
            .unwrap(),
            "a=1; Secure; Path=/"
        );
        assert_eq!(rewrite_set_cookie("a=1", CookieScope::Host).unwrap(), "a=1");
    }

    #[test]
    fn berths_cookies_never_reach_a_workspace() {
        let got = strip_berth_cookies(
            [
                "theme=dark; berth_session=s",
                "berth_app=a;x=1",
                "Berth_Other=2",
            ]
            .into_iter(),
        );
        assert_eq!(got.as_deref(), Some("theme=dark; x=1"));
        assert_eq!(strip_berth_cookies(["berth_session=s"].into_iter()), None);
    }

    #[test]
    fn next_stays_on_the_same_origin() {
        assert_eq!(safe_next("/lab?x=1"), Some("/lab?x=1"));
        for bad in ["//evil", "/\\evil", "http://evil", "evil", "/a\nb", ""] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn listening_sockets_are_read_from_proc() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1435 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0\n   2: 0100007F:1F90 0100007F:D3F2 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1\n";
        let v4 = parse_proc_net_tcp(tcp, false);
        assert_eq!(
            v4,
            vec![
                Listener {
                    port: 8080,
                    address: IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                },
                Listener {
                    port: 5173,
                    address: IpAddr::V4(Ipv4Addr::LOCALHOST)
                },
            ]
        );
        let tcp6 = "  sl  local_address                         remote_address                        st\n   0: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 0\n   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 0\n";
        let v6 = parse_proc_net_tcp(tcp6, true);
        assert_eq!(v6[0].address, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(v6[0].port, 3000);
        let all = listening_ports([v4, v6].concat());
        let ports: Vec<u16> = all.iter().map(|l| l.port).collect();
        assert_eq!(ports, [3000, 5173, 8080]);
        // 8080 listens on both; the wildcard is what is reported.
        assert!(all[2].address.is_unspecified());
        assert!(parse_proc_net_tcp("header only\n", false).is_empty());
        assert!(parse_proc_net_tcp("h\n 0: zz:zz 0:0 0A\n", false).is_empty());
    }
}

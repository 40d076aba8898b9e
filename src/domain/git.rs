//! Projects from git, the pure part: which repository URLs Berth clones
//! (and which it refuses, with why), what a clone is asked for (a ref,
//! a depth, submodules, the directory in the volume), the git command
//! lines that carry it out, and git's own failure words turned into what
//! a user can act on. The executor (`service::repos`) runs the commands.

use serde::Serialize;

/// The longest URL accepted.
const MAX_URL: usize = 2048;
/// The deepest shallow clone asked for that is still "shallow".
pub const MAX_DEPTH: u32 = 1_000_000;

/// How a repository is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Transport {
    /// `git://`: the git daemon's protocol, no authentication.
    Git,
    /// `http://` or `https://` (smart HTTP), a token by basic authentication.
    Http,
    /// `ssh://` or scp-like `user@host:path`, a deploy key.
    Ssh,
}

/// A repository URL Berth accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUrl {
    /// As given (what `git clone` is given, and what the clone's `origin`
    /// says): never with a password in it.
    pub url: String,
    pub transport: Transport,
    /// The host (without port), which a stored credential is matched by.
    pub host: String,
    /// The last path segment without `.git`: the clone's directory name.
    pub name: String,
}

/// Reads a repository URL: `git://`, `http(s)://`, `ssh://` or scp-like
/// (`git@host:owner/repo.git`). Refused: local paths and `file://` (a
/// user would read the server's files), `ext::` and other transports that
/// run commands, a password inside the URL (it would be written into the
/// clone's `.git/config`: store a credential instead), and an option
/// disguised as a URL (`-u…`).
pub fn parse_url(raw: &str) -> Result<RepoUrl, String> {
    let url = raw;
    if url.is_empty() {
        return Err("git.url must not be empty".into());
    }
    if url.len() > MAX_URL {
        return Err(format!("git.url is longer than {MAX_URL} characters"));
    }
    if url.starts_with('-') {
        return Err("git.url must not start with '-'".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("git.url must not contain spaces or control characters".into());
    }
    let (transport, rest) = if let Some(r) = url.strip_prefix("git://") {
        (Transport::Git, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (Transport::Http, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (Transport::Http, r)
    } else if let Some(r) = url.strip_prefix("ssh://") {
        (Transport::Ssh, r)
    } else if url.contains("://") || url.contains("::") {
        let scheme = url.split([':']).next().unwrap_or_default();
        return Err(format!(
            "git.url: the {scheme:?} transport is not supported; use git://, http(s)://, ssh:// or user@host:path"
        ));
    } else {
        return scp_like(url);
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, hp)) => {
            if userinfo.contains(':') {
                return Err(
                    "git.url must not hold a password: store a token for its host (POST /api/auth/me/git-credentials)"
                        .into(),
                );
            }
            hp
        }
        None => authority,
    };
    let host = host_of(host_port)?;
    let name = repo_name(path)?;
    Ok(RepoUrl {
        url: url.to_string(),
        transport,
        host,
        name,
    })
}

/// `user@host:path` (git's scp-like syntax; a `/` before the `:` makes it
/// a local path, which is refused).
fn scp_like(url: &str) -> Result<RepoUrl, String> {
    let refused = || {
        format!("git.url {url:?} is not a repository URL Berth clones: use git://, http(s)://, ssh:// or user@host:path (local paths are refused)")
    };
    let Some((before, path)) = url.split_once(':') else {
        return Err(refused());
    };
    if before.contains('/') || before.is_empty() || path.is_empty() {
        return Err(refused());
    }
    let host = before.rsplit_once('@').map_or(before, |(_, h)| h);
    let host = host_of(host)?;
    Ok(RepoUrl {
        url: url.to_string(),
        transport: Transport::Ssh,
        host,
        name: repo_name(path)?,
    })
}

fn host_of(host_port: &str) -> Result<String, String> {
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']').map(|(h, _)| h).unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !ok {
        return Err(format!("git.url: {host_port:?} is not a host name"));
    }
    Ok(host.to_ascii_lowercase())
}

/// The repository's name: its last path segment, `.git` cut.
fn repo_name(path: &str) -> Result<String, String> {
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let name = last.strip_suffix(".git").unwrap_or(last);
    check_dir(name).map_err(|_| {
        format!("git.url: cannot tell the repository's name from {path:?}; give git.dir")
    })?;
    Ok(name.to_string())
}

/// A directory name inside the volume: one plain path segment.
pub fn check_dir(dir: &str) -> Result<(), String> {
    let ok = !dir.is_empty()
        && dir.len() <= 100
        && dir != "."
        && dir != ".."
        && !dir.starts_with('-')
        && dir
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "git.dir {dir:?} must be one directory name of letters, digits, '.', '-' and '_'"
        ))
    }
}

/// A branch, tag or commit as git accepts it (`git check-ref-format`'s
/// rules, the ones that matter for a command line), or refused.
pub fn check_ref(r: &str) -> Result<(), String> {
    let bad = r.is_empty()
        || r.len() > 255
        || r.starts_with('-')
        || r.starts_with('/')
        || r.ends_with('/')
        || r.ends_with('.')
        || r.ends_with(".lock")
        || r.contains("..")
        || r.contains("@{")
        || r.contains("//")
        || r.chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        Err(format!("git.ref {r:?} is not a branch, tag or commit name"))
    } else {
        Ok(())
    }
}

/// Whether `r` names a commit by its hash (7 to 64 hex digits), which
/// `git clone --branch` does not take.
pub fn is_commit(r: &str) -> bool {
    (7..=64).contains(&r.len()) && r.chars().all(|c| c.is_ascii_hexdigit())
}

/// What a project's clone is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneRequest {
    pub url: RepoUrl,
    /// A branch, tag or commit; `None`: the remote's HEAD.
    pub reference: Option<String>,
    /// A shallow clone of this many commits.
    pub depth: Option<u32>,
    pub submodules: bool,
    /// The directory in the volume (the repository's name by default).
    pub dir: String,
}

impl CloneRequest {
    /// Checks what a user asked for.
    pub fn new(
        url: &str,
        reference: Option<&str>,
        depth: Option<u32>,
        submodules: bool,
        dir: Option<&str>,
    ) -> Result<CloneRequest, String> {
        let url = parse_url(url)?;
        if let Some(r) = reference {
            check_ref(r)?;
        }
        if let Some(d) = depth {
            if d == 0 || d > MAX_DEPTH {
                return Err(format!("git.depth must be 1 to {MAX_DEPTH} (got {d})"));
            }
        }
        let dir = match dir {
            Some(d) => {
                check_dir(d)?;
                d.to_string()
            }
            None => url.name.clone(),
        };
        Ok(CloneRequest {
            url,
            reference: reference.map(str::to_string),
            depth,
            submodules,
            dir,
        })
    }

    /// The git command lines (arguments after `git`) that make the clone
    /// in `into` (a directory that does not exist yet), in order. A commit
    /// is fetched by its hash after a clone without a checkout (a branch
    /// or tag is cloned directly); `--` ends the options before the URL.
    pub fn commands(&self, into: &str) -> Vec<Vec<String>> {
        let s = |x: &str| x.to_string();
        let depth = self.depth.map(|d| format!("--depth={d}"));
        let mut clone = vec![s("clone"), s("--quiet")];
        clone.extend(depth.clone());
        let commit = self.reference.as_deref().filter(|r| is_commit(r));
        match (&self.reference, commit) {
            (Some(_), Some(_)) => clone.push(s("--no-checkout")),
            (Some(r), None) => {
                clone.push(s("--branch"));
                clone.push(r.clone());
            }
            (None, _) => {}
        }
        clone.extend([s("--"), self.url.url.clone(), s(into)]);
        let mut out = vec![clone];
        if let Some(c) = commit {
            if self.depth.is_some() {
                let mut fetch = vec![s("-C"), s(into), s("fetch"), s("--quiet")];
                fetch.extend(depth);
                fetch.extend([s("origin"), s(c)]);
                out.push(fetch);
            }
            out.push(vec![
                s("-C"),
                s(into),
                s("checkout"),
                s("--quiet"),
                s("--detach"),
                s(c),
                // A revision, never a path.
                s("--"),
            ]);
        }
        out
    }

    /// The command that fetches the submodules once their URLs were
    /// checked ([`submodule_urls_allowed`]): one level, or every level when
    /// any host may be cloned from (nested ones' URLs are not read first).
    pub fn submodule_command(&self, into: &str, recursive: bool) -> Vec<String> {
        let s = |x: &str| x.to_string();
        let mut cmd = vec![s("-C"), s(into), s("submodule"), s("update"), s("--init")];
        if recursive {
            cmd.push(s("--recursive"));
        }
        cmd.extend(self.depth.map(|_| s("--depth=1")));
        cmd.push(s("--quiet"));
        cmd
    }
}

/// Whether `host` is one Berth may clone from: `*` (any), `*.example.com`
/// (its subdomains) or the host itself, case aside.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.to_ascii_lowercase();
    allowed.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("*.") {
            _ if p == "*" => true,
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => host == p,
        }
    })
}

/// Checks the submodule URLs a `.gitmodules` names (`git config
/// --get-regexp` output: `submodule.NAME.url URL` per line) as the
/// project's own URL is checked, and their hosts against `allowed`; a
/// relative URL (`../lib.git`) is on the project's own host.
pub fn submodule_urls_allowed(listing: &str, allowed: &[String]) -> Result<(), String> {
    for line in listing.lines() {
        let Some((_, url)) = line.split_once(' ') else {
            continue;
        };
        let url = url.trim();
        if url.starts_with("./") || url.starts_with("../") {
            continue;
        }
        let u = parse_url(url).map_err(|e| format!("a submodule's URL is refused: {e}"))?;
        if !host_allowed(&u.host, allowed) {
            return Err(format!(
                "a submodule is on {}, which is not a host Berth may clone from (git.allowed_hosts)",
                u.host
            ));
        }
    }
    Ok(())
}

/// Where a project's files came from: what its record keeps of the clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitOrigin {
    /// The URL as given (no credential is ever in it).
    pub url: String,
    /// The ref asked for; `None`: the remote's HEAD.
    pub reference: Option<String>,
    /// The commit checked out.
    pub commit: String,
    /// The directory in the volume (`/workspace/<dir>` in a workspace).
    pub dir: String,
}

/// A user's stored credential for one git host (its token is kept apart,
/// as a `Secret`, and never shown again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitCredential {
    pub id: uuid::Uuid,
    pub user_id: uuid::Uuid,
    /// Lower case, without a port: matched against a repository URL's.
    pub host: String,
    pub username: String,
    pub created_at: super::Millis,
}

/// Checks a credential's host (a host name, no scheme, port or path) and
/// username; the host as stored.
pub fn check_credential(host: &str, username: &str) -> Result<String, String> {
    let host_ok = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !host_ok {
        return Err(format!(
            "host {host:?} must be a host name such as git.example.com (no scheme, port or path)"
        ));
    }
    if username.is_empty() || username.len() > 255 || username.contains(':') {
        return Err("username must be 1 to 255 characters without ':'".into());
    }
    Ok(host.to_ascii_lowercase())
}

/// Why a clone failed, as a user can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneFailure {
    /// The credentials were refused or none was stored (a private
    /// repository): store one.
    Auth,
    /// The repository, or the ref, does not exist.
    NotFound,
    /// The host did not answer.
    Unreachable,
    /// Anything else git said.
    Other,
}

/// Reads git's error output: what kind of failure, in words that name what
/// to fix, with git's own last line.
pub fn explain(stderr: &str, req: &CloneRequest) -> (CloneFailure, String) {
    let said = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| !l.starts_with("hint:"))
        .collect::<Vec<_>>();
    let last = said
        .iter()
        .rev()
        .find(|l| l.starts_with("fatal:") || l.starts_with("error:"))
        .or(said.last())
        .map(|l| l.to_string())
        .unwrap_or_else(|| "git failed without a word".into());
    let low = stderr.to_ascii_lowercase();
    let host = &req.url.host;
    if low.contains("authentication failed")
        || low.contains("could not read username")
        || low.contains("could not read password")
        || low.contains("permission denied (publickey")
        || low.contains("http basic: access denied")
        || low.contains("the requested url returned error: 401")
        || low.contains("the requested url returned error: 403")
        || low.contains("terminal prompts disabled")
    {
        return (
            CloneFailure::Auth,
            format!("the repository at {host} refused the credentials (or asked for some and none is stored for {host}): store a token or a deploy key for it (POST /api/auth/me/git-credentials); git said: {last}"),
        );
    }
    if low.contains("remote branch") && low.contains("not found")
        || low.contains("did not match any file(s) known to git")
        || low.contains("reference is not a tree")
        || low.contains("invalid reference")
        || low.contains("couldn't find remote ref")
        || low.contains("not our ref")
        || low.contains("unable to read tree")
    {
        let r = req.reference.as_deref().unwrap_or("HEAD");
        return (
            CloneFailure::NotFound,
            format!("the repository has no branch, tag or commit {r:?}; git said: {last}"),
        );
    }
    if low.contains("repository not found")
        || low.contains("does not appear to be a git repository")
        || low.contains("not found")
        || low.contains("no such repository")
        || low.contains("not exported")
        || low.contains("the requested url returned error: 404")
    {
        return (
            CloneFailure::NotFound,
            format!(
                "no repository at {}: check the URL; git said: {last}",
                req.url.url
            ),
        );
    }
    if low.contains("could not resolve host")
        || low.contains("connection refused")
        || low.contains("connection timed out")
        || low.contains("unable to connect")
        || low.contains("failed to connect")
        || low.contains("no route to host")
        || low.contains("could not connect")
        || low.contains("network is unreachable")
    {
        return (
            CloneFailure::Unreachable,
            format!("{host} did not answer: check the URL and that Berth's host can reach it; git said: {last}"),
        );
    }
    (
        CloneFailure::Other,
        format!("git could not clone {}: {last}", req.url.url),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> RepoUrl {
        parse_url(u).unwrap_or_else(|e| panic!("{u}: {e}"))
    }

    #[test]
    fn the_four_forms_are_read() {
        let u = url("git://127.0.0.1:9418/team/app.git");
        assert_eq!(
            (u.transport, u.host.as_str(), u.name.as_str()),
            (Transport::Git, "127.0.0.1", "app")
        );
        let u = url("https://git.example.com/team/app");
        assert_eq!(
            (u.transport, u.host.as_str(), u.name.as_str()),
            (Transport::Http, "git.example.com", "app")
        );
        let u = url("http://token@localhost:8080/app.git/");
        assert_eq!(
            (u.transport, u.host.as_str(), u.name.as_str()),
            (Transport::Http, "localhost", "app")
        );
        let u = url("ssh://git@[::1]:2222/srv/app.git");
        assert_eq!(
            (u.transport, u.host.as_str(), u.name.as_str()),
            (Transport::Ssh, "::1", "app")
        );
        let u = url("git@github.com:owner/Repo.Name.git");
        assert_eq!(
            (u.transport, u.host.as_str(), u.name.as_str()),
            (Transport::Ssh, "github.com", "Repo.Name")
        );
    }

    #[test]
    fn local_paths_other_transports_and_passwords_are_refused() {
        for bad in [
            "",
            "/srv/git/app.git",
            "./app",
            "../app.git",
            "file:///etc",
            "file://localhost/srv/app.git",
            "ext::sh -c touch% /tmp/pwned",
            "fd::17",
            "ftp://host/app.git",
            "-uhttps://x/app.git",
            "--upload-pack=touch /tmp/x",
            "https://user:secret@host/app.git",
            "https://host/app.git\n",
            "https://ho st/app.git",
            "https:///app.git",
            "https://host/",
            "host/app:x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad:?} was accepted");
        }
        let e = parse_url("https://u:p@h/a.git").unwrap_err();
        assert!(e.contains("git-credentials") && !e.contains(":p@"), "{e}");
    }

    #[test]
    fn refs_and_dirs_are_checked() {
        for good in ["main", "v1.2.3", "feature/x", "a1b2c3d", "refs/tags/v1"] {
            assert!(check_ref(good).is_ok(), "{good}");
        }
        for bad in [
            "", "-x", "a..b", "a b", "x~1", "x^", "a:b", "x.lock", "@{-1}", "/x", "x/",
        ] {
            assert!(check_ref(bad).is_err(), "{bad:?}");
        }
        for bad in ["", ".", "..", "a/b", "-x", "a b"] {
            assert!(check_dir(bad).is_err(), "{bad:?}");
        }
        assert!(is_commit("a1b2c3d") && is_commit(&"f".repeat(40)));
        assert!(!is_commit("main") && !is_commit("abc123"));
    }

    fn req(r: Option<&str>, depth: Option<u32>, sub: bool) -> CloneRequest {
        CloneRequest::new("git://h/app.git", r, depth, sub, None).unwrap()
    }

    fn line(v: &[String]) -> String {
        v.join(" ")
    }

    #[test]
    fn a_branch_or_tag_is_cloned_directly() {
        let c = req(Some("v1"), Some(1), false).commands("/t/app");
        assert_eq!(c.len(), 1);
        assert_eq!(
            line(&c[0]),
            "clone --quiet --depth=1 --branch v1 -- git://h/app.git /t/app"
        );
        let r = req(None, None, true);
        assert_eq!(
            line(&r.commands("/t/app")[0]),
            "clone --quiet -- git://h/app.git /t/app"
        );
        assert_eq!(
            line(&r.submodule_command("/t/app", true)),
            "-C /t/app submodule update --init --recursive --quiet"
        );
        assert_eq!(
            line(&req(None, Some(2), true).submodule_command("/t/app", false)),
            "-C /t/app submodule update --init --depth=1 --quiet"
        );
    }

    #[test]
    fn a_commit_is_checked_out_after_the_clone() {
        let c = req(Some("a1b2c3d4"), None, true).commands("/t/app");
        assert_eq!(
            line(&c[0]),
            "clone --quiet --no-checkout -- git://h/app.git /t/app"
        );
        assert_eq!(
            line(&c[1]),
            "-C /t/app checkout --quiet --detach a1b2c3d4 --"
        );
        assert_eq!(c.len(), 2);
        let c = req(Some("a1b2c3d4"), Some(5), false).commands("/t/app");
        assert_eq!(
            line(&c[1]),
            "-C /t/app fetch --quiet --depth=5 origin a1b2c3d4"
        );
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn hosts_are_allowed_by_name_or_suffix() {
        let allowed = vec!["git.example.com".to_string(), "*.corp.test".to_string()];
        assert!(host_allowed("git.example.com", &allowed));
        assert!(host_allowed("GIT.example.com", &allowed));
        assert!(host_allowed("a.b.corp.test", &allowed));
        assert!(!host_allowed("corp.test", &allowed));
        assert!(!host_allowed("evil-corp.test", &allowed));
        assert!(!host_allowed("example.com", &allowed));
        assert!(host_allowed("anything", &["*".to_string()]));
        assert!(!host_allowed("anything", &[]));
    }

    #[test]
    fn submodule_urls_are_checked_like_the_project_s() {
        let allowed = vec!["127.0.0.1".to_string()];
        let ok = "submodule.lib.url git://127.0.0.1:9/lib.git\nsubmodule.rel.url ../rel.git\n";
        assert_eq!(submodule_urls_allowed(ok, &allowed), Ok(()));
        for bad in [
            "submodule.x.url file:///etc",
            "submodule.x.url /srv/repo.git",
            "submodule.x.url ext::sh -c id",
            "submodule.x.url git://elsewhere.example/x.git",
        ] {
            assert!(submodule_urls_allowed(bad, &allowed).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_request_is_checked() {
        assert!(CloneRequest::new("git://h/a.git", None, Some(0), false, None).is_err());
        assert!(CloneRequest::new("git://h/a.git", Some("-x"), None, false, None).is_err());
        assert!(CloneRequest::new("git://h/a.git", None, None, false, Some("../x")).is_err());
        let r = CloneRequest::new("git://h/a.git", None, None, false, Some("src")).unwrap();
        assert_eq!(r.dir, "src");
    }

    #[test]
    fn git_failures_are_told_apart() {
        let r = req(Some("nope"), None, false);
        let cases = [
            ("fatal: Authentication failed for 'http://h/a.git/'", CloneFailure::Auth),
            ("fatal: could not read Username for 'http://h': terminal prompts disabled", CloneFailure::Auth),
            ("git@h: Permission denied (publickey).\nfatal: Could not read from remote repository.", CloneFailure::Auth),
            ("warning: Could not find remote branch nope to clone.\nfatal: Remote branch nope not found in upstream origin", CloneFailure::NotFound),
            ("fatal: remote error: access denied or repository not exported: /a.git", CloneFailure::NotFound),
            ("fatal: repository 'http://h/a.git/' not found", CloneFailure::NotFound),
            ("fatal: unable to connect to h:\nh[0: 127.0.0.1]: errno=Connection refused", CloneFailure::Unreachable),
            ("fatal: unable to access 'http://h/': Could not resolve host: h", CloneFailure::Unreachable),
            ("error: pathspec 'a1b2c3d' did not match any file(s) known to git", CloneFailure::NotFound),
            ("fatal: invalid reference: 0123456789abcdef", CloneFailure::NotFound),
            ("fatal: something new", CloneFailure::Other),
        ];
        for (said, kind) in cases {
            let (k, m) = explain(said, &r);
            assert_eq!(k, kind, "{said}: {m}");
            assert!(m.contains("git said") || m.contains("git could not"), "{m}");
        }
    }
}

//! Projects cloned from git, against a real `git daemon` on loopback
//! serving bare repositories the test makes, and the real engine: what
//! lands in the volume (files, history, links kept as links, owner), by
//! branch, tag and commit, shallow, with submodules; and clones that fail
//! (a bad ref, no such repository, an unreachable host, refused URLs)
//! make no project and no volume.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{docker, TestEnv, TEST_IMAGE};
use serde_json::{json, Value};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=t@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `git daemon` serving `base` on a free loopback port; stopped on drop.
struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    fn start(base: &Path) -> Daemon {
        let port = free_port();
        // The daemon itself, not `git daemon`: killing that wrapper would
        // leave the daemon it started running.
        let exec_path = git(base, &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .spawn()
            .expect("git daemon");
        wait_listening(port);
        Daemon { child, port }
    }

    fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx with `auth_basic` in front of `git http-backend` (through
/// fcgiwrap) serving `base` on a free loopback port: smart HTTP with a
/// password, as a private repository's host is. Stopped on drop.
struct HttpGit {
    nginx: Child,
    fcgi: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl HttpGit {
    fn start(base: &Path, user: &str, password: &str) -> HttpGit {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("tmp")).unwrap();
        let hash = Command::new("openssl")
            .args(["passwd", "-apr1", password])
            .output()
            .expect("openssl");
        let hash = String::from_utf8_lossy(&hash.stdout).trim().to_string();
        std::fs::write(d.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
        let sock = d.join("fcgi.sock");
        let fcgi = Command::new("fcgiwrap")
            .arg("-s")
            .arg(format!("unix:{}", sock.display()))
            .spawn()
            .expect("fcgiwrap (scripts/setup installs it)");
        let port = free_port();
        let exec_path = git(base, &["--exec-path"]);
        // As root, nginx's workers would run as nobody, who cannot reach
        // the socket or the repositories of this test.
        let user_line = if is_root() { "user root;" } else { "" };
        let conf = format!(
            "{user_line}\nworker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
               proxy_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
                 auth_basic \"git\"; auth_basic_user_file {d}/htpasswd;\n\
                 include /etc/nginx/fastcgi_params;\n\
                 fastcgi_pass unix:{sock};\n\
                 fastcgi_param SCRIPT_FILENAME {exec_path}/git-http-backend;\n\
                 fastcgi_param GIT_HTTP_EXPORT_ALL \"\";\n\
                 fastcgi_param GIT_PROJECT_ROOT {base};\n\
                 fastcgi_param PATH_INFO $uri;\n\
                 fastcgi_param REMOTE_USER $remote_user;\n    }}\n  }}\n}}\n",
            d = d.display(),
            sock = sock.display(),
            base = base.display(),
        );
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let nginx = Command::new("nginx")
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .spawn()
            .expect("nginx (scripts/setup installs nginx-light)");
        wait_listening(port);
        HttpGit {
            nginx,
            fcgi,
            port,
            _dir: dir,
        }
    }

    fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for HttpGit {
    fn drop(&mut self) {
        for c in [&mut self.nginx, &mut self.fcgi] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) {
    let until = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Repositories served by a daemon: `app.git` (two commits on main, tag
/// `v1` at the first, a symlink to a host file, an executable script) and
/// `sub.git`, and `outer.git` with `sub.git` as a submodule.
struct Repos {
    dir: tempfile::TempDir,
    daemon: Daemon,
    first: String,
    head: String,
}

fn repos() -> Repos {
    let dir = tempfile::tempdir().unwrap();
    let srv = dir.path().join("srv");
    std::fs::create_dir(&srv).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("README"), "first\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", work.join("host-link")).unwrap();
    std::fs::write(work.join("run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(work.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "first"]);
    git(&work, &["tag", "v1"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    std::fs::write(work.join("README"), "second\n").unwrap();
    git(&work, &["commit", "-qam", "second"]);
    let head = git(&work, &["rev-parse", "HEAD"]);
    git(
        dir.path(),
        &["clone", "-q", "--bare", "work", "srv/app.git"],
    );

    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    git(&sub, &["init", "-q"]);
    std::fs::write(sub.join("LIB"), "the submodule\n").unwrap();
    git(&sub, &["add", "-A"]);
    git(&sub, &["commit", "-qm", "lib"]);
    git(dir.path(), &["clone", "-q", "--bare", "sub", "srv/sub.git"]);

    let daemon = Daemon::start(&srv);
    let outer = dir.path().join("outer");
    std::fs::create_dir(&outer).unwrap();
    git(&outer, &["init", "-q"]);
    std::fs::write(outer.join("MAIN"), "outer\n").unwrap();
    git(
        &outer,
        &["submodule", "add", "-q", &daemon.url("sub.git"), "lib"],
    );
    git(&outer, &["add", "-A"]);
    git(&outer, &["commit", "-qm", "with a submodule"]);
    git(
        dir.path(),
        &["clone", "-q", "--bare", "outer", "srv/outer.git"],
    );
    Repos {
        dir,
        daemon,
        first,
        head,
    }
}

/// Runs `script` in a throwaway container with the project's volume at
/// `/workspace`, as a workspace sees it.
fn in_volume(volume: &str, script: &str) -> String {
    docker(&[
        "run",
        "--rm",
        "--network=none",
        "-v",
        &format!("{volume}:/workspace"),
        TEST_IMAGE,
        "sh",
        "-c",
        script,
    ])
}

async fn create(env: &TestEnv, token: &str, name: &str, git: Value) -> (StatusCode, Value) {
    env.post("/api/projects", token, json!({"name": name, "git": git}))
        .await
}

/// The volumes this test's Berth instance made.
fn volumes_of(env: &TestEnv) -> Vec<String> {
    let out = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=berth.instance={}", env.instance),
    ]);
    out.lines().map(str::to_string).collect()
}

#[tokio::test]
async fn a_project_is_cloned_with_its_history_links_and_owner() {
    let env = TestEnv::new().await;
    let (_, t) = env.user(berth::domain::Role::Member).await;
    let r = repos();

    let (s, v) = create(&env, &t, "app", json!({"url": r.daemon.url("app.git")})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let p = &v["data"];
    assert_eq!(p["git"]["commit"], r.head.as_str(), "{v}");
    assert_eq!(p["git"]["dir"], "app");
    assert!(p["git"]["ref"].is_null());
    let volume = p["volumeName"].as_str().unwrap();
    let seen = in_volume(
        volume,
        "cd /workspace/app && cat README && readlink host-link && stat -c '%u:%g %a' run.sh README . \
         && cat .git/HEAD && grep -c url .git/config && test -d .git/objects && echo ok",
    );
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "second", "{seen}");
    // A link into the host stays a link: its target is not copied.
    assert_eq!(lines[1], "/etc/hostname", "{seen}");
    assert_eq!(lines[2], "1000:1000 755", "{seen}");
    assert_eq!(lines[3], "1000:1000 644", "{seen}");
    assert!(lines[4].starts_with("1000:1000"), "{seen}");
    assert_eq!(lines[5], "ref: refs/heads/main", "{seen}");
    assert_eq!(lines[6], "1", "{seen}");
    assert_eq!(lines.last(), Some(&"ok"), "{seen}");
    let config = in_volume(volume, "cat /workspace/app/.git/config");
    assert!(config.contains(&r.daemon.url("app.git")), "{config}");

    // The project as listed says where it came from.
    let id = p["id"].as_str().unwrap();
    let (_, got) = env.get(&format!("/api/projects/{id}"), &t).await;
    assert_eq!(got["data"]["git"]["url"], r.daemon.url("app.git").as_str());

    // A tag, into a directory of its own, shallow.
    let (s, v) = create(
        &env,
        &t,
        "tagged",
        json!({"url": r.daemon.url("app.git"), "ref": "v1", "dir": "src", "depth": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["git"]["commit"], r.first.as_str());
    let seen = in_volume(
        v["data"]["volumeName"].as_str().unwrap(),
        "cat /workspace/src/README && cat /workspace/src/.git/shallow",
    );
    assert_eq!(seen, format!("first\n{}", r.first));

    // A commit by its hash: checked out detached.
    let (s, v) = create(
        &env,
        &t,
        "pinned",
        json!({"url": r.daemon.url("app.git"), "ref": &r.first[..12]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["git"]["commit"], r.first.as_str());
    let seen = in_volume(
        v["data"]["volumeName"].as_str().unwrap(),
        "cat /workspace/app/README /workspace/app/.git/HEAD",
    );
    assert_eq!(seen, format!("first\n{}", r.first));

    // Submodules when asked, and only then.
    let (s, v) = create(
        &env,
        &t,
        "outer",
        json!({"url": r.daemon.url("outer.git"), "submodules": true}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let seen = in_volume(
        v["data"]["volumeName"].as_str().unwrap(),
        "cat /workspace/outer/MAIN /workspace/outer/lib/LIB",
    );
    assert_eq!(seen, "outer\nthe submodule");
    let (s, v) = create(
        &env,
        &t,
        "outer2",
        json!({"url": r.daemon.url("outer.git")}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let seen = in_volume(
        v["data"]["volumeName"].as_str().unwrap(),
        "ls -A /workspace/outer/lib | wc -l",
    );
    assert_eq!(seen, "0");
}

#[tokio::test]
async fn a_clone_that_fails_makes_no_project_and_no_volume() {
    let env = TestEnv::new().await;
    let (_, t) = env.user(berth::domain::Role::Member).await;
    let r = repos();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);

    let cases = [
        (
            json!({"url": r.daemon.url("app.git"), "ref": "no-such-branch"}),
            StatusCode::BAD_REQUEST,
            "no branch, tag or commit \"no-such-branch\"",
        ),
        (
            json!({"url": r.daemon.url("nothing-here.git")}),
            StatusCode::BAD_REQUEST,
            "no repository at",
        ),
        (
            json!({"url": r.daemon.url("app.git"), "ref": "0123456789abcdef"}),
            StatusCode::BAD_REQUEST,
            "no branch, tag or commit",
        ),
        (
            json!({"url": format!("git://127.0.0.1:{closed_port}/app.git")}),
            StatusCode::BAD_GATEWAY,
            "did not answer",
        ),
        (
            json!({"url": "file:///etc"}),
            StatusCode::BAD_REQUEST,
            "not supported",
        ),
        (
            json!({"url": "/var/lib/berth"}),
            StatusCode::BAD_REQUEST,
            "local paths are refused",
        ),
        (
            json!({"url": "ext::sh -c id"}),
            StatusCode::BAD_REQUEST,
            "git.url",
        ),
        (
            json!({"url": "http://someone:hunter2@127.0.0.1:1/app.git"}),
            StatusCode::BAD_REQUEST,
            "must not hold a password",
        ),
        (
            json!({"url": "https://git.example.com/team/app.git"}),
            StatusCode::FORBIDDEN,
            "not a host Berth may clone from",
        ),
        (
            json!({"url": "git@0:app.git"}),
            StatusCode::FORBIDDEN,
            "not a host Berth may clone from",
        ),
        (
            json!({"url": r.daemon.url("app.git"), "dir": "../escape"}),
            StatusCode::BAD_REQUEST,
            "git.dir",
        ),
        (
            json!({"url": r.daemon.url("app.git"), "ref": "--upload-pack=id"}),
            StatusCode::BAD_REQUEST,
            "git.ref",
        ),
    ];
    for (git, status, says) in cases {
        let (s, v) = create(&env, &t, "broken", git.clone()).await;
        assert_eq!(s, status, "{git}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{git}: {message}");
        assert!(!message.contains("hunter2"), "{message}");
        let (_, list) = env.get("/api/projects", &t).await;
        assert_eq!(list["data"], json!([]), "{git} left a project");
        assert_eq!(
            volumes_of(&env),
            Vec::<String>::new(),
            "{git} left a volume"
        );
    }
    // Nothing of a clone is left on Berth's host either.
    let scratch: PathBuf = env.berth.core().config().data_dir.join("tmp");
    let left = std::fs::read_dir(&scratch).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "clones left in {}", scratch.display());
}

#[tokio::test]
async fn a_private_repository_is_cloned_with_a_stored_token_that_is_never_shown() {
    let env = TestEnv::new().await;
    let (_, admin) = env.user(berth::domain::Role::Admin).await;
    let (_, t) = env.user(berth::domain::Role::Member).await;
    let r = repos();
    const TOKEN: &str = "s3cret-Token-4242";
    let http = HttpGit::start(&r.dir.path().join("srv"), "alice", TOKEN);
    let url = http.url("app.git");

    // No credential stored: the host asks for one, Berth has none.
    let (s, v) = create(&env, &t, "private", json!({"url": url})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("127.0.0.1") && m.contains("git-credentials"),
        "{m}"
    );

    // A wrong token: refused, and the wrong one is not repeated.
    let (s, v) = env
        .post(
            "/api/auth/me/git-credentials",
            &t,
            json!({"host": "127.0.0.1", "username": "alice", "token": "not-it-777"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let wrong = v["data"]["id"].as_str().unwrap().to_string();
    let (s, v) = create(&env, &t, "private", json!({"url": url})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(!v.to_string().contains("not-it-777"), "{v}");
    assert_eq!(volumes_of(&env), Vec::<String>::new());

    // One per host; replaced by removing it first.
    let (s, v) = env
        .post(
            "/api/auth/me/git-credentials",
            &t,
            json!({"host": "127.0.0.1", "token": TOKEN}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, _) = env
        .call(
            axum::http::Method::DELETE,
            &format!("/api/auth/me/git-credentials/{wrong}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = env
        .post(
            "/api/auth/me/git-credentials",
            &t,
            json!({"host": "127.0.0.1", "username": "alice", "token": TOKEN}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = create(&env, &t, "private", json!({"url": url})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["data"]["git"]["commit"], r.head.as_str());
    let volume = v["data"]["volumeName"].as_str().unwrap().to_string();
    assert_eq!(in_volume(&volume, "cat /workspace/app/README"), "second");
    // The token is nowhere in the volume (the clone's config included)...
    let found = in_volume(&volume, &format!("grep -r -l '{TOKEN}' /workspace | wc -l"));
    assert_eq!(found, "0");
    assert!(in_volume(&volume, "cat /workspace/app/.git/config").contains(&url));

    // ...nor in any answer: the list, another member's view, the audit log.
    let (_, list) = env.get("/api/auth/me/git-credentials", &t).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["data"][0]["username"], "alice");
    let other = env.member().await;
    let (_, theirs) = env.get("/api/auth/me/git-credentials", &other).await;
    assert_eq!(theirs["data"], json!([]));
    let (s, audit) = env.get("/api/audit", &admin).await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    for text in [list.to_string(), audit.to_string()] {
        assert!(
            !text.contains(TOKEN) && !text.contains("not-it-777"),
            "{text}"
        );
    }
    assert!(audit.to_string().contains("addGitCredential"), "{audit}");
    // Nor in the database in a form another table shows, nor on disk
    // outside it: the scratch directory is gone.
    let scratch = env.berth.core().config().data_dir.join("tmp");
    assert_eq!(
        std::fs::read_dir(&scratch).map(|d| d.count()).unwrap_or(0),
        0
    );
}

//! Projects from git repositories: the clone is made by the git program
//! on Berth's host, in a private temporary directory, then written into
//! the new project's volume through the engine of the node the project is
//! placed on (a remote node included), owned by the workspace images'
//! user. Nothing of the project exists until the clone succeeded, and a
//! failure to write it removes the project again: no half-made project.
//!
//! What git is run with: no configuration but Berth's (no system or global
//! file, no hooks path from anywhere), no prompt, only the transports
//! `domain::git` accepts (`GIT_ALLOW_PROTOCOL`, which also binds
//! submodules), English messages (`domain::git::explain` reads them), a
//! time limit, and a credential only through `GIT_ASKPASS` reading the
//! environment: never in the URL, the command line, the clone's
//! `.git/config`, a log or an answer.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use super::{Core, Projects, Result, ServiceError, Volumes};
use crate::domain::git::{
    check_credential, explain, host_allowed, submodule_urls_allowed, CloneFailure, CloneRequest,
    GitCredential, GitOrigin, Transport,
};
use crate::domain::{now_millis, Project, User};
use crate::secret::Secret;

/// At most this much of git's error output is kept (its last lines say
/// why).
const STDERR_KEPT: usize = 4096;

/// Projects cloned from git (see the module's doc).
#[derive(Clone)]
pub struct Repos {
    inner: Arc<Inner>,
}

struct Inner {
    core: Core,
    projects: Projects,
    volumes: Volumes,
}

/// What a new project from git is made of.
#[derive(Debug, Clone)]
pub struct NewGitProject<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub workspace_type: Option<&'a str>,
    pub clone: CloneRequest,
}

impl Repos {
    pub fn new(core: Core, projects: Projects, volumes: Volumes) -> Repos {
        Repos {
            inner: Arc::new(Inner {
                core,
                projects,
                volumes,
            }),
        }
    }

    fn core(&self) -> &Core {
        &self.inner.core
    }

    /// Clones the repository, then makes the project (placed as any new
    /// project) with the clone in its volume at `clone.dir`. A clone that
    /// fails makes nothing; a volume that cannot be written is removed
    /// with its project.
    pub async fn create_project(&self, user: &User, new: NewGitProject<'_>) -> Result<Project> {
        // Checked before the clone, which may take a while.
        crate::domain::validate_name("name", new.name).map_err(ServiceError::Invalid)?;
        let allowed = &self.core().config().git.allowed_hosts;
        if !host_allowed(&new.clone.url.host, allowed) {
            return Err(ServiceError::Forbidden(format!(
                "{} is not a host Berth may clone from (git.allowed_hosts: {})",
                new.clone.url.host,
                allowed.join(", ")
            )));
        }
        let scratch = self.scratch()?;
        let tree = scratch.path().join("tree");
        let credential = self.credential_for(user, &new.clone).await?;
        let git = Git::prepare(scratch.path(), credential.as_ref())
            .map_err(|e| ServiceError::Storage(format!("preparing the clone: {e}")))?;
        let commit = self.clone_into(&new.clone, &git, &tree).await?;
        let origin = GitOrigin {
            url: new.clone.url.url.clone(),
            reference: new.clone.reference.clone(),
            commit,
            dir: new.clone.dir.clone(),
        };
        let project = self
            .inner
            .projects
            .create_project_from(
                user,
                new.name,
                new.description,
                new.workspace_type,
                Some(origin),
            )
            .await?;
        let git = &self.core().config().git;
        let written = async {
            let engine = self.core().engine_on(&project.node).await?;
            self.inner
                .volumes
                .fill_via_engine(
                    &engine,
                    &project.volume_name,
                    &tree,
                    &new.clone.dir,
                    (git.file_uid, git.file_gid),
                )
                .await
        }
        .await;
        if let Err(e) = written {
            if let Err(undo) = self
                .inner
                .projects
                .delete_project(user, project.id, true)
                .await
            {
                tracing::warn!(project = %project.id, error = %undo, "removing a project whose clone could not be written failed; cleanup removes its volume");
            }
            return Err(e);
        }
        // What storage quotas count: measured now, as a restore does.
        if let Err(e) = self.inner.volumes.measure_project(&project).await {
            tracing::info!(project = %project.id, error = %e, "measuring a cloned project failed; the sizes job measures it");
        }
        Ok(project)
    }

    /// The user's credential for the repository's host, for HTTP(S).
    async fn credential_for(
        &self,
        user: &User,
        req: &CloneRequest,
    ) -> Result<Option<(GitCredential, Secret)>> {
        if req.url.transport != Transport::Http {
            return Ok(None);
        }
        Ok(self
            .core()
            .store()
            .git_credential_for(user.id, &req.url.host)
            .await?)
    }

    /// The user's stored git credentials (never their tokens).
    pub async fn git_credentials(&self, user: &User) -> Result<Vec<GitCredential>> {
        Ok(self.core().store().git_credentials(user.id).await?)
    }

    /// Stores a token for one host, sent by HTTP basic authentication to
    /// that host alone when it asks; one per host.
    pub async fn add_git_credential(
        &self,
        user: &User,
        host: &str,
        username: &str,
        token: Secret,
    ) -> Result<GitCredential> {
        let host = check_credential(host, username).map_err(ServiceError::Invalid)?;
        if token.expose().is_empty() || token.expose().len() > 4096 {
            return Err(ServiceError::Invalid(
                "token must be 1 to 4096 characters".into(),
            ));
        }
        let c = GitCredential {
            id: uuid::Uuid::new_v4(),
            user_id: user.id,
            host,
            username: username.to_string(),
            created_at: now_millis(),
        };
        self.core()
            .store()
            .insert_git_credential(&c, &token)
            .await?;
        Ok(c)
    }

    /// Removes one of the user's credentials (another's id is not found).
    pub async fn remove_git_credential(&self, user: &User, id: uuid::Uuid) -> Result<()> {
        if self
            .core()
            .store()
            .delete_git_credential(user.id, id)
            .await?
        {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!(
                "git credential {id} not found"
            )))
        }
    }

    /// A private directory for one clone, removed when dropped.
    fn scratch(&self) -> Result<tempfile::TempDir> {
        let base = self.core().config().data_dir.join("tmp");
        std::fs::create_dir_all(&base)
            .map_err(|e| ServiceError::Storage(format!("making {}: {e}", base.display())))?;
        tempfile::Builder::new()
            .prefix("git-")
            .tempdir_in(&base)
            .map_err(|e| ServiceError::Storage(format!("a directory for the clone: {e}")))
    }

    /// Runs the clone's commands into `tree`; the commit checked out.
    async fn clone_into(&self, req: &CloneRequest, run: &Git<'_>, tree: &Path) -> Result<String> {
        let into = tree.to_string_lossy().into_owned();
        let timeout = Duration::from_secs(self.core().config().git.clone_timeout_s.max(1));
        let started = tokio::time::Instant::now();
        for args in req.commands(&into) {
            let left = timeout.saturating_sub(started.elapsed());
            self.git(run, &args, left)
                .await
                .map_err(|e| self.failure(e, req, timeout))?;
        }
        if req.submodules && tree.join(".gitmodules").exists() {
            // Their URLs are checked as the project's is before any is
            // fetched.
            let listing = self
                .git(
                    run,
                    &[
                        "-C".into(),
                        into.clone(),
                        "config".into(),
                        "-f".into(),
                        ".gitmodules".into(),
                        "--get-regexp".into(),
                        r"^submodule\..*\.url$".into(),
                    ],
                    Duration::from_secs(30),
                )
                .await;
            // `--get-regexp` exits 1, saying nothing, when no submodule has
            // a URL; any other failure stops the clone rather than fetch
            // URLs nobody checked.
            let listing = match listing {
                Ok(l) => l,
                Err(GitRun::Failed(said)) if said.trim().is_empty() => String::new(),
                Err(e) => return Err(self.failure(e, req, timeout)),
            };
            let allowed = &self.core().config().git.allowed_hosts;
            submodule_urls_allowed(&listing, allowed).map_err(ServiceError::Forbidden)?;
            let recursive = allowed.iter().any(|h| h == "*");
            let left = timeout.saturating_sub(started.elapsed());
            self.git(run, &req.submodule_command(&into, recursive), left)
                .await
                .map_err(|e| self.failure(e, req, timeout))?;
        }
        let head = self
            .git(
                run,
                &["-C".into(), into, "rev-parse".into(), "HEAD".into()],
                Duration::from_secs(30),
            )
            .await
            .map_err(|e| self.failure(e, req, timeout))?;
        Ok(head.trim().to_string())
    }

    /// One git command; its standard output, or why it failed.
    async fn git(
        &self,
        run: &Git<'_>,
        args: &[String],
        limit: Duration,
    ) -> std::result::Result<String, GitRun> {
        let scratch = run.scratch;
        let home = scratch.join("home");
        let mut cmd = tokio::process::Command::new(&self.core().config().git.program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()))
            .env("HOME", &home)
            .env("LANG", "C")
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_ALLOW_PROTOCOL", "git:http:https:ssh")
            .env(
                "GIT_SSH_COMMAND",
                format!(
                    "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={}",
                    known_hosts(scratch).display()
                ),
            )
            // Berth's own settings, over anything a repository says.
            .args(["-c", "protocol.file.allow=never", "-c", "core.hooksPath=/dev/null"])
            .args(args)
            .current_dir(scratch)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let (Some((c, secret)), Some(askpass)) = (run.credential, &run.askpass) {
            // Asked for only when the server wants it; from the
            // environment of this one process, never its command line.
            cmd.env("GIT_ASKPASS", askpass)
                .env("BERTH_GIT_USERNAME", &c.username)
                .env("BERTH_GIT_PASSWORD", secret.expose());
        }
        let child = cmd.spawn().map_err(|e| GitRun::Spawn(e.to_string()))?;
        let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(r) => r.map_err(|e| GitRun::Spawn(e.to_string()))?,
            Err(_) => return Err(GitRun::Timeout),
        };
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let mut err = String::from_utf8_lossy(&out.stderr).into_owned();
        if let Some((_, secret)) = run.credential {
            err = err.replace(secret.expose(), "***");
        }
        let start = err.len().saturating_sub(STDERR_KEPT);
        let start = (start..err.len())
            .find(|i| err.is_char_boundary(*i))
            .unwrap_or(0);
        Err(GitRun::Failed(err[start..].to_string()))
    }

    fn failure(&self, e: GitRun, req: &CloneRequest, timeout: Duration) -> ServiceError {
        match e {
            GitRun::Spawn(m) => {
                ServiceError::Internal(format!("running {}: {m}", self.core().config().git.program))
            }
            GitRun::Timeout => ServiceError::Git(format!(
                "cloning {} took longer than {} s (git.clone_timeout_s) and was stopped",
                req.url.url,
                timeout.as_secs()
            )),
            GitRun::Failed(stderr) => match explain(&stderr, req) {
                (CloneFailure::Auth, m) => ServiceError::Refused(m),
                (CloneFailure::NotFound, m) => ServiceError::Invalid(m),
                (CloneFailure::Unreachable | CloneFailure::Other, m) => ServiceError::Git(m),
            },
        }
    }
}

/// One clone's git: its scratch directory (with the `HOME` git gets), and
/// the credential for the repository's host with its `GIT_ASKPASS`
/// program, if the user stored one.
struct Git<'a> {
    scratch: &'a Path,
    credential: Option<&'a (GitCredential, Secret)>,
    askpass: Option<PathBuf>,
}

impl<'a> Git<'a> {
    /// Makes what every git command of the clone uses, once.
    fn prepare(
        scratch: &'a Path,
        credential: Option<&'a (GitCredential, Secret)>,
    ) -> std::io::Result<Git<'a>> {
        std::fs::create_dir(scratch.join("home"))?;
        let askpass = credential.map(|_| askpass(scratch)).transpose()?;
        Ok(Git {
            scratch,
            credential,
            askpass,
        })
    }
}

/// The `GIT_ASKPASS` program of a clone: answers git's username and
/// password questions from the environment git was started with.
fn askpass(scratch: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = scratch.join("askpass");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(&path)?;
    std::io::Write::write_all(
        &mut f,
        b"#!/bin/sh\ncase \"$1\" in\n  Username*) printf '%s\\n' \"$BERTH_GIT_USERNAME\" ;;\n  *) printf '%s\\n' \"$BERTH_GIT_PASSWORD\" ;;\nesac\n",
    )?;
    Ok(path)
}

/// Where ssh records host keys for one clone (first use accepted: the
/// repository's host is the user's choice).
fn known_hosts(scratch: &Path) -> PathBuf {
    scratch.join("known_hosts")
}

/// How one git command went wrong.
enum GitRun {
    /// git could not be started.
    Spawn(String),
    Timeout,
    /// It ran and failed; its error output.
    Failed(String),
}

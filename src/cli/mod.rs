//! The `berth` command line (`docs/original-api.md` §4 for what stays stable): `serve`, `healthcheck`, the admin
//! commands that work on the data directory directly (`user add`,
//! `token create`), and the client commands that talk to a running server
//! (`client.rs`). Errors end here: printed once, with an exit code.

mod client;
mod local;
mod serve;

use local::{open_store, run_local_command};

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Developer workspaces on Docker, each project on its own volume"
)]
struct Cli {
    /// Config file (TOML); every key optional.
    #[arg(long, global = true, env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    lead: client::LeadingClientOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// Address to listen on (overrides the config's `listen`).
        #[arg(long, env = "BERTH_LISTEN")]
        listen: Option<String>,
    },
    /// Exit 0 when the service answers /healthz: at --server (a URL), else
    /// at --listen / BERTH_LISTEN / the config's `listen`.
    Healthcheck {
        /// The server's URL, e.g. http://berth-host:7780.
        #[arg(long, env = "BERTH_SERVER")]
        server: Option<String>,
        #[arg(long, env = "BERTH_LISTEN")]
        listen: Option<String>,
    },
    /// Print the API's OpenAPI 3.1 document (as `GET /api/openapi.json`
    /// serves it; `docs/openapi.json` is this output).
    Openapi,
    /// Manage users (works on the data directory, server running or not).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens (works on the data directory, server running or not).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Log in to a server (--email, password on stdin; or --token) and keep
    /// the server and token for the commands below (file mode 0600).
    Login {
        #[arg(long)]
        email: Option<String>,
        #[command(flatten)]
        client: client::ClientOpts,
    },
    /// Forget the kept server and token.
    Logout {
        #[command(flatten)]
        client: client::ClientOpts,
    },
    /// Projects: create, ls, rm.
    Project {
        #[command(subcommand)]
        command: client::ProjectCmd,
        #[command(flatten)]
        client: client::ClientOpts,
    },
    /// Workspaces: create, ls, show, start, stop, restart, rm, status,
    /// health, logs, stats.
    Ws {
        #[command(subcommand)]
        command: client::WsCmd,
        #[command(flatten)]
        client: client::ClientOpts,
    },
    /// Backups: create, ls, download, upload, restore, verify, rm.
    Backup {
        #[command(subcommand)]
        command: client::BackupCmd,
        #[command(flatten)]
        client: client::ClientOpts,
    },
    /// Workspace types: ls, pull (admin: from the image's registry).
    Type {
        #[command(subcommand)]
        command: client::TypeCmd,
        #[command(flatten)]
        client: client::ClientOpts,
    },
    /// Docker engines (admin): ls, show, add, cordon, uncordon, label, rm.
    Node {
        #[command(subcommand)]
        command: client::NodeCmd,
        #[command(flatten)]
        client: client::ClientOpts,
    },
    /// Project volumes: clone, size.
    Volume {
        #[command(subcommand)]
        command: client::VolumeCmd,
        #[command(flatten)]
        client: client::ClientOpts,
    },
    /// Run the cleanup jobs now (admin); --dry-run reports only.
    Cleanup {
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        client: client::ClientOpts,
    },
    /// The scheduled jobs and their recent runs (admin).
    Jobs {
        #[command(flatten)]
        client: client::ClientOpts,
    },
    /// The Berth processes serving from the database, and their state
    /// (admin; `*` marks the one that answered).
    Replicas {
        #[command(flatten)]
        client: client::ClientOpts,
    },
    /// Who did what, when (admin): the audit log, newest first.
    Audit {
        #[command(flatten)]
        args: client::AuditArgs,
        #[command(flatten)]
        client: client::ClientOpts,
    },
    /// Your account on the server: show, passwd, tokens, token-add,
    /// token-rm.
    Account {
        #[command(subcommand)]
        command: client::AccountCmd,
        #[command(flatten)]
        client: client::ClientOpts,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        email: String,
        /// Make the user an admin (sees and manages everything).
        #[arg(long)]
        admin: bool,
        /// Read the password from stdin (required: never on the command line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with what they own.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password (read from stdin); ends their login sessions.
    Passwd {
        /// Email or id.
        user: String,
        /// Read the password from stdin (required: never on the command line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make a user an admin or a member (the last admin stays admin).
    Role {
        /// Email or id.
        user: String,
        #[arg(value_parser = ["admin", "member"])]
        role: String,
    },
    /// Set a user's limits over their role's defaults (`quotas.member`,
    /// `quotas.admin`): each a number, `unlimited`, or `default` (the
    /// role's again); the limits not given stay as they are.
    Quota {
        /// Email or id.
        user: String,
        /// Workspaces in total.
        #[arg(long)]
        workspaces: Option<String>,
        /// Workspaces running at once.
        #[arg(long)]
        running: Option<String>,
        /// CPUs the running workspaces' limits may add up to.
        #[arg(long)]
        cpus: Option<String>,
        /// Memory the running workspaces may reserve, MB.
        #[arg(long)]
        memory_mb: Option<String>,
        /// Project volumes and backups, MB.
        #[arg(long)]
        storage_mb: Option<String>,
    },
    /// Remove a user; what they own passes to --transfer-to (required when
    /// they own projects or workspaces; nothing is deleted).
    Rm {
        /// Email or id.
        user: String,
        /// Email or id of the user who receives their projects, workspaces
        /// and backups.
        #[arg(long)]
        transfer_to: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new API token for a user on stdout (and nothing else).
    Create {
        email: String,
        /// A label to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List a user's tokens (never the secrets).
    Ls {
        /// Email or id.
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke one of a user's tokens or login sessions.
    Revoke {
        /// Email or id.
        user: String,
        /// The token's id, as `token ls` shows it.
        id: uuid::Uuid,
    },
}

/// Runs the command line; the binary's `main` is only this.
/// `berth serve` runs with at most two glibc malloc arenas, unless
/// `MALLOC_ARENA_MAX` says otherwise: glibc gives threads that allocate
/// arenas of their own (up to eight per core), and the many small buffers
/// a sqlx SQLite worker thread fills with rows and a runtime thread frees
/// stay in them, never given back — one list of 10,000 workspaces left the
/// server 40 MB larger for good. With two arenas the scale benchmark's
/// server stays at 64 MB instead of 98 (bench/README.md). glibc reads the
/// setting only at process start, so the server re-executes itself once
/// with it (same pid; a failed exec just carries on).
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if !args.iter().skip(1).any(|a| a == "serve") {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut again = std::process::Command::new(exe);
        again.args(&args[1..]).env("MALLOC_ARENA_MAX", "2");
        if let Some(arg0) = args.first() {
            again.arg0(arg0);
        }
        let err = again.exec();
        eprintln!("berth: could not restart with MALLOC_ARENA_MAX=2 ({err}); going on without");
    }
}

pub fn main() -> ExitCode {
    cap_malloc_arenas();
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> Result<ExitCode> {
    // Client commands need no server configuration.
    let lead = cli.lead.clone();
    let with = |c: client::ClientOpts| c.with_leading(&lead);
    let outcome = match cli.command {
        Command::Login { email, client } => client::login(&with(client), email).await,
        Command::Logout { .. } => client::logout(),
        Command::Project { command, client } => client::project(&with(client), command).await,
        Command::Ws { command, client } => client::ws(&with(client), command).await,
        Command::Backup { command, client } => client::backup(&with(client), command).await,
        Command::Volume { command, client } => client::volume(&with(client), command).await,
        Command::Type { command, client } => client::types(&with(client), command).await,
        Command::Node { command, client } => client::node(&with(client), command).await,
        Command::Cleanup { dry_run, client } => client::cleanup(&with(client), dry_run).await,
        Command::Jobs { client } => client::jobs(&with(client)).await,
        Command::Replicas { client } => client::replicas(&with(client)).await,
        Command::Audit { args, client } => client::audit(&with(client), args).await,
        Command::Account { command, client } => client::account(&with(client), command).await,
        Command::Openapi => {
            print!("{}", crate::http::openapi::document_text());
            return Ok(ExitCode::SUCCESS);
        }
        command => return run_local(cli.config, command).await,
    };
    Ok(match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.exit(),
    })
}

async fn run_local(config_file: Option<PathBuf>, command: Command) -> Result<ExitCode> {
    let config = Config::load(config_file.as_deref())?;
    // The admin commands that change something are recorded in the audit
    // log, done or refused.
    let Some((action, details)) = admin_action(&command) else {
        return run_local_command(config, command).await;
    };
    let store = open_store(&config).await?;
    let audit = crate::service::Audit::new(store, config.audit.clone(), None);
    let result = run_local_command(config, command).await;
    audit
        .record(cli_record(action, details, result.is_ok()))
        .await;
    result
}

/// The audit action of an admin command that changes something, and the
/// arguments that name what it acts on (never a password).
fn admin_action(
    command: &Command,
) -> Option<(&'static str, std::collections::BTreeMap<String, String>)> {
    let mut d = std::collections::BTreeMap::new();
    let action = match command {
        Command::User { command } => match command {
            UserCommand::Add { email, admin, .. } => {
                d.insert("email".into(), email.clone());
                d.insert(
                    "role".into(),
                    if *admin { "admin" } else { "member" }.into(),
                );
                "cli.user.add"
            }
            UserCommand::Passwd { user, .. } => {
                d.insert("user".into(), user.clone());
                "cli.user.passwd"
            }
            UserCommand::Role { user, role } => {
                d.insert("user".into(), user.clone());
                d.insert("role".into(), role.clone());
                "cli.user.role"
            }
            UserCommand::Rm { user, transfer_to } => {
                d.insert("user".into(), user.clone());
                if let Some(t) = transfer_to {
                    d.insert("transferTo".into(), t.clone());
                }
                "cli.user.rm"
            }
            UserCommand::Quota { user, .. } => {
                d.insert("user".into(), user.clone());
                "cli.user.quota"
            }
            UserCommand::Ls { .. } => return None,
        },
        Command::Token { command } => match command {
            TokenCommand::Create { email, name } => {
                d.insert("email".into(), email.clone());
                d.insert("name".into(), name.clone());
                "cli.token.create"
            }
            TokenCommand::Revoke { user, id } => {
                d.insert("user".into(), user.clone());
                d.insert("token".into(), id.to_string());
                "cli.token.revoke"
            }
            TokenCommand::Ls { .. } => return None,
        },
        _ => return None,
    };
    Some((action, d))
}

/// An admin command's record: the actor is whoever ran `berth` on this
/// host (the data directory's owner, in effect).
fn cli_record(
    action: &str,
    details: std::collections::BTreeMap<String, String>,
    done: bool,
) -> crate::domain::audit::AuditRecord {
    let os_user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let resource = details
        .get("user")
        .or_else(|| details.get("email"))
        .cloned();
    crate::domain::audit::AuditRecord {
        id: uuid::Uuid::nil(),
        at: 0,
        actor_id: None,
        actor_email: None,
        credential: crate::domain::audit::Credential::Cli,
        credential_id: None,
        credential_name: Some(os_user),
        client: Some(host),
        user_agent: Some(format!("berth {} (CLI)", env!("CARGO_PKG_VERSION"))),
        action: action.to_string(),
        method: "CLI".into(),
        route: format!(
            "berth {}",
            action.trim_start_matches("cli.").replace('.', " ")
        ),
        resource_type: resource.as_ref().map(|_| "user".to_string()),
        resource_id: resource,
        owner_id: None,
        details,
        outcome: if done {
            crate::domain::audit::AuditOutcome::Done
        } else {
            crate::domain::audit::AuditOutcome::Refused
        },
        status: None,
        code: None,
        replica: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses_the_operator_interface() {
        Cli::try_parse_from(["berth", "serve", "--listen", "127.0.0.1:1"]).unwrap();
        Cli::try_parse_from(["berth", "healthcheck"]).unwrap();
        Cli::try_parse_from(["berth", "healthcheck", "--server", "http://h:1"]).unwrap();
        // Client flags belong to client commands (after the command word).
        Cli::try_parse_from(["berth", "ws", "ls", "--json", "--server", "http://h:1"]).unwrap();
        Cli::try_parse_from(["berth", "project", "--server", "http://h:1", "ls"]).unwrap();
        assert!(
            Cli::try_parse_from(["berth", "user", "add", "a@b", "--server", "http://h:1"]).is_err()
        );
        let help = <Cli as clap::CommandFactory>::command()
            .find_subcommand_mut("user")
            .unwrap()
            .find_subcommand_mut("add")
            .unwrap()
            .render_help()
            .to_string();
        assert!(
            !help.contains("--server") && !help.contains("--token"),
            "{help}"
        );
        Cli::try_parse_from(["berth", "user", "add", "a@b", "--admin", "--password-stdin"])
            .unwrap();
        Cli::try_parse_from(["berth", "token", "create", "a@b"]).unwrap();
        assert!(Cli::try_parse_from(["berth", "bogus"]).is_err());
    }
}

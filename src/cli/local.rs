//! The commands that work on the data directory, server running or not:
//! `serve`, `healthcheck`, and the account commands (`user`, `token`),
//! through the same `service::Accounts` the API uses.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::serve::{healthcheck, serve};
use super::Command;
use super::{client, TokenCommand, UserCommand};
use crate::config::Config;
use crate::domain::Role;
use crate::http::wire::rfc3339;
use crate::service::{Accounts, NewUser};
use crate::store::Store;

pub(super) async fn run_local_command(mut config: Config, command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve { listen } => {
            if let Some(l) = listen {
                config.listen = l;
            }
            serve(config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck { server, listen } => {
            let url = match (server, listen) {
                (Some(s), _) => format!("{}/healthz", s.trim_end_matches('/')),
                (None, l) => format!("http://{}/healthz", l.unwrap_or(config.listen)),
            };
            healthcheck(&url).await
        }
        Command::User { command } => user_command(config, command).await,
        Command::Token { command } => token_command(config, command).await,
        _ => unreachable!("client commands are handled by run"),
    }
}

/// `berth user …`: on the data directory, through `Accounts`.
async fn user_command(config: Config, command: UserCommand) -> Result<ExitCode> {
    match command {
        UserCommand::Add {
            email,
            admin,
            password_stdin,
        } => {
            if !password_stdin {
                bail!("give the password on standard input with --password-stdin");
            }
            let password = read_password()?;
            let accounts = Accounts::new(open_store(&config).await?, config.auth.clone());
            let role = if admin { Role::Admin } else { Role::Member };
            let user = accounts
                .add_user(NewUser {
                    email,
                    password,
                    role,
                })
                .await?;
            eprintln!(
                "created {} user {} ({})",
                role.as_str(),
                user.email,
                user.id
            );
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Ls { json } => {
            let accounts = Accounts::new(open_store(&config).await?, config.auth.clone());
            let users = accounts.user_summaries().await?;
            if json {
                let rows: Vec<_> = users
                    .iter()
                    .map(|(u, h)| {
                        serde_json::json!({
                            "id": u.id, "email": u.email, "role": u.role.as_str(),
                            "createdAt": rfc3339(u.created_at),
                            "projects": h.projects, "workspaces": h.workspaces,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let rows = users
                    .iter()
                    .map(|(u, h)| {
                        vec![
                            u.email.clone(),
                            u.role.as_str().to_string(),
                            h.projects.to_string(),
                            h.workspaces.to_string(),
                            rfc3339(u.created_at),
                            u.id.to_string(),
                        ]
                    })
                    .collect();
                client::table(
                    &["EMAIL", "ROLE", "PROJECTS", "WORKSPACES", "CREATED", "ID"],
                    rows,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Passwd {
            user,
            password_stdin,
        } => {
            if !password_stdin {
                bail!("give the password on standard input with --password-stdin");
            }
            let password = read_password()?;
            let accounts = Accounts::new(open_store(&config).await?, config.auth.clone());
            let user = accounts.find_user(&user).await?;
            let ended = accounts.set_password(&user, password, None).await?;
            eprintln!(
                "password set for {}; {ended} login session(s) ended",
                user.email
            );
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Role { user, role } => {
            let accounts = Accounts::new(open_store(&config).await?, config.auth.clone());
            let user = accounts.find_user(&user).await?;
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            accounts.change_role(&user, role).await?;
            eprintln!("{} is now {}", user.email, role.as_str());
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Rm { user, transfer_to } => {
            let accounts = Accounts::new(open_store(&config).await?, config.auth.clone());
            let user = accounts.find_user(&user).await?;
            let heir = match transfer_to {
                Some(h) => Some(accounts.find_user(&h).await?),
                None => None,
            };
            accounts.remove_user(None, &user, heir.as_ref()).await?;
            match heir {
                Some(h) => eprintln!(
                    "removed {}; what they owned now belongs to {}",
                    user.email, h.email
                ),
                None => eprintln!("removed {}", user.email),
            }
            Ok(ExitCode::SUCCESS)
        }
        UserCommand::Quota {
            user,
            workspaces,
            running,
            cpus,
            memory_mb,
            storage_mb,
        } => {
            use crate::domain::quota::Setting;
            fn parse<T: std::str::FromStr + Copy>(
                flag: &str,
                v: Option<String>,
                was: Setting<T>,
            ) -> Result<Setting<T>> {
                Ok(match v.as_deref() {
                    None => was,
                    Some("default") => Setting::Role,
                    Some("unlimited") => Setting::Unlimited,
                    Some(n) => Setting::Limit(n.parse().map_err(|_| {
                        anyhow::anyhow!("--{flag} {n:?}: give a number, unlimited or default")
                    })?),
                })
            }
            let store = open_store(&config).await?;
            let accounts = Accounts::new(store.clone(), config.auth.clone());
            let user = accounts.find_user(&user).await?;
            let was = store.quota_overrides(user.id).await?;
            let set = crate::domain::quota::Overrides {
                workspaces: parse("workspaces", workspaces, was.workspaces)?,
                running: parse("running", running, was.running)?,
                cpus: parse("cpus", cpus, was.cpus)?,
                memory_mb: parse("memory-mb", memory_mb, was.memory_mb)?,
                storage_mb: parse("storage-mb", storage_mb, was.storage_mb)?,
            };
            if let Setting::Limit(c) = set.cpus {
                if !(0.0..=10_000.0).contains(&c) {
                    bail!("--cpus must be between 0 and 10000");
                }
            }
            store.set_quota_overrides(user.id, &set).await?;
            let show = |name: &str, s: String| eprintln!("  {name:<11} {s}");
            fn text<T: std::fmt::Display + Copy>(s: Setting<T>) -> String {
                match s {
                    Setting::Role => "the role's default".into(),
                    Setting::Unlimited => "unlimited".into(),
                    Setting::Limit(n) => n.to_string(),
                }
            }
            eprintln!("quota of {} ({}):", user.email, user.role.as_str());
            show("workspaces", text(set.workspaces));
            show("running", text(set.running));
            show("cpus", text(set.cpus));
            show("memory MB", text(set.memory_mb));
            show("storage MB", text(set.storage_mb));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `berth token …`: on the data directory, through `Accounts`.
async fn token_command(config: Config, command: TokenCommand) -> Result<ExitCode> {
    match command {
        TokenCommand::Create { email, name } => {
            let accounts = Accounts::new(open_store(&config).await?, config.auth.clone());
            let token = accounts.create_api_token(&email, &name).await?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Ls { user, json } => {
            let accounts = Accounts::new(open_store(&config).await?, config.auth.clone());
            let user = accounts.find_user(&user).await?;
            let tokens = accounts.tokens_of(&user).await?;
            if json {
                let rows: Vec<_> = tokens
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "id": t.id, "name": t.name, "kind": t.kind.as_str(),
                            "createdAt": rfc3339(t.created_at),
                            "expiresAt": t.expires_at.map(rfc3339),
                            "lastUsedAt": t.last_used_at.map(rfc3339),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let when = |t: Option<i64>| t.map(rfc3339).unwrap_or_else(|| "-".into());
                let rows = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.to_string(),
                            t.kind.as_str().to_string(),
                            t.name.clone(),
                            rfc3339(t.created_at),
                            when(t.last_used_at),
                            when(t.expires_at),
                        ]
                    })
                    .collect();
                client::table(
                    &["ID", "KIND", "NAME", "CREATED", "LAST USED", "EXPIRES"],
                    rows,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { user, id } => {
            let accounts = Accounts::new(open_store(&config).await?, config.auth.clone());
            let user = accounts.find_user(&user).await?;
            accounts.revoke_token(&user, id).await?;
            eprintln!("revoked token {id} of {}", user.email);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn read_password() -> Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password from stdin")?;
    let password = input.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

/// Opens (creating if needed) the data directory and the database.
pub(super) async fn open_store(config: &Config) -> Result<Store> {
    create_data_dir(config)?;
    let url = config.database_url();
    Store::connect(&url)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&url)))
}

/// A database URL without its password, for messages.
pub(super) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// Makes the data directory (0700) if it is not there.
pub(super) fn create_data_dir(config: &Config) -> Result<()> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The database holds password hashes: owner only.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@db:5432/berth"),
            "postgres://…@db:5432/berth"
        );
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}

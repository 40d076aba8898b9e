//! `berth type`, `berth account`, `berth cleanup` and `berth jobs`:
//! types and pulls, the caller's account and tokens, and the admin's jobs.

use super::*;

#[derive(Subcommand)]
pub enum TypeCmd {
    /// The configured workspace types and whether each can start here.
    Ls,
    /// Pull a type's image from its registry (admin), with its progress.
    Pull { name: String },
}

#[derive(Subcommand)]
pub enum AccountCmd {
    /// Who you are logged in as.
    Show,
    /// Change your password: the current one and the new one on standard
    /// input, one per line. Ends your other login sessions.
    Passwd,
    /// Your API tokens and login sessions (never the secrets).
    Tokens,
    /// Make an API token for a script; prints it (and nothing else) once.
    TokenAdd { name: String },
    /// Revoke one of your tokens or sessions by id.
    TokenRm { id: String },
}

pub async fn cleanup(opts: &ClientOpts, dry_run: bool) -> Res<()> {
    let c = Client::new(opts);
    let v = c
        .post(
            &format!("/api/workspaces/cleanup?dryRun={dry_run}"),
            json!({}),
        )
        .await?;
    c.show(&v, |v| {
        println!(
            "{}inactive {}, orphaned containers {}, orphaned volumes {}, error workspaces {}",
            if dry_run {
                "would clean: "
            } else {
                "cleaned: "
            },
            s(&v["inactiveContainers"]),
            s(&v["orphanedContainers"]),
            s(&v["orphanedVolumes"]),
            s(&v["errorWorkspaces"])
        );
        let rows: Vec<Vec<String>> = v["details"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                vec![
                    s(&d["job"]),
                    s(&d["action"]),
                    s(&d["resource"]),
                    s(&d["outcome"]),
                    s(&d["reason"]),
                ]
            })
            .collect();
        if !rows.is_empty() {
            table(&["JOB", "ACTION", "RESOURCE", "OUTCOME", "REASON"], rows);
        }
        for e in v["errors"].as_array().into_iter().flatten() {
            eprintln!("job {} failed: {}", s(&e["job"]), s(&e["error"]));
        }
    });
    Ok(())
}

pub async fn account(opts: &ClientOpts, cmd: AccountCmd) -> Res<()> {
    let c = Client::new(opts);
    match cmd {
        AccountCmd::Show => {
            let v = c.get("/api/auth/me").await?;
            c.show(&v, |v| {
                println!("{} ({}), id {}", s(&v["email"]), s(&v["role"]), s(&v["id"]))
            });
        }
        AccountCmd::Passwd => {
            let tty = std::io::stdin().is_terminal();
            let line = |prompt: &str| -> Res<String> {
                if tty {
                    eprint!("{prompt}: ");
                }
                let mut l = String::new();
                std::io::stdin()
                    .read_line(&mut l)
                    .map_err(|e| Failure::Usage(format!("reading standard input: {e}")))?;
                Ok(l.trim_end_matches(['\r', '\n']).to_string())
            };
            let current = line("current password")?;
            let new = line("new password")?;
            if current.is_empty() || new.is_empty() {
                return Err(Failure::Usage(
                    "give the current and the new password on standard input, one per line".into(),
                ));
            }
            let v = c
                .post(
                    "/api/auth/password",
                    json!({ "currentPassword": current, "newPassword": new }),
                )
                .await?;
            c.show(&v, |v| {
                eprintln!(
                    "password changed; {} other login session(s) ended",
                    s(&v["endedSessions"])
                )
            });
        }
        AccountCmd::Tokens => {
            let v = c.get("/api/auth/tokens").await?;
            c.show(&v, |v| {
                let rows = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        let name = if t["current"] == true {
                            format!("{} (this one)", s(&t["name"]))
                        } else {
                            s(&t["name"])
                        };
                        vec![
                            s(&t["id"]),
                            s(&t["kind"]),
                            name,
                            s(&t["createdAt"]),
                            s(&t["lastUsedAt"]),
                            s(&t["expiresAt"]),
                        ]
                    })
                    .collect();
                table(
                    &["ID", "KIND", "NAME", "CREATED", "LAST USED", "EXPIRES"],
                    rows,
                );
            });
        }
        AccountCmd::TokenAdd { name } => {
            let v = c.post("/api/auth/tokens", json!({ "name": name })).await?;
            c.show(&v, |v| println!("{}", s(&v["token"])));
        }
        AccountCmd::TokenRm { id } => {
            let id = uuid::Uuid::parse_str(id.trim()).map_err(|_| {
                Failure::Usage(format!(
                    "{id:?} is not a token id (see `berth account tokens`)"
                ))
            })?;
            let v = c.delete(&format!("/api/auth/tokens/{id}")).await?;
            c.show(&v, |_| eprintln!("revoked token {id}"));
        }
    }
    Ok(())
}

/// `berth type ls|pull`.
pub async fn types(opts: &ClientOpts, cmd: TypeCmd) -> Res<()> {
    let c = Client::new(opts);
    match cmd {
        TypeCmd::Ls => {
            let v = c.get("/api/workspaces/types").await?;
            c.show(&v, |v| {
                let rows = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        vec![
                            s(&t["type"]),
                            if t["available"] == true { "yes" } else { "no" }.into(),
                            s(&t["image"]),
                            s(&t["unavailableReason"]),
                        ]
                    })
                    .collect();
                table(&["TYPE", "AVAILABLE", "IMAGE", "WHY NOT"], rows);
            });
        }
        TypeCmd::Pull { name } => {
            let path = format!("/api/workspaces/types/{name}/pull");
            let mut v = c.post(&path, json!({})).await?;
            let pb = bar(None, &format!("pulling {}", s(&v["image"])));
            while v["state"] == "pulling" {
                let (done, total) = (
                    v["bytesDone"].as_u64().unwrap_or(0),
                    v["bytesTotal"].as_u64().unwrap_or(0),
                );
                if total > 0 {
                    pb.set_length(total);
                }
                pb.set_position(done);
                tokio::time::sleep(Duration::from_millis(500)).await;
                v = c.get(&path).await?;
            }
            pb.finish_and_clear();
            if v["state"] == "failed" {
                return Err(Failure::Server(s(&v["error"])));
            }
            c.show(&v, |v| {
                let layers = v["layers"].as_array().map_or(0, Vec::len);
                eprintln!(
                    "pulled {}: {layers} layer(s), {}",
                    s(&v["image"]),
                    mb(&v["bytesTotal"])
                );
            });
        }
    }
    Ok(())
}

pub async fn jobs(opts: &ClientOpts) -> Res<()> {
    let c = Client::new(opts);
    let v = c.get("/api/jobs").await?;
    c.show(&v, |v| {
        let rows = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|j| {
                let last = &j["recentRuns"][0];
                vec![
                    s(&j["name"]),
                    s(&j["schedule"]),
                    s(&j["nextRun"]),
                    if last.is_null() {
                        "-".into()
                    } else {
                        format!("{} {}", s(&last["outcome"]), s(&last["startedAt"]))
                    },
                ]
            })
            .collect();
        table(&["JOB", "SCHEDULE", "NEXT RUN", "LAST RUN"], rows);
    });
    Ok(())
}

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
    /// Your quota: each limit and what you use against it.
    Quota,
}

pub async fn cleanup(opts: &ClientOpts, dry_run: bool) -> Res<()> {
    let c = Client::new(opts);
    let v = c
        .post(
            &format!("/api/workspaces/cleanup?dryRun={dry_run}"),
            json!({}),
        )
        .await?;
    c.show(&v, |r: &wire::CleanupDto| {
        println!(
            "{}inactive {}, orphaned containers {}, orphaned volumes {}, error workspaces {}",
            if dry_run {
                "would clean: "
            } else {
                "cleaned: "
            },
            r.inactive_containers,
            r.orphaned_containers,
            r.orphaned_volumes,
            r.error_workspaces
        );
        let rows: Vec<Vec<String>> = r
            .details
            .iter()
            .map(|d| {
                vec![
                    d.job.clone(),
                    d.action.clone(),
                    d.resource.clone(),
                    d.outcome.clone(),
                    d.reason.clone(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            table(&["JOB", "ACTION", "RESOURCE", "OUTCOME", "REASON"], rows);
        }
        for e in &r.errors {
            eprintln!("job {} failed: {}", e.job, e.error);
        }
    })
}

/// A quota as a table: each limit, what is used, and where the limit
/// comes from.
pub fn quota_table(q: &wire::QuotaDto) {
    let n = |v: f64| {
        if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    };
    let row = |what: &str, i: &wire::QuotaItemDto, unit: &str| {
        vec![
            what.to_string(),
            format!("{}{unit}", n(i.used)),
            i.limit
                .map(|l| format!("{}{unit}", n(l)))
                .unwrap_or_else(|| "unlimited".into()),
            percent(i.used, i.limit),
            i.source.clone(),
        ]
    };
    let gb = |b: u64| format!("{:.2} GB", b as f64 / (1u64 << 30) as f64);
    let s = &q.storage;
    let mut rows = vec![
        row("workspaces", &q.workspaces, ""),
        row("running", &q.running, ""),
        row("cpus", &q.cpus, ""),
        row("memory", &q.memory_mb, " MB"),
        vec![
            "storage".into(),
            gb(s.used),
            s.limit.map(gb).unwrap_or_else(|| "unlimited".into()),
            percent(s.used as f64, s.limit.map(|l| l as f64)),
            s.source.clone(),
        ],
    ];
    if let Some(site) = &q.site {
        rows.push(row("site cpus", &site.cpus, ""));
        rows.push(row("site memory", &site.memory_mb, " MB"));
    }
    table(&["QUOTA", "USED", "LIMIT", "%", "FROM"], rows);
    println!(
        "storage: volumes {} (measured {}), backups {}",
        gb(s.volumes),
        s.measured_at.as_deref().unwrap_or("never"),
        gb(s.backups)
    );
}

fn percent(used: f64, limit: Option<f64>) -> String {
    match limit {
        Some(l) if l > 0.0 => format!("{:.0}%", used / l * 100.0),
        Some(_) => "-".into(),
        None => "".into(),
    }
}

/// `berth audit`: the audit log (admins), newest first.
#[derive(clap::Args)]
pub struct AuditArgs {
    /// Only what this user did (id).
    #[arg(long)]
    pub user: Option<String>,
    /// Only this action (e.g. startWorkspace, login, cli.user.add).
    #[arg(long)]
    pub action: Option<String>,
    /// Only what was done to this resource (an id or a name).
    #[arg(long)]
    pub resource: Option<String>,
    /// From this time on (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many records.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

pub async fn audit(opts: &ClientOpts, a: AuditArgs) -> Res<()> {
    let c = Client::new(opts);
    let mut q: Vec<(String, String)> = vec![("limit".into(), a.limit.to_string())];
    for (k, v) in [
        ("user", a.user),
        ("action", a.action),
        ("resource", a.resource),
        ("since", a.since),
        ("until", a.until),
    ] {
        if let Some(v) = v {
            q.push((k.into(), v));
        }
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q)
        .finish();
    let v = c.get(&format!("/api/audit?{query}")).await?;
    c.show(&v, |list: &Vec<wire::AuditDto>| {
        let rows = list
            .iter()
            .map(|r| {
                let who = r
                    .actor
                    .email
                    .clone()
                    .unwrap_or_else(|| r.actor.credential.clone());
                let resource = match (&r.resource_type, &r.resource_id) {
                    (Some(t), Some(id)) => format!("{t} {id}"),
                    _ => "-".into(),
                };
                let outcome = match (&r.status, &r.code) {
                    (Some(s), Some(c)) => format!("{} {s} {c}", r.outcome),
                    (Some(s), None) => format!("{} {s}", r.outcome),
                    _ => r.outcome.clone(),
                };
                vec![
                    r.at.clone(),
                    who,
                    r.action.clone(),
                    resource,
                    outcome,
                    opt(&r.actor.client),
                ]
            })
            .collect();
        table(
            &["AT", "WHO", "ACTION", "RESOURCE", "OUTCOME", "FROM"],
            rows,
        );
    })
}

pub async fn account(opts: &ClientOpts, cmd: AccountCmd) -> Res<()> {
    let c = Client::new(opts);
    match cmd {
        AccountCmd::Quota => {
            let v = c.get("/api/auth/me/quota").await?;
            c.show(&v, quota_table)?;
        }
        AccountCmd::Show => {
            let v = c.get("/api/auth/me").await?;
            c.show(&v, |u: &wire::UserDto| {
                println!("{} ({}), id {}", u.email, u.role, u.id)
            })?;
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
                    wire::ChangePasswordRequest {
                        current_password: current,
                        new_password: new,
                    },
                )
                .await?;
            c.show(&v, |p: &wire::PasswordChangedDto| {
                eprintln!(
                    "password changed; {} other login session(s) ended",
                    p.ended_sessions
                )
            })?;
        }
        AccountCmd::Tokens => {
            let v = c.get("/api/auth/tokens").await?;
            c.show(&v, |list: &Vec<wire::TokenDto>| {
                let rows = list
                    .iter()
                    .map(|t| {
                        let name = if t.current {
                            format!("{} (this one)", t.name)
                        } else {
                            t.name.clone()
                        };
                        vec![
                            t.id.to_string(),
                            t.kind.clone(),
                            name,
                            t.created_at.clone(),
                            opt(&t.last_used_at),
                            opt(&t.expires_at),
                        ]
                    })
                    .collect();
                table(
                    &["ID", "KIND", "NAME", "CREATED", "LAST USED", "EXPIRES"],
                    rows,
                );
            })?;
        }
        AccountCmd::TokenAdd { name } => {
            let v = c
                .post("/api/auth/tokens", wire::CreateTokenRequest { name })
                .await?;
            c.show(&v, |t: &wire::CreatedTokenDto| println!("{}", t.token))?;
        }
        AccountCmd::TokenRm { id } => {
            let id = uuid::Uuid::parse_str(id.trim()).map_err(|_| {
                Failure::Usage(format!(
                    "{id:?} is not a token id (see `berth account tokens`)"
                ))
            })?;
            let v = c.delete(&format!("/api/auth/tokens/{id}")).await?;
            c.show(&v, |_: &wire::DeletedDto| eprintln!("revoked token {id}"))?;
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
            c.show(&v, |list: &Vec<wire::TypeDto>| {
                let rows = list
                    .iter()
                    .map(|t| {
                        vec![
                            t.type_name.clone(),
                            if t.available { "yes" } else { "no" }.into(),
                            t.image.clone(),
                            opt(&t.unavailable_reason),
                        ]
                    })
                    .collect();
                table(&["TYPE", "AVAILABLE", "IMAGE", "WHY NOT"], rows);
            })?;
        }
        TypeCmd::Pull { name } => {
            let path = format!("/api/workspaces/types/{name}/pull");
            let mut v = c.post(&path, json!({})).await?;
            let mut pull: wire::PullDto = read(&v)?;
            let pb = bar(None, &format!("pulling {}", pull.image));
            while pull.state == "pulling" {
                if pull.bytes_total > 0 {
                    pb.set_length(pull.bytes_total);
                }
                pb.set_position(pull.bytes_done);
                tokio::time::sleep(Duration::from_millis(500)).await;
                v = c.get(&path).await?;
                pull = read(&v)?;
            }
            pb.finish_and_clear();
            if pull.state == "failed" {
                return Err(Failure::Server(opt(&pull.error)));
            }
            c.show(&v, |p: &wire::PullDto| {
                eprintln!(
                    "pulled {}: {} layer(s), {}",
                    p.image,
                    p.layers.len(),
                    mb(p.bytes_total as f64)
                );
            })?;
        }
    }
    Ok(())
}

pub async fn jobs(opts: &ClientOpts) -> Res<()> {
    let c = Client::new(opts);
    let v = c.get("/api/jobs").await?;
    c.show(&v, |list: &Vec<wire::JobDto>| {
        let rows = list
            .iter()
            .map(|j| {
                vec![
                    j.name.clone(),
                    j.schedule.clone(),
                    opt(&j.next_run),
                    opt(&j
                        .recent_runs
                        .first()
                        .map(|last| format!("{} {}", last.outcome, last.started_at))),
                ]
            })
            .collect();
        table(&["JOB", "SCHEDULE", "NEXT RUN", "LAST RUN"], rows);
    })
}

/// `berth replicas`: the Berth processes serving from the database.
pub async fn replicas(opts: &ClientOpts) -> Res<()> {
    let c = Client::new(opts);
    let v = c.get("/api/replicas").await?;
    c.show(&v, |list: &Vec<wire::ReplicaDto>| {
        let rows = list
            .iter()
            .map(|r| {
                vec![
                    format!("{}{}", r.name, if r.current { " *" } else { "" }),
                    r.state.clone(),
                    r.started_at.clone(),
                    r.heartbeat_at.clone(),
                    opt(&r.reaped_at),
                    r.id.to_string(),
                ]
            })
            .collect();
        table(
            &["REPLICA", "STATE", "STARTED", "HEARTBEAT", "REAPED", "ID"],
            rows,
        );
    })
}

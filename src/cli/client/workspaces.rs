//! `berth project` and `berth ws`: projects, workspaces, their logs,
//! stats and health.

use super::*;

#[derive(Subcommand)]
pub enum ProjectCmd {
    /// Create a project (and its volume), empty or cloned from a git
    /// repository (--git URL).
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Clone this repository into the volume (git://, http(s)://,
        /// ssh:// or user@host:path).
        #[arg(long)]
        git: Option<String>,
        /// The branch, tag or commit to check out (with --git).
        #[arg(long = "ref", requires = "git")]
        reference: Option<String>,
        /// A shallow clone of this many commits (with --git).
        #[arg(long, requires = "git")]
        depth: Option<u32>,
        /// Also clone the submodules (with --git).
        #[arg(long, requires = "git")]
        submodules: bool,
        /// The directory in the volume (with --git; the repository's name
        /// by default).
        #[arg(long, requires = "git")]
        dir: Option<String>,
    },
    /// List your projects.
    Ls,
    /// Delete a project; its volume is kept unless --purge.
    Rm {
        id: String,
        #[arg(long)]
        purge: bool,
    },
    /// Recover a project whose node is lost onto another node, from its
    /// newest complete backup (admins; what was written since is lost).
    Recover {
        id: uuid::Uuid,
        /// The node to recover it onto.
        #[arg(long)]
        to: String,
    },
    /// Move a project (its volume and workspaces) to another node (admins).
    Move {
        id: uuid::Uuid,
        /// The target node (see `berth node ls`).
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
pub enum WsCmd {
    /// Create a workspace.
    Create {
        name: String,
        /// Workspace type (see `berth ws types`).
        #[arg(long = "type")]
        type_name: String,
        /// Project whose volume it mounts.
        #[arg(long)]
        project: Option<uuid::Uuid>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List your workspaces.
    Ls,
    /// The workspace types and whether they can run.
    Types,
    /// One workspace, in full.
    Show { id: String },
    /// Start a workspace; --wait until it is healthy.
    Start {
        id: String,
        #[arg(long)]
        wait: bool,
        /// Seconds --wait waits at most.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Stop a workspace.
    Stop { id: String },
    /// Restart a workspace.
    Restart { id: String },
    /// Delete a workspace (its project's volume stays).
    Rm { id: String },
    /// Status, health and resource use.
    Status { id: String },
    /// The health check's state.
    Health { id: String },
    /// Container logs.
    Logs {
        id: String,
        /// Keep following (Server-Sent Events) until interrupted.
        #[arg(short, long)]
        follow: bool,
        #[arg(long)]
        tail: Option<u64>,
        /// Unix seconds, or a duration such as 10m, 2h.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        timestamps: bool,
    },
    /// CPU, memory, network and block I/O.
    Stats {
        id: String,
        /// Follow the live stream (a line every 2 s) until interrupted.
        #[arg(long)]
        watch: bool,
    },
    /// Change CPU and memory limits (live, when running); shows them
    /// without options.
    Resources {
        id: String,
        /// CPU cores (e.g. 1.5).
        #[arg(long)]
        cpus: Option<f64>,
        /// Memory limit in MB.
        #[arg(long)]
        memory: Option<u64>,
        /// Memory plus swap in MB (equal to --memory: no swap).
        #[arg(long)]
        memory_swap: Option<u64>,
        /// Soft memory reservation in MB.
        #[arg(long)]
        memory_reservation: Option<u64>,
    },
    /// Rename, describe, make default, archive or unarchive.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Make it your default workspace.
        #[arg(long)]
        default: bool,
        #[arg(long, conflicts_with = "unarchive")]
        archive: bool,
        #[arg(long)]
        unarchive: bool,
    },
    /// Recent lifecycle events (starts, recoveries, OOM kills).
    Events {
        id: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

pub async fn project(opts: &ClientOpts, cmd: ProjectCmd) -> Res<()> {
    let c = Client::new(opts);
    match cmd {
        ProjectCmd::Create {
            name,
            description,
            git,
            reference,
            depth,
            submodules,
            dir,
        } => {
            let git = git.map(|url| wire::GitSourceRequest {
                url,
                reference,
                depth,
                submodules,
                dir,
            });
            let v = c
                .post(
                    "/api/projects",
                    wire::CreateProjectRequest {
                        name,
                        description: Some(description),
                        workspace_type: None,
                        git,
                    },
                )
                .await?;
            c.show(&v, |p: &wire::ProjectDto| {
                println!("{}", p.id);
                eprintln!("created project {} on volume {}", p.name, p.volume_name);
                if let Some(g) = &p.git {
                    eprintln!(
                        "cloned {} at {} into /workspace/{}",
                        g.url,
                        &g.commit[..g.commit.len().min(12)],
                        g.dir
                    );
                }
            })?;
        }
        ProjectCmd::Ls => {
            let v = c.get_all("/api/projects").await?;
            c.show(&v, |list: &Vec<wire::ProjectDto>| {
                let rows = list
                    .iter()
                    .map(|p| {
                        vec![
                            p.id.to_string(),
                            p.name.clone(),
                            p.node.clone(),
                            p.volume_name.clone(),
                            p.created_at.clone(),
                        ]
                    })
                    .collect();
                table(&["ID", "NAME", "NODE", "VOLUME", "CREATED"], rows);
            })?;
        }
        ProjectCmd::Rm { id, purge } => {
            let v = c
                .delete(&format!(
                    "/api/projects/{id}{}",
                    if purge { "?purge=true" } else { "" }
                ))
                .await?;
            c.show(&v, |_: &wire::ProjectDeletedDto| {
                eprintln!("deleted project {id}")
            })?;
        }
        ProjectCmd::Recover { id, to } => {
            let v = c
                .post(
                    &format!("/api/projects/{id}/recover"),
                    wire::MoveRequest { node: to },
                )
                .await?;
            c.show(&v, |r: &wire::RecoveredDto| {
                println!("{}", r.project.volume_name);
                eprintln!(
                    "recovered project {id} onto {} from backup {} made {} ({} s ago{}): what was written on {} after it is lost",
                    r.to,
                    r.backup_id,
                    r.backup_created_at,
                    r.backup_age_seconds,
                    if r.fetched_from_remote { ", fetched from remote storage" } else { "" },
                    r.from
                );
            })?;
        }
        ProjectCmd::Move { id, to } => {
            let v = c
                .post(
                    &format!("/api/projects/{id}/move"),
                    wire::MoveRequest { node: to },
                )
                .await?;
            c.show(&v, |m: &wire::MovedDto| {
                println!("{}", m.volume_name);
                eprintln!(
                    "moved project {id} from {} to {} in {:.1} s ({} entries, digest {}); restarted {} workspace(s); the old volume {} stays on {} for the retention period",
                    m.from,
                    m.to,
                    m.seconds,
                    m.entries,
                    &m.digest[..12.min(m.digest.len())],
                    m.restarted_workspaces.len(),
                    m.previous_volume,
                    m.from
                );
            })?;
        }
    }
    Ok(())
}

fn workspace_rows(list: &[wire::WorkspaceDto]) -> Vec<Vec<String>> {
    list.iter()
        .map(|w| {
            vec![
                w.id.to_string(),
                w.name.clone(),
                w.type_name.clone(),
                w.status.clone(),
                opt(&w.current_project_id),
                // What a person opens (the proxy or the app's own origin),
                // not the 127.0.0.1 port only this host reaches.
                w.app_url.clone(),
            ]
        })
        .collect()
}

/// Parses `--since`: Unix seconds, or a duration back from now (30s, 10m, 2h, 1d).
fn since_arg(raw: &str) -> Res<i64> {
    if let Ok(n) = raw.parse::<i64>() {
        return Ok(n);
    }
    let (num, unit) = raw.split_at(raw.len().saturating_sub(1));
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    match num.parse::<i64>() {
        Ok(n) if secs > 0 => Ok(chrono::Utc::now().timestamp() - n * secs),
        _ => Err(Failure::Usage(format!(
            "--since {raw:?}: give Unix seconds or a duration like 30s, 10m, 2h, 1d"
        ))),
    }
}

pub async fn ws(opts: &ClientOpts, cmd: WsCmd) -> Res<()> {
    match cmd {
        WsCmd::Types => types(opts, TypeCmd::Ls).await,
        cmd @ (WsCmd::Create { .. }
        | WsCmd::Ls
        | WsCmd::Show { .. }
        | WsCmd::Update { .. }
        | WsCmd::Resources { .. }) => ws_records(opts, cmd).await,
        cmd @ (WsCmd::Start { .. }
        | WsCmd::Stop { .. }
        | WsCmd::Restart { .. }
        | WsCmd::Rm { .. }) => ws_lifecycle(opts, cmd).await,
        cmd => ws_observe(opts, cmd).await,
    }
}

/// `berth ws create|ls|show|update|resources`: the records.
async fn ws_records(opts: &ClientOpts, cmd: WsCmd) -> Res<()> {
    let c = Client::new(opts);
    match cmd {
        WsCmd::Create {
            name,
            type_name,
            project,
            description,
        } => {
            let v = c
                .post(
                    "/api/workspaces",
                    wire::CreateWorkspaceRequest {
                        name,
                        description: Some(description),
                        type_name,
                        is_default: None,
                        project_id: project,
                        resource_limits: None,
                        health_check: None,
                    },
                )
                .await?;
            c.show(&v, |w: &wire::WorkspaceDto| {
                println!("{}", w.id);
                eprintln!("created workspace {} ({})", w.name, w.type_name);
            })?;
        }
        WsCmd::Ls => {
            let v = c.get_all("/api/workspaces").await?;
            c.show(&v, |list: &Vec<wire::WorkspaceDto>| {
                table(
                    &["ID", "NAME", "TYPE", "STATUS", "PROJECT", "URL"],
                    workspace_rows(list),
                )
            })?;
        }
        WsCmd::Show { id } => {
            let v = c.get(&format!("/api/workspaces/{id}")).await?;
            c.show(&v, |w: &wire::WorkspaceDto| {
                for (key, value) in [
                    ("id", w.id.to_string()),
                    ("name", w.name.clone()),
                    ("type", w.type_name.clone()),
                    ("status", w.status.clone()),
                    ("statusReason", opt(&w.status_reason)),
                    ("currentProjectId", opt(&w.current_project_id)),
                    ("appUrl", w.app_url.clone()),
                    ("url", opt(&w.url)),
                    ("containerName", w.container_name.clone()),
                    ("lastActivityAt", opt(&w.last_activity_at)),
                    ("createdAt", w.created_at.clone()),
                ] {
                    println!("{key:<17}{value}");
                }
            })?;
        }
        WsCmd::Resources {
            id,
            cpus,
            memory,
            memory_swap,
            memory_reservation,
        } => {
            let change = crate::domain::ResourceOverrides {
                cpus,
                memory,
                memory_swap,
                memory_reservation,
            };
            let v = if change == crate::domain::ResourceOverrides::default() {
                c.get(&format!("/api/workspaces/{id}")).await?
            } else {
                c.call(
                    reqwest::Method::PATCH,
                    &format!("/api/workspaces/{id}/resources"),
                    Some(serde_json::to_value(&change).expect("JSON")),
                )
                .await?
            };
            let w: wire::WorkspaceDto = read(&v)?;
            let limits = w.config.map(|c| c.resource_limits).ok_or_else(|| {
                Failure::Server(format!("workspace {id}'s type is no longer configured"))
            })?;
            c.show(
                &serde_json::to_value(&limits).expect("JSON"),
                |l: &wire::LimitsDto| {
                    println!("cpus               {}", num(l.cpus));
                    println!("memory             {} MB", l.memory);
                    println!("memory+swap        {} MB", l.memory_swap);
                    println!("memory reservation {} MB", opt(&l.memory_reservation));
                },
            )?;
        }
        WsCmd::Update {
            id,
            name,
            description,
            default,
            archive,
            unarchive,
        } => {
            let body = wire::UpdateWorkspaceRequest {
                name,
                description,
                is_default: default.then_some(true),
                current_project_id: None,
                archived: (archive || unarchive).then_some(archive),
                health_check: None,
            };
            if body.name.is_none()
                && body.description.is_none()
                && body.is_default.is_none()
                && body.archived.is_none()
            {
                return Err(Failure::Usage(
                    "nothing to change: give --name, --description, --default, --archive or --unarchive".into(),
                ));
            }
            let v = c
                .call(
                    reqwest::Method::PUT,
                    &format!("/api/workspaces/{id}"),
                    Some(serde_json::to_value(&body).expect("JSON")),
                )
                .await?;
            c.show(&v, |w: &wire::WorkspaceDto| {
                eprintln!("updated {} ({}, {})", w.name, w.status, w.id)
            })?;
        }
        _ => unreachable!("ws sends only create ls show update resources here"),
    }
    Ok(())
}

/// `berth ws start|stop|restart|rm`: the lifecycle.
async fn ws_lifecycle(opts: &ClientOpts, cmd: WsCmd) -> Res<()> {
    let c = Client::new(opts);
    match cmd {
        WsCmd::Start { id, wait, timeout } => {
            let v = c
                .post(&format!("/api/workspaces/{id}/start"), json!({}))
                .await?;
            if wait {
                wait_healthy(&c, &id, Duration::from_secs(timeout)).await?;
            }
            let v = if wait {
                c.get(&format!("/api/workspaces/{id}")).await?
            } else {
                v
            };
            c.show(&v, |w: &wire::WorkspaceDto| {
                eprintln!("{} {}", w.status, w.app_url)
            })?;
        }
        WsCmd::Stop { id } => {
            let v = c
                .post(&format!("/api/workspaces/{id}/stop"), json!({}))
                .await?;
            c.show(&v, |w: &wire::WorkspaceDto| eprintln!("{}", w.status))?;
        }
        WsCmd::Restart { id } => {
            let v = c
                .post(&format!("/api/workspaces/{id}/restart"), json!({}))
                .await?;
            c.show(&v, |w: &wire::WorkspaceDto| eprintln!("{}", w.status))?;
        }
        WsCmd::Rm { id } => {
            let v = c.delete(&format!("/api/workspaces/{id}")).await?;
            c.show(&v, |_: &wire::DeletedDto| {
                eprintln!("deleted workspace {id}")
            })?;
        }
        _ => unreachable!("ws sends only start stop restart rm here"),
    }
    Ok(())
}

/// `berth ws status|health|logs|stats|events`: what a workspace is doing.
async fn ws_observe(opts: &ClientOpts, cmd: WsCmd) -> Res<()> {
    let c = Client::new(opts);
    match cmd {
        WsCmd::Status { id } => {
            let v = c.get(&format!("/api/workspaces/{id}/status")).await?;
            c.show(&v, |st: &wire::StatusDto| {
                println!("status           {}", st.status);
                if let Some(reason) = &st.status_reason {
                    println!("reason           {reason}");
                }
                println!(
                    "health           {}",
                    opt(&st.health.as_ref().map(|h| &h.status))
                );
                println!(
                    "container        {}",
                    opt(&st.container_info.as_ref().map(|c| &c.state))
                );
                if let Some(r) = &st.resources {
                    println!(
                        "cpu              {}%",
                        opt(&r.cpu_usage.map(|x| format!("{x:.1}")))
                    );
                    println!(
                        "memory           {} MB of {} MB",
                        num(r.memory_usage),
                        opt(&r.memory_limit.map(num))
                    );
                }
            })?;
        }
        WsCmd::Health { id } => {
            let v = c.get(&format!("/api/workspaces/{id}/health")).await?;
            c.show(&v, |h: &wire::HealthResponseDto| {
                println!("{} (failing streak {})", h.status, h.failing_streak);
                if let Some(check) = &h.last_check {
                    if !check.output.trim().is_empty() {
                        println!("last check: {}", check.output.trim());
                    }
                }
            })?;
        }
        WsCmd::Logs {
            id,
            follow,
            tail,
            since,
            timestamps,
        } => logs(&c, &id, follow, tail, since, timestamps).await?,
        WsCmd::Stats { id, watch: false } => {
            let v = c.get(&format!("/api/workspaces/{id}/stats")).await?;
            c.show(&v, |st: &wire::ResourceStatsDto| {
                println!("{}", stats_line(st))
            })?;
        }
        WsCmd::Stats { id, watch: true } => {
            let path = format!("/api/workspaces/{id}/stats/stream?interval=2");
            c.follow_events(&path, |event, data| match event {
                "end" => {
                    eprintln!("{data}");
                    false
                }
                "error" => {
                    eprintln!("error: {data}");
                    true
                }
                _ => {
                    let shown = serde_json::from_str::<Value>(data)
                        .map_err(|e| Failure::Server(e.to_string()))
                        .and_then(|v| {
                            c.show(&v, |st: &wire::ResourceStatsDto| {
                                println!("{}", stats_line(st))
                            })
                        });
                    if shown.is_err() {
                        eprintln!("unreadable event: {data}");
                    }
                    true
                }
            })
            .await?;
        }
        WsCmd::Events { id, limit } => {
            let v = c
                .get(&format!("/api/workspaces/{id}/events?limit={limit}"))
                .await?;
            c.show(&v, |list: &Vec<wire::EventDto>| {
                let rows = list
                    .iter()
                    .map(|e| vec![e.at.clone(), e.kind.clone(), e.message.clone()])
                    .collect();
                table(&["AT", "KIND", "MESSAGE"], rows);
            })?;
        }
        _ => unreachable!("ws sends only status health logs stats events here"),
    }
    Ok(())
}

fn stats_line(st: &wire::ResourceStatsDto) -> String {
    format!(
        "cpu {:>6}%  memory {} MB / {} MB  pids {}  net rx {} tx {}",
        opt(&st.cpu.percent.map(|x| format!("{x:.1}"))),
        num(st.memory.usage),
        opt(&st.memory.limit.map(num)),
        opt(&st.pids),
        st.network.rx_bytes,
        st.network.tx_bytes,
    )
}

async fn wait_healthy(c: &Client, id: &str, timeout: Duration) -> Res<()> {
    let started = Instant::now();
    let spinner = if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .expect("template"),
        );
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    loop {
        let h: wire::HealthResponseDto =
            read(&c.get(&format!("/api/workspaces/{id}/health")).await?)?;
        let status = h.status;
        spinner.set_message(format!("waiting for workspace {id}: {status}"));
        match status.as_str() {
            // Running without a health check counts as ready.
            "healthy" | "none" => {
                spinner.finish_and_clear();
                return Ok(());
            }
            "stopped" | "no_container" => {
                spinner.finish_and_clear();
                return Err(Failure::Server(format!(
                    "workspace {id} stopped while starting"
                )));
            }
            _ => {}
        }
        if started.elapsed() > timeout {
            spinner.finish_and_clear();
            return Err(Failure::Server(format!(
                "workspace {id} is not healthy after {} s (last: {status})",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn logs(
    c: &Client,
    id: &str,
    follow: bool,
    tail: Option<u64>,
    since: Option<String>,
    timestamps: bool,
) -> Res<()> {
    let mut q = vec![format!("timestamps={timestamps}")];
    if let Some(t) = tail {
        q.push(format!("tail={t}"));
    }
    if !follow {
        if let Some(s) = since {
            q.push(format!("since={}", since_arg(&s)?));
        }
        let resp = c
            .send(c.request(
                reqwest::Method::GET,
                &format!("/api/workspaces/{id}/logs?{}", q.join("&")),
            ))
            .await?;
        let text = resp.text().await.map_err(|e| c.unreachable(e))?;
        print!("{text}");
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    c.follow_events(
        &format!("/api/workspaces/{id}/logs/stream?{}", q.join("&")),
        |event, data| match event {
            "end" => false,
            "error" => {
                eprintln!("error: {data}");
                true
            }
            _ => {
                let _ = writeln!(out, "{data}");
                let _ = out.flush();
                true
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_seconds_or_durations() {
        assert!(matches!(since_arg("1700000000"), Ok(1_700_000_000)));
        let now = chrono::Utc::now().timestamp();
        let ten_min = since_arg("10m").ok().unwrap();
        assert!((now - 600 - ten_min).abs() <= 2);
        assert!(since_arg("2h").is_ok() && since_arg("1d").is_ok() && since_arg("30s").is_ok());
        assert!(since_arg("soon").is_err());
        assert!(since_arg("5y").is_err());
        assert!(since_arg("").is_err());
    }
}

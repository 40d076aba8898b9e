//! `berth node`: the Docker engines workspaces run on (admins) — list,
//! show, add (reading TLS client certificates from files), cordon,
//! uncordon, label, remove.

use std::collections::BTreeMap;

use super::*;

#[derive(Subcommand)]
pub enum NodeCmd {
    /// Every node: state, capacity, what is allocated, projects.
    Ls,
    /// One node in full.
    Show { name: String },
    /// Add a Docker engine, e.g.
    /// `berth node add b tcp://10.0.0.2:2376 --tls-dir ./certs --label disk=ssd`.
    Add {
        name: String,
        /// `tcp://HOST:PORT` or `unix:///path/to/docker.sock`.
        endpoint: String,
        /// Where its published ports are reached from Berth (default: the
        /// endpoint's host).
        #[arg(long)]
        address: Option<String>,
        /// `key=value`, repeatable.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// A directory with ca.pem, cert.pem and key.pem (as docker's
        /// `--tlsverify` uses them): the engine's CA, Berth's client
        /// certificate and its key.
        #[arg(long, value_name = "DIR")]
        tls_dir: Option<PathBuf>,
    },
    /// Place nothing new on a node (what runs there keeps running).
    Cordon { name: String },
    /// Let a node take work again (also ends a drain).
    Uncordon { name: String },
    /// Replace a node's labels with these `key=value` pairs (none: clear).
    Label {
        name: String,
        #[arg(value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
    /// Move every project off a node, one at a time (following the
    /// progress), then leave it cordoned.
    Drain {
        name: String,
        /// Start it and return at once (`GET /api/nodes/NAME/drain` follows).
        #[arg(long)]
        no_wait: bool,
    },
    /// Remove a node that holds no project.
    Rm { name: String },
    /// Where a workspace of a type would go now, and why each node would
    /// or would not take it (nothing is placed).
    Plan {
        #[arg(long = "type")]
        type_name: String,
        /// A project: its volume's node pins the workspace there.
        #[arg(long)]
        project: Option<uuid::Uuid>,
        /// `key=value` a node must carry, repeatable.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
}

fn labels_of(pairs: &[String]) -> Res<BTreeMap<String, String>> {
    crate::domain::nodes::parse_labels(pairs.iter().map(String::as_str)).map_err(Failure::Usage)
}

fn tls_from(dir: &std::path::Path) -> Res<wire::NodeTlsRequest> {
    let read = |file: &str| {
        let p = dir.join(file);
        std::fs::read_to_string(&p)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", p.display())))
    };
    Ok(wire::NodeTlsRequest {
        ca: read("ca.pem")?,
        cert: read("cert.pem")?,
        key: read("key.pem")?,
    })
}

/// Memory as people read it: MB below a gigabyte (a 32 MB reservation
/// must not read "0.0 GB"), GB above.
fn gb(mb: u64) -> String {
    if mb < 1024 {
        format!("{mb} MB")
    } else {
        format!("{:.1} GB", mb as f64 / 1024.0)
    }
}

fn print_list(list: &[wire::NodeDto]) {
    let rows = list
        .iter()
        .map(|n| {
            let state = match &n.unreachable_since {
                Some(since) => format!("{} since {since}", n.state),
                None => n.state.clone(),
            };
            let (cpus, mem) = match &n.capacity {
                Some(c) => (
                    format!("{}/{}", num(n.allocated.cpus), num(c.cpus)),
                    format!("{}/{}", gb(n.allocated.memory_mb), gb(c.memory_mb)),
                ),
                None => ("-".into(), "-".into()),
            };
            let labels = n
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            vec![
                n.name.clone(),
                state,
                n.endpoint.clone(),
                cpus,
                mem,
                n.running_workspaces.to_string(),
                n.projects.to_string(),
                if labels.is_empty() {
                    "-".into()
                } else {
                    labels
                },
            ]
        })
        .collect();
    table(
        &[
            "NODE", "STATE", "ENDPOINT", "CPUS", "MEMORY", "RUNNING", "PROJECTS", "LABELS",
        ],
        rows,
    );
}

fn print_one(n: &wire::NodeDto) {
    print_list(std::slice::from_ref(n));
    if let Some(e) = &n.error {
        eprintln!("last heartbeat failed: {e}");
    }
    if let Some(e) = &n.engine {
        eprintln!(
            "engine {} (API {}, cgroup v{}), ports at {}{}",
            e.version,
            e.api_version,
            e.cgroup_version,
            n.address,
            if n.tls { ", TLS" } else { "" }
        );
    }
}

pub async fn node(opts: &ClientOpts, cmd: NodeCmd) -> Res<()> {
    let c = Client::new(opts);
    let path = |name: &str| format!("/api/nodes/{name}");
    match cmd {
        NodeCmd::Ls => {
            let v = c.get("/api/nodes").await?;
            c.show(&v, |list: &Vec<wire::NodeDto>| print_list(list))?;
        }
        NodeCmd::Show { name } => {
            let v = c.get(&path(&name)).await?;
            c.show(&v, print_one)?;
        }
        NodeCmd::Add {
            name,
            endpoint,
            address,
            labels,
            tls_dir,
        } => {
            let req = wire::AddNodeRequest {
                name,
                endpoint,
                address,
                labels: labels_of(&labels)?,
                tls: tls_dir.as_deref().map(tls_from).transpose()?,
            };
            let v = c.post("/api/nodes", req).await?;
            c.show(&v, print_one)?;
        }
        NodeCmd::Cordon { name } => {
            let req = wire::UpdateNodeRequest {
                cordoned: Some(true),
                ..Default::default()
            };
            let v = c.patch(&path(&name), req).await?;
            c.show(&v, print_one)?;
        }
        NodeCmd::Uncordon { name } => {
            let req = wire::UpdateNodeRequest {
                cordoned: Some(false),
                ..Default::default()
            };
            let v = c.patch(&path(&name), req).await?;
            c.show(&v, print_one)?;
        }
        NodeCmd::Label { name, labels } => {
            let req = wire::UpdateNodeRequest {
                labels: Some(labels_of(&labels)?),
                ..Default::default()
            };
            let v = c.patch(&path(&name), req).await?;
            c.show(&v, print_one)?;
        }
        NodeCmd::Plan {
            type_name,
            project,
            labels,
        } => {
            let req = wire::PlacementRequestDto {
                type_name,
                project_id: project,
                labels: labels_of(&labels)?,
            };
            let v = c.post("/api/placement", req).await?;
            c.show(&v, |p: &wire::PlacementDto| {
                println!("{}", p.node);
                let rows = p
                    .nodes
                    .iter()
                    .map(|n| {
                        vec![
                            n.node.clone(),
                            if n.fits { "yes" } else { "no" }.into(),
                            opt(&n.reason),
                        ]
                    })
                    .collect();
                table(&["NODE", "FITS", "WHY NOT"], rows);
            })?;
        }
        NodeCmd::Drain { name, no_wait } => {
            let v = c
                .call(
                    reqwest::Method::POST,
                    &format!("{}/drain", path(&name)),
                    None,
                )
                .await?;
            let mut d: wire::DrainDto = read(&v)?;
            if !c.json {
                eprintln!("draining {name}: {} project(s) to move", d.total);
            }
            let (mut moved, mut failed) = (0, 0);
            loop {
                if !c.json {
                    for m in &d.moved[moved..] {
                        eprintln!("  moved {} to {} ({:.1} s)", m.project_id, m.to, m.seconds);
                    }
                    for f in &d.failed[failed..] {
                        eprintln!("  NOT moved {}: {}", f.project_id, f.error);
                    }
                    (moved, failed) = (d.moved.len(), d.failed.len());
                }
                if no_wait || d.finished_at.is_some() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                d = read(&c.get(&format!("{}/drain", path(&name))).await?)?;
            }
            if c.json {
                println!("{}", serde_json::to_string_pretty(&d).expect("JSON"));
            } else if d.finished_at.is_some() {
                eprintln!(
                    "{name} drained: {} moved, {} not; it is cordoned",
                    d.moved.len(),
                    d.failed.len()
                );
            }
            if !d.failed.is_empty() {
                return Err(Failure::Server(format!(
                    "{} project(s) could not leave {name}",
                    d.failed.len()
                )));
            }
        }
        NodeCmd::Rm { name } => {
            let v = c.delete(&path(&name)).await?;
            c.show(&v, |r: &wire::NodeRemovedDto| {
                eprintln!("removed node {}", r.name)
            })?;
        }
    }
    Ok(())
}

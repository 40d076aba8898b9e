//! `berth backup` and `berth volume`: backups with progress bars and
//! checksums, uploads, restores, clones and sizes.

use super::*;

#[derive(Subcommand)]
pub enum BackupCmd {
    /// Back up a project's volume.
    Create {
        project: String,
        /// zstd (default) or gzip.
        #[arg(long)]
        compression: Option<String>,
        /// Pause running workspaces for a consistent copy.
        #[arg(long)]
        pause: bool,
    },
    /// A project's backups.
    Ls { project: String },
    /// Download an archive (its checksum is checked).
    Download {
        id: String,
        /// File to write (default: the server's file name).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Upload an archive into a project's catalogue.
    Upload { project: String, file: PathBuf },
    /// Replace a project's data with a backup's.
    Restore {
        project: String,
        backup: uuid::Uuid,
        /// Stop running workspaces on the project (and start them after).
        #[arg(long)]
        stop: bool,
    },
    /// Re-read an archive and check it.
    Verify { id: String },
    /// A project's backup schedule and retention; options change them (a
    /// setting left out keeps the project's own value; --reset goes back to
    /// the server's defaults).
    Policy {
        project: String,
        /// Cron expression (5 fields), e.g. "0 3 * * *".
        #[arg(long)]
        schedule: Option<String>,
        #[arg(long)]
        keep_last: Option<u32>,
        #[arg(long)]
        keep_daily: Option<u32>,
        #[arg(long)]
        keep_weekly: Option<u32>,
        /// Forget the project's own settings.
        #[arg(long, conflicts_with_all = ["schedule", "keep_last", "keep_daily", "keep_weekly"])]
        reset: bool,
    },
    /// Delete a backup.
    Rm { id: String },
}

#[derive(Subcommand)]
pub enum VolumeCmd {
    /// Copy a project's data into another project (or a new one).
    Clone {
        project: String,
        /// Existing target project.
        #[arg(long, conflicts_with = "name", required_unless_present = "name")]
        to: Option<uuid::Uuid>,
        /// Create the target project with this name.
        #[arg(long)]
        name: Option<String>,
        /// Replace a non-empty target's content.
        #[arg(long)]
        overwrite: bool,
    },
    /// How much data a project holds.
    Size { project: String },
}

pub async fn backup(opts: &ClientOpts, cmd: BackupCmd) -> Res<()> {
    let c = Client::new(opts);
    let summary = |b: &wire::BackupDto| {
        format!(
            "{} {} {} {} sha256 {}",
            b.id,
            b.state,
            b.compression,
            opt(&b.size_bytes.map(|n| mb(n as f64))),
            opt(&b.sha256)
        )
    };
    match cmd {
        BackupCmd::Create {
            project,
            compression,
            pause,
        } => {
            let body = wire::BackupRequest {
                compression,
                pause_workspace: Some(pause),
            };
            let v = c
                .post(&format!("/api/workspaces/projects/{project}/backup"), body)
                .await?;
            c.show(&v, |b| println!("{}", summary(b)))?;
        }
        BackupCmd::Ls { project } => {
            let v = c
                .get_all(&format!("/api/projects/{project}/backups"))
                .await?;
            c.show(&v, |list: &Vec<wire::BackupDto>| {
                let rows = list
                    .iter()
                    .map(|b| {
                        // Where the archive is: here, in remote storage, or
                        // both (`backups.remote`).
                        let remote = b.remote.as_ref().map(|r| r.state.as_str());
                        let place = match (b.stored_locally, remote) {
                            _ if b.state != "complete" => "-".to_string(),
                            (true, None) => "local".to_string(),
                            (true, Some(r)) => format!("local, remote {r}"),
                            (false, Some("stored")) => "remote only".to_string(),
                            (false, Some(r)) => format!("missing (remote {r})"),
                            (false, None) => "missing".to_string(),
                        };
                        vec![
                            b.id.to_string(),
                            b.created_at.clone(),
                            b.state.clone(),
                            b.compression.clone(),
                            opt(&b.size_bytes.map(|n| mb(n as f64))),
                            place,
                        ]
                    })
                    .collect();
                table(
                    &["ID", "CREATED", "STATE", "COMPRESSION", "SIZE", "STORED"],
                    rows,
                );
            })?;
        }
        BackupCmd::Download { id, output } => download(&c, &id, output).await?,
        BackupCmd::Upload { project, file } => {
            let v = upload(&c, &project, &file).await?;
            c.show(&v, |b| println!("{}", summary(b)))?;
        }
        BackupCmd::Restore {
            project,
            backup,
            stop,
        } => {
            let v = c
                .post(
                    &format!("/api/workspaces/projects/{project}/restore"),
                    wire::RestoreRequest {
                        backup_id: backup,
                        stop_workspace: Some(stop),
                    },
                )
                .await?;
            c.show(&v, |r: &wire::RestoredDto| {
                eprintln!(
                    "restored {backup} into volume {} (previous volume {} kept for the retention period)",
                    r.volume_name, r.previous_volume
                )
            })?;
        }
        BackupCmd::Verify { id } => {
            let v = c
                .post(&format!("/api/backups/{id}/verify"), json!({}))
                .await?;
            c.show(&v, |r: &wire::VerifyDto| {
                println!("ok: {} entries, checksum matches", r.entries)
            })?;
        }
        BackupCmd::Rm { id } => {
            let v = c.delete(&format!("/api/backups/{id}")).await?;
            c.show(&v, |_: &wire::DeletedDto| eprintln!("deleted backup {id}"))?;
        }
        BackupCmd::Policy {
            project,
            schedule,
            keep_last,
            keep_daily,
            keep_weekly,
            reset,
        } => {
            let path = format!("/api/projects/{project}/backup-policy");
            let nothing = schedule.is_none()
                && keep_last.is_none()
                && keep_daily.is_none()
                && keep_weekly.is_none();
            let v = if reset {
                c.call(reqwest::Method::PUT, &path, Some(json!({}))).await?
            } else if nothing {
                c.get(&path).await?
            } else {
                // PUT replaces the project's own settings: start from them.
                let mut own = read::<wire::PolicyDto>(&c.get(&path).await?)?.own;
                own.schedule = schedule.or(own.schedule);
                own.keep_last = keep_last.or(own.keep_last);
                own.keep_daily = keep_daily.or(own.keep_daily);
                own.keep_weekly = keep_weekly.or(own.keep_weekly);
                let body = serde_json::to_value(&own).expect("JSON");
                c.call(reqwest::Method::PUT, &path, Some(body)).await?
            };
            c.show(&v, |p: &wire::PolicyDto| {
                let mark = |own: bool| {
                    if own {
                        "(this project)"
                    } else {
                        "(default)"
                    }
                };
                let own = &p.own;
                println!(
                    "schedule     {} {}",
                    p.schedule,
                    mark(own.schedule.is_some())
                );
                println!(
                    "keep last    {} {}",
                    p.keep_last,
                    mark(own.keep_last.is_some())
                );
                println!(
                    "keep daily   {} {}",
                    p.keep_daily,
                    mark(own.keep_daily.is_some())
                );
                println!(
                    "keep weekly  {} {}",
                    p.keep_weekly,
                    mark(own.keep_weekly.is_some())
                );
            })?;
        }
    }
    Ok(())
}

async fn download(c: &Client, id: &str, output: Option<PathBuf>) -> Res<()> {
    let mut resp = c
        .send(c.request(reqwest::Method::GET, &format!("/api/backups/{id}/download")))
        .await?;
    let name = resp
        .headers()
        .get(reqwest::header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("filename=\"").nth(1))
        .and_then(|v| v.split('"').next())
        .map(str::to_string)
        .unwrap_or_else(|| format!("{id}.tar"));
    let want = resp
        .headers()
        .get("x-checksum-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let path = output.unwrap_or_else(|| PathBuf::from(&name));
    let part = path.with_extension("part");
    let mut file = std::fs::File::create(&part)
        .map_err(|e| Failure::Usage(format!("creating {}: {e}", part.display())))?;
    let pb = bar(resp.content_length(), "download");
    let mut hash = sha2::Sha256::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| c.unreachable(e))? {
        hash.update(&chunk);
        file.write_all(&chunk)
            .map_err(|e| Failure::Usage(format!("writing {}: {e}", part.display())))?;
        pb.inc(chunk.len() as u64);
    }
    pb.finish_and_clear();
    file.sync_all()
        .map_err(|e| Failure::Usage(format!("writing {}: {e}", part.display())))?;
    let got = hex::encode(hash.finalize());
    if let Some(want) = want {
        if want != got {
            let _ = std::fs::remove_file(&part);
            return Err(Failure::Server(format!(
                "the download's checksum {got} is not the server's {want}; nothing was kept"
            )));
        }
    }
    std::fs::rename(&part, &path)
        .map_err(|e| Failure::Usage(format!("renaming to {}: {e}", path.display())))?;
    let info = json!({ "file": path, "sha256": got });
    c.show(&info, |_: &Value| println!("{}  {}", got, path.display()))
}

async fn upload(c: &Client, project: &str, file: &Path) -> Res<Value> {
    let f = tokio::fs::File::open(file)
        .await
        .map_err(|e| Failure::Usage(format!("opening {}: {e}", file.display())))?;
    let len = f
        .metadata()
        .await
        .map_err(|e| Failure::Usage(format!("reading {}: {e}", file.display())))?
        .len();
    // The checksum first, so the server can check what it received.
    let sum = {
        let file = file.to_path_buf();
        tokio::task::spawn_blocking(move || crate::backup::sha256_file(&file))
            .await
            .map_err(|e| Failure::Usage(e.to_string()))?
            .map_err(|e| Failure::Usage(e.to_string()))?
    };
    let pb = bar(Some(len), "upload");
    let pb2 = pb.clone();
    let stream = futures_util::stream::unfold(f, move |mut f| {
        let pb = pb2.clone();
        async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    pb.inc(n as u64);
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        }
    });
    let resp = c
        .send(
            c.request(
                reqwest::Method::POST,
                &format!("/api/projects/{project}/backups/upload"),
            )
            .header("x-checksum-sha256", sum)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(stream)),
        )
        .await;
    pb.finish_and_clear();
    let v: Value = resp?
        .json()
        .await
        .map_err(|e| Failure::Server(format!("the server's answer is not JSON: {e}")))?;
    Ok(v.get("data").cloned().unwrap_or(v))
}

pub async fn volume(opts: &ClientOpts, cmd: VolumeCmd) -> Res<()> {
    let c = Client::new(opts);
    match cmd {
        VolumeCmd::Clone {
            project,
            to,
            name,
            overwrite,
        } => {
            let body = match (to, name) {
                (Some(t), _) => wire::CloneRequest {
                    target_project_id: Some(t),
                    name: None,
                    overwrite: Some(overwrite),
                },
                (None, Some(n)) => wire::CloneRequest {
                    target_project_id: None,
                    name: Some(n),
                    overwrite: None,
                },
                (None, None) => unreachable!("clap requires --to or --name"),
            };
            let v = c
                .post(&format!("/api/workspaces/projects/{project}/clone"), body)
                .await?;
            c.show(&v, |r: &wire::ClonedDto| println!("{}", r.volume_name))?;
        }
        VolumeCmd::Size { project } => {
            let v = c
                .get(&format!("/api/workspaces/projects/{project}/volume-size"))
                .await?;
            c.show(&v, |r: &wire::SizeDto| {
                println!("{} bytes ({} MB)", r.size_bytes, num(r.size_mb))
            })?;
        }
    }
    Ok(())
}

//! `berth serve` and `berth healthcheck`: the data directory made and
//! locked (SQLite: one server per directory), the store and the engine
//! opened, the replica joined, then `App::run`; and the health probe.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::local::{create_data_dir, open_store};
use crate::config::Config;
use crate::engine::Engine;

/// Locks the data directory for this `berth serve`: SQLite is one
/// server's alone, and a second one on the same directory would corrupt
/// its state (each would take the other's work for a dead server's). The
/// lock (`flock` on `<data_dir>/serve.lock`) goes with the process, however
/// it ends. The CLI's admin commands do not take it.
fn lock_data_dir(config: &Config) -> Result<std::fs::File> {
    use std::io::{Seek, Write};
    let path = config.data_dir.join("serve.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        let holder = holder.trim();
        bail!(
            "another berth serve{} is serving from the data directory {}: with SQLite one server owns a data directory. Stop it, or give this one its own data_dir (and instance); to run several replicas of one installation use PostgreSQL (database_url = \"postgres://…\"; README: Several replicas)",
            if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            },
            config.data_dir.display()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}

pub(super) async fn serve(config: Config) -> Result<()> {
    let addr: SocketAddr = config.listen_addr()?;
    create_data_dir(&config)?;
    let shared = config.database_url().starts_with("postgres");
    let _dir_lock = if shared {
        None
    } else {
        Some(lock_data_dir(&config)?)
    };
    let store = open_store(&config).await?;
    let docker_host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let (engine, info) = Engine::connect().await.with_context(|| {
        format!(
            "cannot reach the Docker engine at {docker_host}: is it running, and may this user use it?"
        )
    })?;
    tracing::info!(
        version = %info.version,
        api = %info.api_version,
        cpus = info.cpus,
        cgroup = %info.cgroup_version,
        "connected to the Docker engine"
    );
    let app = crate::app::App::new(store.clone(), engine, config, info.cpus);
    let berth = app.berth.clone();
    let name = replica_name(addr);
    app.start_replica(&name)
        .await
        .context("this Berth cannot serve beside the others on its database")?;
    tracing::info!(replica = %berth.core().replicas().id(), %name, shared, "serving as a replica");
    if store.user_count().await? == 0 {
        tracing::warn!(
            "no users yet: create the first with `berth user add you@example.com --admin --password-stdin` (same --config), then log in at http://{addr}/"
        );
    }
    for t in berth.types().list().await? {
        if !t.available {
            tracing::warn!(r#type = %t.name, reason = t.reason.as_deref().unwrap_or(""), "workspace type unavailable");
        }
    }
    let result = app.run(addr, shutdown_signal()).await;
    store.close().await;
    result
}

/// How this replica is shown to people: the host's name and the port.
fn replica_name(addr: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| addr.ip().to_string());
    format!("{host}:{}", addr.port())
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

pub(super) async fn healthcheck(url: &str) -> Result<ExitCode> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => {
            println!("ok");
            Ok(ExitCode::SUCCESS)
        }
        Ok(r) => {
            eprintln!("berth: {url} answered {}", r.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("berth: {url} did not answer: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

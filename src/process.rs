//! The running process: [`App::run`] starts the loops beside the router
//! (`app::Loop`), serves until told to stop or until the other replicas
//! take this one for gone, and stops them in order. `berth serve` is this
//! plus opening the store and the engine; the tests' harness starts the
//! same loops through [`App::start_loops`].

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::app::{App, Loop};

/// How long a job that is running at shutdown is let finish.
const JOBS_GRACE: Duration = Duration::from_secs(60);

impl App {
    /// Serves on `addr` with every loop running until `stop` completes
    /// (or this replica is fenced), then stops the loops in order. The
    /// replica was started before ([`App::start_replica`]).
    pub async fn run(
        self,
        addr: SocketAddr,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let running = self.start_loops(&Loop::ALL).await;
        let berth = self.berth.clone();
        let fenced = berth.core().replicas().fenced();
        let stop = {
            let fenced = fenced.clone();
            async move {
                tokio::select! {
                    _ = stop => {}
                    _ = fenced.cancelled() => {}
                }
            }
        };
        crate::http::serve(self, addr, stop).await?;
        running.stop(JOBS_GRACE).await;
        if fenced.is_cancelled() {
            bail!(
                "the other replicas took this one for gone (no heartbeat for {} s) and took over its work; it stopped serving — start it again",
                berth.core().replicas().policy().dead_after_s
            );
        }
        berth.core().replicas().stopped().await;
        Ok(())
    }
}

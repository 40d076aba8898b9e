//! What workspaces are doing, as figures and text: live CPU and memory
//! (the sampler's samples, the cgroup files, the engine's stats), their
//! history, the fleet's figures, and container logs, with a count of the
//! streams open. Reads containers through the engine view (`View`); a
//! container it sees running anew gets a first sample then, so the first
//! status read already has a CPU %.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Core, Result, View};
use crate::engine::ContainerState;

pub mod logs;
pub mod stats;

/// Figures and logs of workspaces (see the module's doc).
#[derive(Clone)]
pub struct Observe {
    inner: Arc<Inner>,
}

struct Inner {
    core: Core,
    view: View,
    /// Per running container: pid, last sample and history (see `stats`).
    tracked: Mutex<HashMap<String, stats::Tracked>>,
    /// Log and stats streams open right now.
    log_streams: Arc<std::sync::atomic::AtomicUsize>,
}

impl Observe {
    pub fn new(core: Core, view: View) -> Observe {
        Observe {
            inner: Arc::new(Inner {
                core,
                view,
                tracked: Mutex::new(HashMap::new()),
                log_streams: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            }),
        }
    }

    fn core(&self) -> &Core {
        &self.inner.core
    }

    /// The engine view this reads containers through.
    pub fn view(&self) -> &View {
        &self.inner.view
    }

    /// Asks `node`'s engine about the container `name`, notes the answer
    /// in the view, and takes a first sample of a container it sees
    /// running anew. Returns the state and whether it changed for a
    /// reader: what the watcher acts on.
    pub(crate) async fn inspect_noted(
        &self,
        node: &str,
        name: &str,
    ) -> Result<(Option<ContainerState>, bool)> {
        let (state, changed) = self.view().inspect_noted(node, name).await?;
        if let Some(s) = state.as_ref().filter(|_| changed) {
            let engine = self.core().engine_on(node).await?;
            self.seed_sample(&engine, s);
        }
        Ok((state, changed))
    }

    /// As [`Observe::inspect_noted`], the state only: what lifecycle
    /// operations and reconcile use, which must see the engine itself.
    pub(crate) async fn inspect_on(
        &self,
        node: &str,
        name: &str,
    ) -> Result<Option<ContainerState>> {
        Ok(self.inspect_noted(node, name).await?.0)
    }

    /// The container `name` on `node` from the view when it is synced, else
    /// from the engine: what readers (status, health, the proxy, stats)
    /// use.
    pub(crate) async fn container_on(
        &self,
        node: &str,
        name: &str,
    ) -> Result<Option<ContainerState>> {
        match self.view().cached(node, name).await? {
            Some(state) => Ok(state),
            None => self.inspect_on(node, name).await,
        }
    }
}

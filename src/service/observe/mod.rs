//! What workspaces are doing, as figures and text: live CPU and memory
//! (the sampler's samples, the cgroup files, the engine's stats), their
//! history, the fleet's figures, and container logs, with a count of the
//! streams open. Reads containers through the engine view (`View`); a
//! container it sees running anew gets a first sample then, so the first
//! status read already has a CPU %. How containers are read (view or
//! engine) is in `stats`, beside the samples it seeds; `logs` reads
//! through it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{Core, View};

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
}

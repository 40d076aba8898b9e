//! The Docker engine adapter: the only module that imports bollard. It
//! speaks in Berth's terms (a workspace container spec, a container's state,
//! a managed volume) and turns the engine's errors into [`EngineError`].

pub mod archive;
mod containers;
mod events;
mod logs;
mod relay;
mod resources;
mod volumes;

pub use crate::domain::containers::{ContainerState, HealthProbe, HealthReport};
pub use containers::ContainerSpec;
pub use events::{ContainerAction, ContainerEvent};
pub use logs::{LogChunk, LogQuery, LogStream};
pub use relay::{RelayStream, RELAY_PATH};
pub use resources::{
    cpu_percent, parse_net_dev, read_cgroup, read_proc_stat, NetIo, ResourceSample,
};

use std::time::Duration;

use bollard::Docker;

/// Labels on every resource Berth makes (defined with the cleanup rules
/// that depend on them): `berth.managed=true` (nothing without it is
/// touched) and `berth.instance` (which installation made it).
pub use crate::domain::cleanup::{
    LABEL_HELPER, LABEL_INSTANCE, LABEL_MANAGED, LABEL_PROJECT_ID, LABEL_WORKSPACE_ID,
};
pub const LABEL_WORKSPACE_TYPE: &str = "berth.workspace.type";

/// What went wrong talking to the engine.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The container, volume or image does not exist (engine 404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The engine refused because of the resource's state (engine 409), e.g.
    /// a volume still in use or a name already taken.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The engine could not be reached or did not answer in time.
    #[error("Docker engine unreachable: {0}")]
    Unavailable(String),
    /// The engine rejected the request as invalid (engine 400).
    #[error("engine rejected the request: {0}")]
    Rejected(String),
    /// The engine failed (engine 5xx or an unexpected answer).
    #[error("engine error: {0}")]
    Failed(String),
}

impl From<bollard::errors::Error> for EngineError {
    fn from(e: bollard::errors::Error) -> Self {
        use bollard::errors::Error as B;
        match e {
            B::DockerResponseServerError {
                status_code,
                message,
            } => match status_code {
                404 => EngineError::NotFound(message),
                409 => EngineError::Conflict(message),
                400 => EngineError::Rejected(message),
                _ => EngineError::Failed(format!("{status_code}: {message}")),
            },
            B::RequestTimeoutError => EngineError::Unavailable("request timed out".into()),
            B::IOError { err } => EngineError::Unavailable(err.to_string()),
            B::HyperResponseError { err } => EngineError::Unavailable(err.to_string()),
            B::HyperLegacyError { err } => EngineError::Unavailable(err.to_string()),
            other => EngineError::Failed(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// Facts about the engine Berth checks at startup.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    /// The engine's own ID (`docker info`): two replicas calling the same
    /// engine `local` see the same.
    pub id: String,
    pub version: String,
    pub api_version: String,
    pub cpus: u32,
    pub memory_bytes: i64,
    pub cgroup_version: String,
}

/// How to reach another node's engine.
#[derive(Debug, Clone)]
pub enum EngineAddress {
    /// A unix socket on Berth's host.
    Unix(String),
    /// Plain TCP (`tcp://host:port`): only on a network nobody else reaches.
    Tcp(String),
    /// TCP with TLS: the engine's CA, Berth's client certificate and key
    /// (files: bollard reads the key at each handshake).
    Tls {
        url: String,
        ca: std::path::PathBuf,
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
    },
}

/// A cheap-to-clone handle on the Docker engine.
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
    relay: relay::SharedRelayState,
    /// The engine runs on this host, so its containers' cgroup and /proc
    /// files and its volumes' directories are this host's: read them
    /// directly. Another node's engine is reached through its API only (a
    /// remote pid or mount point names something else here, or nothing).
    host_local: bool,
    /// Container inspects sent through this client and its clones: how a
    /// test sees that a read path no longer asks the engine.
    inspects: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Engine {
    /// Connects to the engine `DOCKER_HOST` names (the local socket when
    /// unset), negotiates the API version, and checks that it answers.
    pub async fn connect() -> Result<(Engine, EngineInfo)> {
        let docker = Docker::connect_with_defaults()
            .map_err(|e| EngineError::Unavailable(e.to_string()))?
            .with_timeout(Duration::from_secs(120));
        // Answer fast at startup when nothing listens, rather than after the
        // default 2-minute timeout.
        let probe = docker.clone().with_timeout(Duration::from_secs(10));
        probe.ping().await?;
        let docker = docker.negotiate_version().await?;
        let engine = Engine {
            docker,
            relay: Default::default(),
            host_local: true,
            inspects: Default::default(),
        };
        let info = engine.info().await?;
        Ok((engine, info))
    }

    /// A client for the engine at a unix socket, without checking that it
    /// answers (calls fail with `Unavailable` until it does).
    pub fn at_unix_socket(path: &str) -> Result<Engine> {
        let docker = Docker::connect_with_unix(path, 10, bollard::API_DEFAULT_VERSION)
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        Ok(Engine {
            docker,
            relay: Default::default(),
            // A unix socket's daemon runs on this kernel.
            host_local: true,
            inspects: Default::default(),
        })
    }

    /// A client for another node's engine, not yet checked: calls fail with
    /// `Unavailable` until it answers. Call [`Engine::negotiated`] once it
    /// does.
    pub fn at(address: &EngineAddress) -> Result<Engine> {
        let v = bollard::API_DEFAULT_VERSION;
        let docker = match address {
            EngineAddress::Unix(path) => Docker::connect_with_unix(path, 120, v),
            EngineAddress::Tcp(url) => Docker::connect_with_http(url, 120, v),
            EngineAddress::Tls { url, ca, cert, key } => {
                Docker::connect_with_ssl(url, key, cert, ca, 120, v)
            }
        }
        .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        Ok(Engine {
            docker,
            relay: Default::default(),
            // A unix socket's daemon runs on this kernel; a TCP one may
            // not.
            host_local: matches!(address, EngineAddress::Unix(_)),
            inspects: Default::default(),
        })
    }

    /// The same engine at the API version both sides speak (an engine 20.10
    /// speaks 1.41): asked of the engine, never assumed.
    pub async fn negotiated(self) -> Result<Engine> {
        let docker = self.docker.negotiate_version().await?;
        Ok(Engine {
            docker,
            relay: self.relay,
            host_local: self.host_local,
            inspects: self.inspects,
        })
    }

    /// The same engine, each request bounded by `timeout` (a heartbeat must
    /// not wait the default two minutes on a lost host).
    pub fn with_timeout(&self, timeout: Duration) -> Engine {
        Engine {
            docker: self.docker.clone().with_timeout(timeout),
            relay: self.relay.clone(),
            host_local: self.host_local,
            inspects: self.inspects.clone(),
        }
    }

    /// How many container inspects this client (and its clones) sent.
    pub fn inspect_count(&self) -> u64 {
        self.inspects.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether this engine's containers and volumes live on Berth's own
    /// host (see the field).
    pub fn host_local(&self) -> bool {
        self.host_local
    }

    pub async fn info(&self) -> Result<EngineInfo> {
        let v = self.docker.version().await?;
        let i = self.docker.info().await?;
        Ok(EngineInfo {
            id: i.id.unwrap_or_default(),
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
            cpus: i
                .ncpu
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1)
                .max(1),
            memory_bytes: i.mem_total.unwrap_or(0),
            cgroup_version: i.cgroup_version.map(|c| c.to_string()).unwrap_or_default(),
        })
    }

    pub async fn ping(&self) -> Result<()> {
        self.docker.ping().await?;
        Ok(())
    }

    /// Whether an image is present locally (nothing is pulled).
    pub async fn image_present(&self, image: &str) -> Result<bool> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(false),
                other => Err(other),
            },
        }
    }
}

impl Engine {
    /// Pulls `image` from its registry (with `credentials` when given),
    /// as the engine reports it step by step. The caller drives the stream.
    pub fn pull_image(
        &self,
        image: &str,
        credentials: Option<(String, String)>,
    ) -> impl futures_util::Stream<Item = Result<crate::domain::images::PullEvent>> + Send + 'static
    {
        use futures_util::StreamExt;
        let (name, tag) = crate::domain::images::name_and_tag(image);
        let opts = bollard::query_parameters::CreateImageOptions {
            from_image: Some(name.to_string()),
            tag: (!tag.is_empty()).then(|| tag.to_string()),
            ..Default::default()
        };
        let creds = credentials.map(|(u, p)| bollard::auth::DockerCredentials {
            username: Some(u),
            password: Some(p),
            serveraddress: Some(crate::domain::images::registry_of(image).to_string()),
            ..Default::default()
        });
        // A pull can take long: no request timeout on the stream.
        let docker = self.docker.clone().with_timeout(Duration::from_secs(3600));
        docker
            .create_image(Some(opts), None, creds)
            .map(|r| match r {
                Ok(info) => Ok(crate::domain::images::PullEvent {
                    layer: info.id,
                    status: info.status.unwrap_or_default(),
                    current: info
                        .progress_detail
                        .as_ref()
                        .and_then(|p| p.current)
                        .and_then(|c| u64::try_from(c).ok()),
                    total: info
                        .progress_detail
                        .as_ref()
                        .and_then(|p| p.total)
                        .and_then(|t| u64::try_from(t).ok()),
                }),
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    Err(EngineError::Failed(error))
                }
                Err(e) => Err(e.into()),
            })
            .boxed()
    }
}

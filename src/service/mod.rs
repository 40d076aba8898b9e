//! The application: what Berth does with a request once the HTTP layer has
//! parsed it. It joins the store and the engine, checks ownership and input,
//! and serialises lifecycle operations per workspace. It knows nothing of
//! HTTP; the CLI's admin commands and the tests call it directly.

mod accounts;
mod app_urls;
pub mod apps;
mod audit;
mod auth;
pub mod backups;
mod core;
pub mod nodes;
pub mod observe;
mod placement;
pub mod projects;
mod quotas;
mod replicas;
pub mod repos;
pub mod types;
mod view;
pub mod volumes;
mod workspaces;

pub use accounts::Accounts;
pub use apps::Apps;
pub use audit::Audit;
pub use auth::{AuthSession, NewUser};
pub use backups::Backups;
pub use core::Core;
pub(crate) use core::WorkspaceLock;
pub use nodes::{NewNode, NodeChange, NodeView, Nodes};
pub use observe::stats::{HistoryPoint, StatsView};
pub use observe::Observe;
pub use placement::{NodeReport, Placement, PlacementPlan};
pub use projects::Projects;
pub use quotas::{QuotaHold, QuotaReport, Quotas};
pub use replicas::{ReplicaStart, Replicas};
pub use repos::{NewGitProject, Repos};
pub use types::{TypeInfo, Types};
pub use view::{View, ViewState};
pub use volumes::Volumes;
pub use workspaces::status::{HealthSummary, ResourceUse, StatusReport};
pub use workspaces::{maintenance, reconcile};
pub use workspaces::{Berth, CreateWorkspace, UpdateWorkspace, WorkspaceStats};

use crate::engine::EngineError;
use crate::store::StoreError;

/// Why a request could not be carried out. The HTTP layer maps each variant
/// to a status code in one place (`http::error`).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The resource does not exist or belongs to someone else (never tell
    /// which: ids must not leak).
    #[error("{0}")]
    NotFound(String),
    /// The input breaks a rule; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the resource's current state.
    #[error("{0}")]
    Conflict(String),
    /// The action would take more than the user's quota (or the site's
    /// caps) allow; the message says what is used, what it needs and the
    /// limit.
    #[error("{0}")]
    Quota(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials, but the action needs another role.
    #[error("{0}")]
    Forbidden(String),
    /// The input is well-formed but what it names cannot be used (a damaged
    /// or unsafe archive).
    #[error("{0}")]
    Refused(String),
    /// Volume data cannot be reached from where Berth runs (not root on the
    /// engine's host); the operation needs it.
    #[error("{0}")]
    VolumeAccess(String),
    /// The request body is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// Not enough free space to do it.
    #[error("{0}")]
    InsufficientStorage(String),
    /// Reading or writing volume data or archives failed; the message says
    /// what and where (relative to the volume).
    #[error("{0}")]
    Storage(String),
    /// A git server did not answer, or git failed for a reason that is not
    /// the request's (a bad URL, ref or credential is `Invalid` or
    /// `Refused`); the message has git's own words.
    #[error("{0}")]
    Git(String),
    /// Too many failed attempts: try again after this many seconds.
    #[error("{message}")]
    Throttled { message: String, retry_after_s: u64 },
    /// The workspace cannot serve right now (error, archived, not
    /// startable); the message says why.
    #[error("{0}")]
    NotReady(String),
    /// The engine is unreachable; try again later.
    #[error("{0}")]
    Unavailable(String),
    /// The remote backup store failed or could not be reached.
    #[error("{0}")]
    Remote(String),
    /// An image registry failed or could not be reached.
    #[error("{0}")]
    Registry(String),
    /// The engine failed to do what was asked.
    #[error(transparent)]
    Engine(EngineError),
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
    /// Something that should not happen (a bug or a broken host).
    #[error("{0}")]
    Internal(String),
}

impl From<crate::domain::transition::Illegal> for ServiceError {
    fn from(e: crate::domain::transition::Illegal) -> Self {
        ServiceError::Conflict(e.to_string())
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            other => ServiceError::Store(other),
        }
    }
}

impl From<EngineError> for ServiceError {
    fn from(e: EngineError) -> Self {
        let kind = match &e {
            EngineError::NotFound(_) => "not_found",
            EngineError::Conflict(_) => "conflict",
            EngineError::Unavailable(_) => "unavailable",
            EngineError::Rejected(_) => "rejected",
            EngineError::Failed(_) => "failed",
        };
        metrics::counter!("berth_engine_errors_total", "kind" => kind).increment(1);
        match e {
            EngineError::Unavailable(m) => {
                ServiceError::Unavailable(format!("Docker engine unreachable: {m}"))
            }
            other => ServiceError::Engine(other),
        }
    }
}

impl ServiceError {
    /// What failed, as a metric label: where the fault lies, not the text.
    pub fn kind(&self) -> &'static str {
        match self {
            ServiceError::Unavailable(_) | ServiceError::Engine(EngineError::Unavailable(_)) => {
                "engine_unavailable"
            }
            ServiceError::Engine(_) => "engine",
            ServiceError::Store(_) => "store",
            ServiceError::Remote(_) => "remote",
            ServiceError::Registry(_) => "registry",
            ServiceError::Git(_) => "git",
            ServiceError::Storage(_)
            | ServiceError::VolumeAccess(_)
            | ServiceError::InsufficientStorage(_) => "storage",
            ServiceError::Internal(_) => "internal",
            _ => "request",
        }
    }
}

pub type Result<T> = std::result::Result<T, ServiceError>;

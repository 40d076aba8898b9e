//! Route handlers, one file per resource. Handlers parse (extractors), call
//! the service, and shape the answer (wire types); nothing else.

pub mod apps;
pub mod audit;
pub mod auth;
pub mod backups;
mod forward;
pub mod jobs;
pub mod metrics;
pub mod nodes;
pub mod observe;
pub mod projects;
pub mod proxy;
pub mod quotas;
pub mod replicas;
pub mod ui;
pub mod users;
pub mod volumes;
pub mod workspaces;

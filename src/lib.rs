//! Berth: self-hosted developer workspaces as Docker containers, each project
//! on its own persistent volume. See `ARCHITECTURE.md` for the code map.

pub mod app;
pub mod backup;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod process;
pub mod remote;
pub mod secret;
pub mod service;
pub mod store;

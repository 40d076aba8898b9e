//! Workspace types: the catalogue the configuration declares (a type by
//! name, or a 400 that lists the known ones), the limits and health check a
//! workspace runs with (its type's, with its own overrides), whether a
//! type's image is on a node, and pulling it (`images.rs`). Below every
//! service that starts, places or counts workspaces.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Core, Result, ServiceError};
use crate::domain::{HealthCheck, ResourceLimits, Workspace, WorkspaceType};

mod images;
mod spec;

pub use images::Pulls;

/// A workspace type as listed: its config and whether it can be used now.
#[derive(Debug, Clone)]
pub struct TypeInfo {
    pub name: String,
    pub config: WorkspaceType,
    /// On the local node (asked now).
    pub available: bool,
    pub reason: Option<String>,
    /// Per node: whether its engine had the image at the last heartbeat.
    pub nodes: BTreeMap<String, bool>,
}

/// The type catalogue and its images (see the module's doc).
#[derive(Clone)]
pub struct Types {
    inner: Arc<Inner>,
}

struct Inner {
    core: Core,
    /// Image pulls under way or done, by image.
    pulls: Pulls,
}

impl Types {
    pub fn new(core: Core) -> Types {
        Types {
            inner: Arc::new(Inner {
                core,
                pulls: Mutex::new(std::collections::HashMap::new()),
            }),
        }
    }

    fn core(&self) -> &Core {
        &self.inner.core
    }
    /// A configured type, or a 400 that lists the known ones.
    pub fn workspace_type(&self, name: &str) -> Result<&WorkspaceType> {
        self.core().config().types.get(name).ok_or_else(|| {
            let known: Vec<&str> = self
                .core()
                .config()
                .types
                .keys()
                .map(String::as_str)
                .collect();
            ServiceError::Invalid(format!(
                "unknown workspace type {name:?}; configured types: {}",
                known.join(", ")
            ))
        })
    }

    /// Whether a type's image is on the local node (nothing is pulled).
    pub(crate) async fn availability(&self, t: &WorkspaceType) -> Result<(bool, Option<String>)> {
        self.availability_on(crate::domain::nodes::LOCAL, t).await
    }

    /// Whether a type's image is on the node `node`.
    pub(crate) async fn availability_on(
        &self,
        node: &str,
        t: &WorkspaceType,
    ) -> Result<(bool, Option<String>)> {
        if t.image.trim().is_empty() {
            return Ok((false, Some("no image configured for this type".into())));
        }
        if self
            .core()
            .engine_on(node)
            .await?
            .image_present(&t.image)
            .await?
        {
            Ok((true, None))
        } else {
            Ok((
                false,
                Some(format!(
                    "image {} is not present on the Docker host{} (an admin can pull it: berth type pull, or POST /api/workspaces/types/{{type}}/pull)",
                    t.image,
                    crate::domain::nodes::on_node(node)
                )),
            ))
        }
    }

    pub async fn list(&self) -> Result<Vec<TypeInfo>> {
        let views = self.core().nodes().list().await?;
        let mut out = Vec::new();
        for (name, t) in &self.core().config().types {
            let (available, reason) = self.availability(t).await?;
            out.push(TypeInfo {
                name: name.clone(),
                config: t.clone(),
                available,
                reason,
                nodes: per_node(&views, name),
            });
        }
        Ok(out)
    }

    pub async fn info(&self, name: &str) -> Result<TypeInfo> {
        let t =
            self.core().config().types.get(name).ok_or_else(|| {
                ServiceError::NotFound(format!("workspace type {name:?} not found"))
            })?;
        let (available, reason) = self.availability(t).await?;
        let views = self.core().nodes().list().await?;
        Ok(TypeInfo {
            name: name.to_string(),
            config: t.clone(),
            available,
            reason,
            nodes: per_node(&views, name),
        })
    }

    /// The limits a workspace runs with: its type's, overridden.
    pub fn effective_limits(&self, ws: &Workspace) -> Result<ResourceLimits> {
        Ok(self
            .workspace_type(&ws.type_name)?
            .resources
            .merged(&ws.settings.resources))
    }

    /// The health check a workspace runs with.
    pub fn effective_health_check(&self, ws: &Workspace) -> Result<Option<HealthCheck>> {
        let base = self.workspace_type(&ws.type_name)?.health_check.as_ref();
        ws.settings
            .health_check
            .apply(base)
            .map_err(|e| ServiceError::Invalid(e.to_string()))
    }
}

impl Types {}

/// Whether each node had a type's image at its last heartbeat.
fn per_node(views: &[super::NodeView], type_name: &str) -> BTreeMap<String, bool> {
    views
        .iter()
        .map(|v| {
            (
                v.row.name.clone(),
                v.types.get(type_name).copied().unwrap_or(false),
            )
        })
        .collect()
}

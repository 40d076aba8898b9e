//! Project volumes: named, labelled Docker volumes.

use std::collections::HashMap;

use bollard::models::VolumeCreateRequest;
use bollard::query_parameters::{ListVolumesOptionsBuilder, RemoveVolumeOptionsBuilder};

use super::{Engine, EngineError, Result, LABEL_MANAGED};
use crate::domain::cleanup::VolumeSeen;

impl Engine {
    /// Creates a named volume with these labels. Creating one that already
    /// exists is fine when it carries the same labels (the engine answers
    /// with the existing volume), so a retried project creation converges.
    pub async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<()> {
        let v = self
            .docker
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels.clone()),
                ..Default::default()
            })
            .await?;
        let mismatched = labels.iter().any(|(k, val)| v.labels.get(k) != Some(val));
        if mismatched {
            return Err(EngineError::Conflict(format!(
                "volume {name} already exists and is not this project's"
            )));
        }
        Ok(())
    }

    /// Where the volume's data lives on the engine's host, or `None` when
    /// the volume does not exist.
    pub async fn volume_mountpoint(&self, name: &str) -> Result<Option<String>> {
        match self.docker.inspect_volume(name).await {
            Ok(v) => Ok(Some(v.mountpoint)),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The labels of a volume, or `None` when it does not exist.
    pub async fn volume_labels(&self, name: &str) -> Result<Option<HashMap<String, String>>> {
        match self.docker.inspect_volume(name).await {
            Ok(v) => Ok(Some(v.labels)),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Volumes carrying Berth's managed label (any instance: the cleanup
    /// planner decides which are this installation's).
    pub async fn list_managed_volumes(&self) -> Result<Vec<VolumeSeen>> {
        let mut filters = HashMap::new();
        filters.insert("label", vec![format!("{LABEL_MANAGED}=true")]);
        let opts = ListVolumesOptionsBuilder::new().filters(&filters).build();
        let r = self.docker.list_volumes(Some(opts)).await?;
        Ok(r.volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeSeen {
                name: v.name,
                labels: v.labels,
            })
            .collect())
    }

    /// Removes a volume; already gone is fine. In use is a
    /// [`EngineError::Conflict`].
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        let opts = RemoveVolumeOptionsBuilder::new().force(false).build();
        match self.docker.remove_volume(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) => match EngineError::from(e) {
                EngineError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }
}

//! Projects: a record plus its Docker volume `berth-project-{id}`, placed
//! on a node when made (`Placement`); deleting one detaches the stopped
//! workspaces that mount it.

use std::sync::Arc;

use uuid::Uuid;

use super::{Core, Placement, Result, ServiceError, Types};
use crate::domain::git::GitOrigin;
use crate::domain::{
    now_millis, project_volume_name, validate_description, validate_name, Project, User,
    WorkspaceStatus,
};
use crate::engine::{EngineError, LABEL_PROJECT_ID};

/// Projects and their volumes (see the module's doc).
#[derive(Clone)]
pub struct Projects {
    inner: Arc<Inner>,
}

struct Inner {
    core: Core,
    types: Types,
    placement: Placement,
}

impl Projects {
    pub fn new(core: Core, types: Types, placement: Placement) -> Projects {
        Projects {
            inner: Arc::new(Inner {
                core,
                types,
                placement,
            }),
        }
    }

    fn core(&self) -> &Core {
        &self.inner.core
    }

    fn types(&self) -> &Types {
        &self.inner.types
    }

    /// Days a deleted project's volume is kept before cleanup removes it.
    pub fn volume_retention_days(&self) -> u64 {
        self.core().config().cleanup.volume_retention_days
    }

    fn placement(&self) -> &Placement {
        &self.inner.placement
    }
}

impl Projects {
    /// Creates a project and its volume. A volume that cannot be made leaves
    /// no record behind.
    pub async fn create_project(
        &self,
        user: &User,
        name: &str,
        description: Option<&str>,
        workspace_type: Option<&str>,
    ) -> Result<Project> {
        self.create_project_from(user, name, description, workspace_type, None)
            .await
    }

    /// [`Projects::create_project`], with the repository its files come
    /// from (written into the volume by `Repos`).
    pub(in crate::service) async fn create_project_from(
        &self,
        user: &User,
        name: &str,
        description: Option<&str>,
        workspace_type: Option<&str>,
        git: Option<GitOrigin>,
    ) -> Result<Project> {
        let name = validate_name("name", name).map_err(ServiceError::Invalid)?;
        let description =
            validate_description(description.unwrap_or("")).map_err(ServiceError::Invalid)?;
        if let Some(t) = workspace_type {
            self.types().workspace_type(t)?;
        }
        // Where its volume goes, as the planner says (a 409 naming every
        // node's reason when none can take it).
        let node = self.placement().place_new(workspace_type).await?;
        let engine = self.core().engine_on(&node).await?;
        let id = Uuid::new_v4();
        let now = now_millis();
        let project = Project {
            id,
            owner_id: user.id,
            name,
            description,
            workspace_type: workspace_type.map(str::to_string),
            workspace_id: None,
            volume_name: project_volume_name(id),
            node,
            git,
            created_at: now,
            updated_at: now,
        };
        let mut labels = self.core().base_labels();
        labels.insert(LABEL_PROJECT_ID.to_string(), id.to_string());
        // Volume first: a record without a volume would be a lie; a volume
        // without a record is an orphan that cleanup reclaims.
        engine.create_volume(&project.volume_name, labels).await?;
        if let Err(e) = self.core().store().insert_project(&project).await {
            let _ = engine.remove_volume(&project.volume_name).await;
            return Err(e.into());
        }
        // A new volume is empty: measured, as storage quotas count it.
        self.core().store().set_project_size(id, 0, now).await?;
        Ok(project)
    }

    /// A project the user may see, or NotFound.
    pub async fn project(&self, user: &User, id: Uuid) -> Result<Project> {
        self.core().project(user, id).await
    }

    /// The user's projects (all of them for an admin), newest first.
    pub async fn projects(&self, user: &User) -> Result<Vec<Project>> {
        let owner = (!user.is_admin()).then_some(user.id);
        Ok(self.core().store().projects(owner).await?)
    }

    /// A page of [`Berth::projects`].
    pub async fn projects_page(
        &self,
        user: &User,
        page: &crate::domain::page::PageRequest,
    ) -> Result<crate::domain::page::Page<Project>> {
        let owner = (!user.is_admin()).then_some(user.id);
        Ok(self.core().store().projects_page(owner, page).await?)
    }

    /// Deletes a project. Its volume is kept for the retention period unless
    /// `purge`. Refused while a workspace on the project runs; stopped
    /// workspaces lose their (volume-holding) container and their project.
    pub async fn delete_project(&self, user: &User, id: Uuid, purge: bool) -> Result<()> {
        let project = self.core().project(user, id).await?;
        let on_project = self.core().store().workspaces_on_project(id).await?;
        for ws in &on_project {
            if matches!(
                ws.status,
                WorkspaceStatus::Running | WorkspaceStatus::Starting | WorkspaceStatus::Stopping
            ) {
                return Err(ServiceError::Conflict(format!(
                    "workspace {} ({}) is using this project; stop it first",
                    ws.id, ws.name
                )));
            }
        }
        for ws in on_project {
            let _guard = self.core().lock_workspace(ws.id).await?;
            // Re-read under the lock: it may have started meanwhile.
            let Some(mut ws) = self.core().store().workspace(ws.id).await? else {
                continue;
            };
            if ws.project_id != Some(id) {
                continue;
            }
            let engine = self.core().engine_of(&ws).await?;
            if let Some(c) = engine.inspect_container(&ws.container_name()).await? {
                if c.running {
                    return Err(ServiceError::Conflict(format!(
                        "workspace {} ({}) is using this project; stop it first",
                        ws.id, ws.name
                    )));
                }
                engine.remove_container(&c.id).await?;
            }
            // Its container is gone; it stays on its node, without a project.
            ws.project_id = None;
            let node = ws.node.clone();
            let ws = crate::domain::transition::transition(
                &ws,
                crate::domain::transition::Transition::Rehomed { node },
                now_millis(),
            )?;
            self.core().store().save_workspace(&ws).await?;
        }
        if purge {
            match self
                .core()
                .engine_on(&project.node)
                .await?
                .remove_volume(&project.volume_name)
                .await
            {
                Ok(()) => {}
                Err(EngineError::Conflict(m)) => {
                    return Err(ServiceError::Conflict(format!(
                        "volume {} is still in use: {m}",
                        project.volume_name
                    )))
                }
                Err(e) => return Err(e.into()),
            }
            self.core().store().purge_project(id).await?;
        } else {
            self.core()
                .store()
                .soft_delete_project(id, now_millis())
                .await?;
        }
        Ok(())
    }
}

//! Workspaces: their types, records and settings (create, update,
//! resources, delete), and switching the project they mount. Starting and
//! stopping are in `lifecycle`, what a workspace is doing in `status`.
//! Operations on one workspace are serialised by its lock; each is
//! idempotent.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::Berth;
use crate::domain::transition::{transition, Note, Transition};
use crate::domain::{
    now_millis, validate_description, validate_name, EventKind, HealthCheckOverride, Project,
    ResourceOverrides, User, Workspace, WorkspaceEvent, WorkspaceSettings, WorkspaceStatus,
};
use crate::engine::{ContainerState, EngineError};
use crate::service::{Result, ServiceError};

/// Input of `POST /api/workspaces`, already parsed.
#[derive(Debug, Clone, Default)]
pub struct CreateWorkspace {
    pub name: String,
    pub description: Option<String>,
    pub type_name: String,
    pub is_default: Option<bool>,
    pub project_id: Option<Uuid>,
    pub resources: Option<ResourceOverrides>,
    pub health_check: Option<HealthCheckOverride>,
}

/// Input of `PUT /api/workspaces/:id`; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateWorkspace {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_default: Option<bool>,
    pub project_id: Option<Uuid>,
    pub archived: Option<bool>,
    pub health_check: Option<HealthCheckOverride>,
}

/// `GET /api/workspaces/stats`.
#[derive(Debug, Clone)]
pub struct WorkspaceStats {
    pub total: usize,
    pub by_type: BTreeMap<String, usize>,
    pub by_status: BTreeMap<String, usize>,
    pub default_workspace: Option<Workspace>,
}

fn is_active(s: WorkspaceStatus) -> bool {
    matches!(
        s,
        WorkspaceStatus::Running | WorkspaceStatus::Starting | WorkspaceStatus::Stopping
    )
}

impl Berth {
    fn check_compatible(project: &Project, type_name: &str) -> Result<()> {
        match &project.workspace_type {
            Some(t) if t != type_name => Err(ServiceError::Invalid(format!(
                "project {} is for workspace type {t:?}, not {type_name:?}",
                project.id
            ))),
            _ => Ok(()),
        }
    }

    pub async fn create_workspace(&self, user: &User, req: CreateWorkspace) -> Result<Workspace> {
        let name = validate_name("name", &req.name).map_err(ServiceError::Invalid)?;
        let description = validate_description(req.description.as_deref().unwrap_or(""))
            .map_err(ServiceError::Invalid)?;
        let t = self.types().workspace_type(&req.type_name)?.clone();
        let overrides = req.resources.unwrap_or_default();
        t.resources
            .merged(&overrides)
            .validate(self.core().host_cpus())
            .map_err(|e| ServiceError::Invalid(format!("resourceLimits: {e}")))?;
        let health_check = req.health_check.unwrap_or_default();
        health_check
            .apply(t.health_check.as_ref())
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        // Its project's node; without one, where the planner says.
        let node = match req.project_id {
            Some(pid) => {
                let p = self.core().project(user, pid).await?;
                Self::check_compatible(&p, &req.type_name)?;
                p.node
            }
            None => self.placement().place_new(Some(&req.type_name)).await?,
        };
        let (available, reason) = self.types().availability_on(&node, &t).await?;
        // A configured image that is missing is pulled at the first start
        // when images.pull_on_start says so.
        let pulled_later = self.core().config().images.pull_on_start && !t.image.trim().is_empty();
        if !available && !pulled_later {
            return Err(ServiceError::Conflict(format!(
                "workspace type {:?} is unavailable: {}",
                req.type_name,
                reason.unwrap_or_default()
            )));
        }
        // Counted, under the user's lock, until it is recorded.
        let _hold = self
            .quotas()
            .reserve(user.id, crate::domain::quota::Need::workspace())
            .await?;
        let existing = self.core().store().workspaces(Some(user.id)).await?;
        let make_default = req.is_default.unwrap_or(false) || existing.is_empty();
        let now = now_millis();
        let ws = Workspace {
            id: Uuid::new_v4(),
            owner_id: user.id,
            name,
            description,
            type_name: req.type_name,
            project_id: req.project_id,
            node,
            is_default: false,
            settings: WorkspaceSettings {
                resources: overrides,
                health_check,
            },
            status: WorkspaceStatus::Stopped,
            status_reason: None,
            container_id: None,
            host_port: None,
            last_activity_at: None,
            created_at: now,
            updated_at: now,
        };
        self.core().store().insert_workspace(&ws).await?;
        if make_default {
            self.core()
                .store()
                .set_default_workspace(user.id, ws.id, now)
                .await?;
        }
        self.core().workspace(user, ws.id).await
    }

    /// The user's workspaces (all for an admin): default first, then newest.
    pub async fn workspaces(&self, user: &User) -> Result<Vec<Workspace>> {
        let owner = (!user.is_admin()).then_some(user.id);
        Ok(self.core().store().workspaces(owner).await?)
    }

    pub async fn workspaces_of_type(&self, user: &User, type_name: &str) -> Result<Vec<Workspace>> {
        self.types().workspace_type(type_name)?;
        let mut all = self.workspaces(user).await?;
        all.retain(|w| w.type_name == type_name);
        Ok(all)
    }

    pub async fn workspace_stats(&self, user: &User) -> Result<WorkspaceStats> {
        let all = self.workspaces(user).await?;
        let mut by_type = BTreeMap::new();
        let mut by_status = BTreeMap::new();
        for w in &all {
            *by_type.entry(w.type_name.clone()).or_insert(0) += 1;
            *by_status.entry(w.status.as_str().to_string()).or_insert(0) += 1;
        }
        let default_workspace = all
            .iter()
            .find(|w| w.is_default && w.owner_id == user.id)
            .cloned();
        Ok(WorkspaceStats {
            total: all.len(),
            by_type,
            by_status,
            default_workspace,
        })
    }

    pub async fn update_workspace(
        &self,
        user: &User,
        id: Uuid,
        req: UpdateWorkspace,
    ) -> Result<Workspace> {
        // One lock for the whole update, and every check before the first
        // change: a refused request leaves the workspace and its container
        // exactly as they were.
        let guard = self.core().lock_workspace(id).await?;
        let ws = self.core().workspace(user, id).await?;
        let name = req
            .name
            .as_deref()
            .map(|n| validate_name("name", n))
            .transpose()
            .map_err(ServiceError::Invalid)?;
        let description = req
            .description
            .as_deref()
            .map(validate_description)
            .transpose()
            .map_err(ServiceError::Invalid)?;
        if req.is_default == Some(false) && ws.is_default {
            return Err(ServiceError::Invalid(
                "isDefault cannot be cleared; make another workspace the default instead".into(),
            ));
        }
        let new_project = match req.project_id {
            Some(pid) if ws.project_id != Some(pid) => {
                let project = self.core().project(user, pid).await?;
                if project.owner_id != ws.owner_id {
                    return Err(ServiceError::NotFound(format!("project {pid} not found")));
                }
                Self::check_compatible(&project, &ws.type_name)?;
                Some(pid)
            }
            _ => None,
        };
        let new_health_check = match &req.health_check {
            Some(hc) => {
                let updated = ws.settings.health_check.updated(hc);
                updated
                    .apply(
                        self.types()
                            .workspace_type(&ws.type_name)?
                            .health_check
                            .as_ref(),
                    )
                    .map_err(|e| ServiceError::Invalid(e.to_string()))?;
                (updated != ws.settings.health_check).then_some(updated)
            }
            None => None,
        };
        let (mut ws, container) = self.refresh(ws, false).await?;
        let archive = match req.archived {
            Some(true) if ws.status != WorkspaceStatus::Archived => {
                if is_active(ws.status) {
                    return Err(ServiceError::Conflict(
                        "stop the workspace before archiving it".into(),
                    ));
                }
                Some(true)
            }
            Some(false) if ws.status == WorkspaceStatus::Archived => Some(false),
            _ => None,
        };

        if let Some(n) = name {
            ws.name = n;
        }
        if let Some(d) = description {
            ws.description = d;
        }
        match archive {
            Some(true) => ws = transition(&ws, Transition::Archived, now_millis())?,
            Some(false) => ws = transition(&ws, Transition::Unarchived, now_millis())?,
            None => {}
        }
        // The engine changes neither the mounted volume nor the health
        // check of a container in place: both mean a new container.
        let recreate = new_project.is_some() || new_health_check.is_some();
        if let Some(pid) = new_project {
            ws.project_id = Some(pid);
        }
        if let Some(hc) = new_health_check {
            ws.settings.health_check = hc;
        }
        if recreate {
            ws = self.recreate_locked(ws, container).await?;
        } else {
            ws.updated_at = now_millis();
            self.core().store().save_workspace(&ws).await?;
        }
        drop(guard);
        if req.is_default == Some(true) {
            self.core()
                .store()
                .set_default_workspace(ws.owner_id, id, now_millis())
                .await?;
        }
        self.core().workspace(user, id).await
    }

    pub async fn set_default(&self, user: &User, id: Uuid) -> Result<Workspace> {
        let ws = self.core().workspace(user, id).await?;
        self.core()
            .store()
            .set_default_workspace(ws.owner_id, id, now_millis())
            .await?;
        self.core().workspace(user, id).await
    }

    /// Removes the workspace and its container; never the project volume.
    pub async fn delete_workspace(&self, user: &User, id: Uuid) -> Result<()> {
        let guard = self.core().lock_workspace(id).await?;
        let ws = self.core().workspace(user, id).await?;
        self.core()
            .engine_of(&ws)
            .await?
            .remove_container(&ws.container_name())
            .await?;
        self.core().store().unassign_projects_of(id).await?;
        self.core().store().delete_workspace(id).await?;
        self.core().store().delete_events(id).await?;
        if ws.is_default {
            let rest = self.core().store().workspaces(Some(ws.owner_id)).await?;
            if let Some(next) = rest.first() {
                self.core()
                    .store()
                    .set_default_workspace(ws.owner_id, next.id, now_millis())
                    .await?;
            }
        }
        drop(guard);
        self.core().forget_lock(id);
        Ok(())
    }

    /// Mounts another project: the container is recreated with the new
    /// volume (and started again if it was running).
    pub async fn switch_project(
        &self,
        user: &User,
        id: Uuid,
        project_id: Uuid,
    ) -> Result<Workspace> {
        let _guard = self.core().lock_workspace(id).await?;
        let ws = self.core().workspace(user, id).await?;
        let project = self.core().project(user, project_id).await?;
        if project.owner_id != ws.owner_id {
            return Err(ServiceError::NotFound(format!(
                "project {project_id} not found"
            )));
        }
        Self::check_compatible(&project, &ws.type_name)?;
        let (mut ws, container) = self.refresh(ws, false).await?;
        if ws.project_id == Some(project_id) {
            return Ok(ws);
        }
        ws.project_id = Some(project_id);
        self.recreate_locked(ws, container).await
    }

    /// Saves `ws` and replaces its container with one made from its current
    /// settings: removed now, created again at the next start, or at once
    /// (and started) if it was running. For what the engine cannot change in
    /// place: the mounted volume, the health check. The caller holds the lock.
    async fn recreate_locked(
        &self,
        ws: Workspace,
        container: Option<ContainerState>,
    ) -> Result<Workspace> {
        let was_running = container.as_ref().is_some_and(|c| c.running);
        if let Some(c) = container {
            self.core()
                .engine_of(&ws)
                .await?
                .remove_container(&c.id)
                .await?;
        }
        // The record's own changes (a project, a health check) and the
        // container's removal, in one save; the new container is made on
        // its project's node.
        let mut ws = transition(&ws, Transition::ContainerRemoved, now_millis())?;
        if let Some(pid) = ws.project_id {
            if let Some(p) = self.core().store().project(pid).await? {
                ws = transition(&ws, Transition::Rehomed { node: p.node }, now_millis())?;
            }
        }
        self.core().store().save_workspace(&ws).await?;
        if was_running {
            return self.start_locked(ws).await;
        }
        Ok(ws)
    }

    /// Changes a workspace's CPU and memory limits; a container that exists
    /// is updated in place through the engine (same container, no restart).
    pub async fn update_resources(
        &self,
        user: &User,
        id: Uuid,
        patch: ResourceOverrides,
    ) -> Result<Workspace> {
        let _guard = self.core().lock_workspace(id).await?;
        let mut ws = self.core().workspace(user, id).await?;
        let type_limits = &self.types().workspace_type(&ws.type_name)?.resources;
        let merged_overrides = type_limits.patched(&ws.settings.resources, &patch);
        let limits = type_limits.merged(&merged_overrides);
        limits
            .validate(self.core().host_cpus())
            .map_err(|e| ServiceError::Invalid(format!("resourceLimits: {e}")))?;
        // A running workspace that grows takes more of its owner's quota.
        let need = if matches!(
            ws.status,
            WorkspaceStatus::Running | WorkspaceStatus::Starting
        ) {
            let old = self.types().effective_limits(&ws)?;
            crate::domain::quota::Need::resize(
                (old.cpus, old.memory_reservation_mb.unwrap_or(old.memory_mb)),
                (
                    limits.cpus,
                    limits.memory_reservation_mb.unwrap_or(limits.memory_mb),
                ),
            )
        } else {
            crate::domain::quota::Need::default()
        };
        // A running workspace that grows needs the room on its node too.
        let _room = if ws.status.holds_room() {
            let (old, new) = (
                self.placement().demand_of(&ws)?,
                crate::domain::placement::Demand::of(&limits),
            );
            let more = crate::domain::placement::Demand {
                cpus: (new.cpus - old.cpus).max(0.0),
                memory_mb: new.memory_mb.saturating_sub(old.memory_mb),
            };
            Some(self.placement().claim_room(&ws, more, new).await?)
        } else {
            None
        };
        let _hold = self.quotas().reserve(ws.owner_id, need).await?;
        let engine = self.core().engine_of(&ws).await?;
        if let Some(c) = engine.inspect_container(&ws.container_name()).await? {
            match engine.update_limits(&c.id, &limits).await {
                Ok(()) => {}
                Err(EngineError::Rejected(m)) | Err(EngineError::Failed(m)) => {
                    return Err(ServiceError::Invalid(format!(
                        "the engine refused these limits: {m}"
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        ws.settings.resources = merged_overrides;
        ws.updated_at = now_millis();
        self.core().store().save_workspace(&ws).await?;
        let note = Note::new(
            EventKind::LimitsChanged,
            format!(
                "cpus {}, memory {} MB, memory+swap {} MB, reservation {}",
                limits.cpus,
                limits.memory_mb,
                limits.effective_swap_mb(),
                limits
                    .memory_reservation_mb
                    .map(|r| format!("{r} MB"))
                    .unwrap_or_else(|| "none".into())
            ),
        );
        self.core().note(&ws, note).await?;
        Ok(ws)
    }

    /// The newest events of a workspace, newest first.
    pub async fn workspace_events(
        &self,
        user: &User,
        id: Uuid,
        limit: i64,
    ) -> Result<Vec<WorkspaceEvent>> {
        self.core().workspace(user, id).await?;
        Ok(self.core().store().events(id, limit.clamp(1, 1000)).await?)
    }

    /// A page of a workspace's events, newest first.
    pub async fn workspace_events_page(
        &self,
        user: &User,
        id: Uuid,
        page: &crate::domain::page::PageRequest,
    ) -> Result<crate::domain::page::Page<WorkspaceEvent>> {
        self.core().workspace(user, id).await?;
        Ok(self.core().store().events_page(id, page).await?)
    }

    /// A page of [`Berth::workspaces`].
    pub async fn workspaces_page(
        &self,
        user: &User,
        page: &crate::domain::page::PageRequest,
    ) -> Result<crate::domain::page::Page<Workspace>> {
        let owner = (!user.is_admin()).then_some(user.id);
        Ok(self.core().store().workspaces_page(owner, page).await?)
    }

    /// Projects of a workspace: its current one and those assigned to it.
    pub async fn workspace_projects(&self, user: &User, id: Uuid) -> Result<Vec<Project>> {
        let ws = self.core().workspace(user, id).await?;
        let all = self.core().store().projects(Some(ws.owner_id)).await?;
        Ok(all
            .into_iter()
            .filter(|p| Some(p.id) == ws.project_id || p.workspace_id == Some(id))
            .collect())
    }

    /// The owner's projects this workspace could mount.
    pub async fn compatible_projects(&self, user: &User, id: Uuid) -> Result<Vec<Project>> {
        let ws = self.core().workspace(user, id).await?;
        let all = self.core().store().projects(Some(ws.owner_id)).await?;
        Ok(all
            .into_iter()
            .filter(|p| {
                p.workspace_type
                    .as_deref()
                    .is_none_or(|t| t == ws.type_name)
            })
            .collect())
    }

    /// Assigns a project to a workspace (without mounting it; see
    /// [`Berth::switch_project`]).
    pub async fn assign_project(&self, user: &User, id: Uuid, project_id: Uuid) -> Result<Project> {
        let ws = self.core().workspace(user, id).await?;
        let project = self.core().project(user, project_id).await?;
        if project.owner_id != ws.owner_id {
            return Err(ServiceError::NotFound(format!(
                "project {project_id} not found"
            )));
        }
        Self::check_compatible(&project, &ws.type_name)?;
        self.core()
            .store()
            .assign_project(project_id, id, &ws.type_name, now_millis())
            .await?;
        self.core().project(user, project_id).await
    }
}

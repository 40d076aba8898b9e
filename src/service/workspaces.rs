//! Workspaces: their types, records and settings (create, update,
//! resources, delete), and switching the project they mount. Starting and
//! stopping are in `lifecycle`, what a workspace is doing in `status`.
//! Operations on one workspace are serialised by its lock; each is
//! idempotent.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{Berth, Result, ServiceError};
use crate::domain::transition::{transition, Transition};
use crate::domain::{
    now_millis, validate_description, validate_name, EventKind, HealthCheck, HealthCheckOverride,
    Project, ResourceLimits, ResourceOverrides, User, Workspace, WorkspaceEvent, WorkspaceSettings,
    WorkspaceStatus, WorkspaceType,
};
use crate::engine::{ContainerState, EngineError};

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
    /// Moves a workspace to its next state and saves exactly the columns
    /// that state owns. The caller holds the workspace's lock.
    pub(super) async fn transition(&self, ws: &Workspace, t: Transition) -> Result<Workspace> {
        let next = transition(ws, t, now_millis());
        self.store().save_status(&next).await?;
        Ok(next)
    }

    /// A configured type, or a 400 that lists the known ones.
    pub fn workspace_type(&self, name: &str) -> Result<&WorkspaceType> {
        self.config().types.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.config().types.keys().map(String::as_str).collect();
            ServiceError::Invalid(format!(
                "unknown workspace type {name:?}; configured types: {}",
                known.join(", ")
            ))
        })
    }

    /// Whether a type's image is on the local node (nothing is pulled).
    async fn availability(&self, t: &WorkspaceType) -> Result<(bool, Option<String>)> {
        self.availability_on(crate::domain::nodes::LOCAL, t).await
    }

    /// Whether a type's image is on the node `node`.
    async fn availability_on(
        &self,
        node: &str,
        t: &WorkspaceType,
    ) -> Result<(bool, Option<String>)> {
        if t.image.trim().is_empty() {
            return Ok((false, Some("no image configured for this type".into())));
        }
        if self.engine_on(node).await?.image_present(&t.image).await? {
            Ok((true, None))
        } else {
            Ok((
                false,
                Some(format!(
                    "image {} is not present on the Docker host{} (an admin can pull it: berth type pull, or POST /api/workspaces/types/{{type}}/pull)",
                    t.image,
                    super::lifecycle::on_node(node)
                )),
            ))
        }
    }

    pub async fn types(&self) -> Result<Vec<TypeInfo>> {
        let views = self.nodes().list().await?;
        let mut out = Vec::new();
        for (name, t) in &self.config().types {
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

    pub async fn type_info(&self, name: &str) -> Result<TypeInfo> {
        let t =
            self.config().types.get(name).ok_or_else(|| {
                ServiceError::NotFound(format!("workspace type {name:?} not found"))
            })?;
        let (available, reason) = self.availability(t).await?;
        let views = self.nodes().list().await?;
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
        let t = self.workspace_type(&req.type_name)?.clone();
        let overrides = req.resources.unwrap_or_default();
        t.resources
            .merged(&overrides)
            .validate(self.host_cpus())
            .map_err(|e| ServiceError::Invalid(format!("resourceLimits: {e}")))?;
        let health_check = req.health_check.unwrap_or_default();
        health_check
            .apply(t.health_check.as_ref())
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        // Its project's node; without one, where the planner says.
        let node = match req.project_id {
            Some(pid) => {
                let p = self.project(user, pid).await?;
                Self::check_compatible(&p, &req.type_name)?;
                p.node
            }
            None => self.place_new(Some(&req.type_name)).await?,
        };
        let (available, reason) = self.availability_on(&node, &t).await?;
        // A configured image that is missing is pulled at the first start
        // when images.pull_on_start says so.
        let pulled_later = self.config().images.pull_on_start && !t.image.trim().is_empty();
        if !available && !pulled_later {
            return Err(ServiceError::Conflict(format!(
                "workspace type {:?} is unavailable: {}",
                req.type_name,
                reason.unwrap_or_default()
            )));
        }
        // Counted, under the user's lock, until it is recorded.
        let _hold = self
            .reserve(user.id, crate::domain::quota::Need::workspace())
            .await?;
        let existing = self.store().workspaces(Some(user.id)).await?;
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
        self.store().insert_workspace(&ws).await?;
        if make_default {
            self.store()
                .set_default_workspace(user.id, ws.id, now)
                .await?;
        }
        self.workspace(user, ws.id).await
    }

    /// A workspace record the user may see, or NotFound. From the database
    /// only: cheap enough for listings.
    pub async fn workspace(&self, user: &User, id: Uuid) -> Result<Workspace> {
        match self.store().workspace(id).await? {
            Some(w) if user.can_access(w.owner_id) => Ok(w),
            _ => Err(ServiceError::NotFound(format!("workspace {id} not found"))),
        }
    }

    /// The user's workspaces (all for an admin): default first, then newest.
    pub async fn workspaces(&self, user: &User) -> Result<Vec<Workspace>> {
        let owner = (!user.is_admin()).then_some(user.id);
        Ok(self.store().workspaces(owner).await?)
    }

    pub async fn workspaces_of_type(&self, user: &User, type_name: &str) -> Result<Vec<Workspace>> {
        self.workspace_type(type_name)?;
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
        let guard = self.lock_workspace(id).await?;
        let ws = self.workspace(user, id).await?;
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
                let project = self.project(user, pid).await?;
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
                    .apply(self.workspace_type(&ws.type_name)?.health_check.as_ref())
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
            Some(true) => ws = transition(&ws, Transition::Archived, now_millis()),
            Some(false) => ws = transition(&ws, Transition::Unarchived, now_millis()),
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
            self.store().save_workspace(&ws).await?;
        }
        drop(guard);
        if req.is_default == Some(true) {
            self.store()
                .set_default_workspace(ws.owner_id, id, now_millis())
                .await?;
        }
        self.workspace(user, id).await
    }

    pub async fn set_default(&self, user: &User, id: Uuid) -> Result<Workspace> {
        let ws = self.workspace(user, id).await?;
        self.store()
            .set_default_workspace(ws.owner_id, id, now_millis())
            .await?;
        self.workspace(user, id).await
    }

    /// Removes the workspace and its container; never the project volume.
    pub async fn delete_workspace(&self, user: &User, id: Uuid) -> Result<()> {
        let guard = self.lock_workspace(id).await?;
        let ws = self.workspace(user, id).await?;
        self.engine_of(&ws)
            .await?
            .remove_container(&ws.container_name())
            .await?;
        self.store().unassign_projects_of(id).await?;
        self.store().delete_workspace(id).await?;
        self.store().delete_events(id).await?;
        if ws.is_default {
            let rest = self.store().workspaces(Some(ws.owner_id)).await?;
            if let Some(next) = rest.first() {
                self.store()
                    .set_default_workspace(ws.owner_id, next.id, now_millis())
                    .await?;
            }
        }
        drop(guard);
        self.forget_lock(id);
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
        let _guard = self.lock_workspace(id).await?;
        let ws = self.workspace(user, id).await?;
        let project = self.project(user, project_id).await?;
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
            self.engine_of(&ws).await?.remove_container(&c.id).await?;
        }
        // The record's own changes (a project, a health check) and the
        // container's removal, in one save; the new container is made on
        // its project's node.
        let mut ws = transition(&ws, Transition::ContainerRemoved, now_millis());
        if let Some(pid) = ws.project_id {
            if let Some(p) = self.store().project(pid).await? {
                ws.node = p.node;
            }
        }
        self.store().save_workspace(&ws).await?;
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
        let _guard = self.lock_workspace(id).await?;
        let mut ws = self.workspace(user, id).await?;
        let type_limits = &self.workspace_type(&ws.type_name)?.resources;
        let merged_overrides = type_limits.patched(&ws.settings.resources, &patch);
        let limits = type_limits.merged(&merged_overrides);
        limits
            .validate(self.host_cpus())
            .map_err(|e| ServiceError::Invalid(format!("resourceLimits: {e}")))?;
        // A running workspace that grows takes more of its owner's quota.
        let need = if matches!(
            ws.status,
            WorkspaceStatus::Running | WorkspaceStatus::Starting
        ) {
            let old = self.effective_limits(&ws)?;
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
                self.demand_of(&ws)?,
                crate::domain::placement::Demand::of(&limits),
            );
            let more = crate::domain::placement::Demand {
                cpus: (new.cpus - old.cpus).max(0.0),
                memory_mb: new.memory_mb.saturating_sub(old.memory_mb),
            };
            Some(self.claim_room(&ws, more, new).await?)
        } else {
            None
        };
        let _hold = self.reserve(ws.owner_id, need).await?;
        let engine = self.engine_of(&ws).await?;
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
        self.store().save_workspace(&ws).await?;
        self.store()
            .insert_event(
                ws.id,
                ws.updated_at,
                EventKind::LimitsChanged,
                &format!(
                    "cpus {}, memory {} MB, memory+swap {} MB, reservation {}",
                    limits.cpus,
                    limits.memory_mb,
                    limits.effective_swap_mb(),
                    limits
                        .memory_reservation_mb
                        .map(|r| format!("{r} MB"))
                        .unwrap_or_else(|| "none".into())
                ),
            )
            .await?;
        Ok(ws)
    }

    /// The newest events of a workspace, newest first.
    pub async fn workspace_events(
        &self,
        user: &User,
        id: Uuid,
        limit: i64,
    ) -> Result<Vec<WorkspaceEvent>> {
        self.workspace(user, id).await?;
        Ok(self.store().events(id, limit.clamp(1, 1000)).await?)
    }

    /// A page of a workspace's events, newest first.
    pub async fn workspace_events_page(
        &self,
        user: &User,
        id: Uuid,
        page: &crate::domain::page::PageRequest,
    ) -> Result<crate::domain::page::Page<WorkspaceEvent>> {
        self.workspace(user, id).await?;
        Ok(self.store().events_page(id, page).await?)
    }

    /// A page of [`Berth::workspaces`].
    pub async fn workspaces_page(
        &self,
        user: &User,
        page: &crate::domain::page::PageRequest,
    ) -> Result<crate::domain::page::Page<Workspace>> {
        let owner = (!user.is_admin()).then_some(user.id);
        Ok(self.store().workspaces_page(owner, page).await?)
    }

    /// Projects of a workspace: its current one and those assigned to it.
    pub async fn workspace_projects(&self, user: &User, id: Uuid) -> Result<Vec<Project>> {
        let ws = self.workspace(user, id).await?;
        let all = self.store().projects(Some(ws.owner_id)).await?;
        Ok(all
            .into_iter()
            .filter(|p| Some(p.id) == ws.project_id || p.workspace_id == Some(id))
            .collect())
    }

    /// The owner's projects this workspace could mount.
    pub async fn compatible_projects(&self, user: &User, id: Uuid) -> Result<Vec<Project>> {
        let ws = self.workspace(user, id).await?;
        let all = self.store().projects(Some(ws.owner_id)).await?;
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
        let ws = self.workspace(user, id).await?;
        let project = self.project(user, project_id).await?;
        if project.owner_id != ws.owner_id {
            return Err(ServiceError::NotFound(format!(
                "project {project_id} not found"
            )));
        }
        Self::check_compatible(&project, &ws.type_name)?;
        self.store()
            .assign_project(project_id, id, &ws.type_name, now_millis())
            .await?;
        self.project(user, project_id).await
    }
}

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

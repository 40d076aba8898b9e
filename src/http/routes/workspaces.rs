//! `/api/workspaces`: the records and their lifecycle.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::domain::ResourceOverrides;
use crate::domain::Workspace;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, ApiQuery, Caller, IdPath, TextPath};
use crate::http::wire::{
    ok, ok_with, CreateWorkspaceRequest, DeletedDto, EventDto, EventsQuery, HealthResponseDto,
    ProjectDto, ProjectIdRequest, StatsDto, StatusDto, TypeDto, UpdateWorkspaceRequest,
    WorkspaceConfigDto, WorkspaceDto,
};
use crate::service::{Berth, CreateWorkspace, UpdateWorkspace, Volumes};

/// A workspace as the API shows it, with its effective configuration.
pub fn workspace_dto(berth: &Berth, w: &Workspace) -> WorkspaceDto {
    let config = berth
        .types()
        .workspace_type(&w.type_name)
        .ok()
        .map(|t| WorkspaceConfigDto {
            image: t.image.clone(),
            port: t.port,
            resource_limits: (&t.resources.merged(&w.settings.resources)).into(),
            health_check: berth
                .types()
                .effective_health_check(w)
                .ok()
                .flatten()
                .as_ref()
                .map(Into::into),
        });
    WorkspaceDto::new(
        w,
        config,
        berth.core().app_urls().app_url(w),
        berth.core().nodes().seen(&w.node),
    )
}

fn list_dto(berth: &Berth, ws: &[Workspace]) -> Vec<WorkspaceDto> {
    ws.iter().map(|w| workspace_dto(berth, w)).collect()
}

pub async fn types(State(berth): State<Berth>, _caller: Caller) -> ApiResult<Response> {
    let ts = berth.types().list().await?;
    Ok(ok(ts.iter().map(TypeDto::from).collect::<Vec<_>>()))
}

pub async fn list(
    State(berth): State<Berth>,
    caller: Caller,
    ApiQuery(q): ApiQuery<crate::http::wire::PageQuery>,
) -> ApiResult<Response> {
    let page = q
        .request()
        .map_err(crate::http::error::ApiError::bad_request)?;
    let ws = berth.workspaces_page(&caller.user, &page).await?;
    Ok(crate::http::wire::ok_page(ws, |w| {
        workspace_dto(&berth, &w)
    }))
}

pub async fn stats(State(berth): State<Berth>, caller: Caller) -> ApiResult<Response> {
    let s = berth.workspace_stats(&caller.user).await?;
    let default = s
        .default_workspace
        .as_ref()
        .map(|w| workspace_dto(&berth, w));
    Ok(ok(StatsDto::new(&s, default)))
}

pub async fn by_type(
    State(berth): State<Berth>,
    caller: Caller,
    TextPath(type_name): TextPath,
) -> ApiResult<Response> {
    let ws = berth.workspaces_of_type(&caller.user, &type_name).await?;
    Ok(ok(list_dto(&berth, &ws)))
}

pub async fn get(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let w = berth.core().workspace(&caller.user, id).await?;
    Ok(ok(workspace_dto(&berth, &w)))
}

pub async fn create(
    State(berth): State<Berth>,
    State(volumes): State<Volumes>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateWorkspaceRequest>,
) -> ApiResult<Response> {
    // A project's first workspace may place the project where it has room;
    // when that cannot be done the project stays, and the start says why.
    if let Some(pid) = req.project_id {
        let overrides = req.resource_limits.clone().unwrap_or_default();
        if let Err(e) = volumes
            .place_for_first_workspace(&caller.user, pid, &req.type_name, &overrides)
            .await
        {
            tracing::info!(project = %pid, error = %e, "the project stays where it is");
        }
    }
    let w = berth
        .create_workspace(
            &caller.user,
            CreateWorkspace {
                name: req.name,
                description: req.description,
                type_name: req.type_name,
                is_default: req.is_default,
                project_id: req.project_id,
                resources: req.resource_limits,
                health_check: req.health_check,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, ok(workspace_dto(&berth, &w))).into_response())
}

pub async fn update(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<UpdateWorkspaceRequest>,
) -> ApiResult<Response> {
    let w = berth
        .update_workspace(
            &caller.user,
            id,
            UpdateWorkspace {
                name: req.name,
                description: req.description,
                is_default: req.is_default,
                project_id: req.current_project_id,
                archived: req.archived,
                health_check: req.health_check,
            },
        )
        .await?;
    Ok(ok(workspace_dto(&berth, &w)))
}

pub async fn set_default(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let w = berth.set_default(&caller.user, id).await?;
    Ok(ok(workspace_dto(&berth, &w)))
}

pub async fn delete(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    berth.delete_workspace(&caller.user, id).await?;
    Ok(ok_with(
        DeletedDto { id },
        "workspace and its container deleted; the project volume is kept",
    ))
}

pub async fn start(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let w = berth.start_workspace(&caller.user, id).await?;
    Ok(ok_with(workspace_dto(&berth, &w), "workspace started"))
}

pub async fn stop(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let w = berth.stop_workspace(&caller.user, id).await?;
    Ok(ok_with(workspace_dto(&berth, &w), "workspace stopped"))
}

pub async fn restart(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let w = berth.restart_workspace(&caller.user, id).await?;
    Ok(ok_with(workspace_dto(&berth, &w), "workspace restarted"))
}

pub async fn status(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let r = berth.workspace_status(&caller.user, id).await?;
    Ok(ok(StatusDto::from(&r)))
}

pub async fn switch_project(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<ProjectIdRequest>,
) -> ApiResult<Response> {
    let w = berth
        .switch_project(&caller.user, id, req.project_id)
        .await?;
    Ok(ok_with(workspace_dto(&berth, &w), "project switched"))
}

pub async fn projects(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let ps = berth.workspace_projects(&caller.user, id).await?;
    Ok(ok(ps.iter().map(ProjectDto::from).collect::<Vec<_>>()))
}

pub async fn compatible_projects(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let ps = berth.compatible_projects(&caller.user, id).await?;
    Ok(ok(ps.iter().map(ProjectDto::from).collect::<Vec<_>>()))
}

pub async fn assign_project(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<ProjectIdRequest>,
) -> ApiResult<Response> {
    let p = berth
        .assign_project(&caller.user, id, req.project_id)
        .await?;
    Ok(ok_with(ProjectDto::from(&p), "project assigned"))
}

pub async fn health(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let r = berth.workspace_status(&caller.user, id).await?;
    Ok(ok(HealthResponseDto::from(&r.health_summary())))
}

pub async fn events(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Response> {
    let limit = crate::domain::validate_range("limit", q.limit.unwrap_or(50), 1, 1000)
        .map_err(crate::http::error::ApiError::bad_request)?;
    let after = q
        .cursor
        .as_deref()
        .map(crate::domain::page::Cursor::decode)
        .transpose()
        .map_err(crate::http::error::ApiError::bad_request)?;
    let paged = q.limit.is_some() || after.is_some();
    let page = crate::domain::page::PageRequest {
        limit: Some(limit as u32),
        after,
    };
    let mut evs = berth.workspace_events_page(&caller.user, id, &page).await?;
    if !paged {
        // As before pages: the newest 50, no page object.
        evs.limit = None;
    }
    Ok(crate::http::wire::ok_page(evs, |e| EventDto::from(&e)))
}

pub async fn update_resources(
    State(berth): State<Berth>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiJson(patch): ApiJson<ResourceOverrides>,
) -> ApiResult<Response> {
    let w = berth.update_resources(&caller.user, id, patch).await?;
    Ok(ok_with(
        workspace_dto(&berth, &w),
        "resource limits updated",
    ))
}

/// `POST /api/workspaces/types/{type}/pull` (admins).
pub async fn pull_type(
    State(berth): State<Berth>,
    caller: Caller,
    TextPath(type_name): TextPath,
) -> ApiResult<Response> {
    let p = berth
        .types()
        .pull_type_image(&caller.user, &type_name)
        .await?;
    let status = if p.state == crate::domain::images::PullState::Done {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, ok(crate::http::wire::PullDto::from(&p))).into_response())
}

/// `GET /api/workspaces/types/{type}/pull` (admins).
pub async fn type_pull(
    State(berth): State<Berth>,
    caller: Caller,
    TextPath(type_name): TextPath,
) -> ApiResult<Response> {
    let p = berth.types().type_pull(&caller.user, &type_name).await?;
    Ok(ok(crate::http::wire::PullDto::from(&p)))
}

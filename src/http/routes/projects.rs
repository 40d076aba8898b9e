//! `/api/projects`: create (with its volume), list, get, delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, ApiQuery, Caller, IdPath};
use crate::http::wire::{
    ok, ok_with, CreateProjectRequest, DeleteProjectQuery, ProjectDeletedDto, ProjectDto,
};
use crate::service::Projects;

pub async fn create(
    State(projects): State<Projects>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateProjectRequest>,
) -> ApiResult<Response> {
    let p = projects
        .create_project(
            &caller.user,
            &req.name,
            req.description.as_deref(),
            req.workspace_type.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, ok(ProjectDto::from(&p))).into_response())
}

pub async fn list(
    State(projects): State<Projects>,
    caller: Caller,
    ApiQuery(q): ApiQuery<crate::http::wire::PageQuery>,
) -> ApiResult<Response> {
    let page = q
        .request()
        .map_err(crate::http::error::ApiError::bad_request)?;
    let ps = projects.projects_page(&caller.user, &page).await?;
    Ok(crate::http::wire::ok_page(ps, |p| ProjectDto::from(&p)))
}

pub async fn get(
    State(projects): State<Projects>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let p = projects.project(&caller.user, id).await?;
    Ok(ok(ProjectDto::from(&p)))
}

pub async fn delete(
    State(projects): State<Projects>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<DeleteProjectQuery>,
) -> ApiResult<Response> {
    projects.delete_project(&caller.user, id, q.purge).await?;
    let message = if q.purge {
        "project and its volume deleted".to_string()
    } else {
        format!(
            "project deleted; its volume is kept for {} days",
            projects.volume_retention_days()
        )
    };
    Ok(ok_with(
        ProjectDeletedDto {
            id,
            purged: q.purge,
        },
        message,
    ))
}

//! `/api/projects`: create (with its volume, empty or cloned from git), list, get, delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::domain::git::CloneRequest;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, ApiQuery, Caller, IdPath};
use crate::http::wire::{
    ok, ok_with, CreateProjectRequest, DeleteProjectQuery, ProjectDeletedDto, ProjectDto,
};
use crate::service::{NewGitProject, Projects, Repos};

pub async fn create(
    State(projects): State<Projects>,
    State(repos): State<Repos>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateProjectRequest>,
) -> ApiResult<Response> {
    let p = match &req.git {
        None => {
            projects
                .create_project(
                    &caller.user,
                    &req.name,
                    req.description.as_deref(),
                    req.workspace_type.as_deref(),
                )
                .await?
        }
        Some(g) => {
            let clone = CloneRequest::new(
                &g.url,
                g.reference.as_deref(),
                g.depth,
                g.submodules,
                g.dir.as_deref(),
            )
            .map_err(crate::http::error::ApiError::bad_request)?;
            let new = NewGitProject {
                name: &req.name,
                description: req.description.as_deref(),
                workspace_type: req.workspace_type.as_deref(),
                clone,
            };
            repos.create_project(&caller.user, new).await?
        }
    };
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

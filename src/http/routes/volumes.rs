//! Project volumes over HTTP: clone, size, and moves to another node.

use axum::extract::State;
use axum::response::Response;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, Caller, IdPath};
use crate::http::wire::*;
use crate::http::wire::{ok, ok_with, ProjectDto};
use crate::service::volumes::CloneTarget;
use crate::service::Volumes;

/// `POST /api/workspaces/projects/:projectId/clone`.
pub async fn clone(
    State(volumes): State<Volumes>,
    caller: Caller,
    IdPath(project_id): IdPath,
    ApiJson(req): ApiJson<CloneRequest>,
) -> ApiResult<Response> {
    let target = match (req.target_project_id, req.name) {
        (Some(t), None) => CloneTarget::Existing(t),
        (None, Some(name)) => CloneTarget::New { name },
        _ => {
            return Err(ApiError::bad_request(
                "give either targetProjectId (an existing project) or name (a new one)",
            ))
        }
    };
    let cloned = volumes
        .clone_volume(
            &caller.user,
            project_id,
            target,
            req.overwrite.unwrap_or(false),
        )
        .await?;
    let t = cloned.project;
    Ok(ok_with(
        ClonedDto {
            volume_name: t.volume_name.clone(),
            target_project: ProjectDto::from(&t),
            skipped: SkippedDto {
                count: cloned.skipped.count,
                sample: cloned.skipped.sample,
            },
        },
        "volume cloned",
    ))
}

/// `POST /api/projects/:id/move` (admins).
pub async fn move_project(
    State(volumes): State<Volumes>,
    caller: Caller,
    IdPath(project_id): IdPath,
    ApiJson(req): ApiJson<MoveRequest>,
) -> ApiResult<Response> {
    let m = volumes
        .move_project(&caller.user, project_id, req.node.trim())
        .await?;
    let to = m.project.node.clone();
    Ok(ok_with(
        MovedDto {
            volume_name: m.project.volume_name.clone(),
            project: ProjectDto::from(&m.project),
            from: m.from.clone(),
            to: to.clone(),
            previous_volume: m.previous_volume,
            entries: m.entries,
            digest: m.digest,
            restarted_workspaces: m.restarted,
            seconds: (m.seconds * 1000.0).round() / 1000.0,
        },
        format!(
            "moved from {} to {to}; the old volume is kept on {} for {} days",
            m.from,
            m.from,
            volumes.config().cleanup.volume_retention_days
        ),
    ))
}

/// `GET /api/workspaces/projects/:projectId/volume-size`.
pub async fn size(
    State(volumes): State<Volumes>,
    caller: Caller,
    IdPath(project_id): IdPath,
) -> ApiResult<Response> {
    let bytes = volumes.volume_size(&caller.user, project_id).await?;
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    Ok(ok(SizeDto {
        size_bytes: bytes,
        size_mb: round2(bytes as f64 / 1_048_576.0),
        size_gb: round2(bytes as f64 / 1_073_741_824.0),
    }))
}

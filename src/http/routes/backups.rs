//! Backups over HTTP: make one, the catalogue, download, upload, verify,
//! restore, recovery onto another node, and the backup policy.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncReadExt;

use crate::domain::backups::Compression;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, Caller, IdPath};
use crate::http::wire::*;
use crate::http::wire::{ok, ok_with, DeletedDto, ProjectDto};
use crate::service::Backups;

/// `POST /api/workspaces/projects/:projectId/backup`; an empty body is fine.
pub async fn create(
    State(backups): State<Backups>,
    caller: Caller,
    IdPath(project_id): IdPath,
    body: Bytes,
) -> ApiResult<Response> {
    let req: BackupRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BackupRequest::default()
    } else {
        crate::http::extract::parse_json_body(&body)?
    };
    let compression = match req.compression.as_deref() {
        None => Compression::Zstd,
        Some(c) => c.parse().map_err(ApiError::bad_request)?,
    };
    let b = backups
        .create_backup(
            &caller.user,
            project_id,
            compression,
            req.pause_workspace.unwrap_or(false),
        )
        .await?;
    let msg = if b.crash_consistent {
        "backup complete (crash-consistent: a workspace was running; pass pauseWorkspace for a consistent copy)"
    } else {
        "backup complete"
    };
    Ok((
        StatusCode::CREATED,
        ok_with(dto(&backups.locate_backup(b).await), msg),
    )
        .into_response())
}

pub async fn list(
    State(backups): State<Backups>,
    caller: Caller,
    IdPath(project_id): IdPath,
    crate::http::extract::ApiQuery(q): crate::http::extract::ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let page = q.request().map_err(ApiError::bad_request)?;
    let mut list = backups
        .backups_page(&caller.user, project_id, &page)
        .await?;
    let located = backups
        .locate_backups(std::mem::take(&mut list.items))
        .await;
    let page = crate::domain::page::Page {
        items: located,
        next: list.next,
        total: list.total,
        limit: list.limit,
    };
    Ok(ok_page(page, |b| dto(&b)))
}

pub async fn get(
    State(backups): State<Backups>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let b = backups.backup(&caller.user, id).await?;
    Ok(ok(dto(&backups.locate_backup(b).await)))
}

pub async fn delete(
    State(backups): State<Backups>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    backups.delete_backup(&caller.user, id).await?;
    Ok(ok_with(DeletedDto { id }, "backup deleted"))
}

/// Streams the archive with its length and checksum.
pub async fn download(
    State(backups): State<Backups>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let (b, path) = backups.backup_file(&caller.user, id).await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::from(crate::service::ServiceError::Internal(e.to_string())))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::from(crate::service::ServiceError::Internal(e.to_string())))?
        .len();
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(match b.compression {
            Compression::Zstd => "application/zstd",
            Compression::Gzip => "application/gzip",
        }),
    );
    let name = format!("attachment; filename=\"{}\"", b.file_name());
    h.insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_str(&name).expect("ASCII"),
    );
    if let Some(sum) = &b.sha256 {
        h.insert(
            "x-checksum-sha256",
            HeaderValue::from_str(sum).expect("hex"),
        );
    }
    Ok(resp)
}

pub async fn verify(
    State(backups): State<Backups>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let (b, entries) = backups.verify_backup(&caller.user, id).await?;
    Ok(ok_with(
        VerifyDto {
            id: b.id,
            valid: true,
            entries,
            sha256: b.sha256,
        },
        "checksum matches and the archive reads through",
    ))
}

pub async fn restore(
    State(backups): State<Backups>,
    caller: Caller,
    IdPath(project_id): IdPath,
    ApiJson(req): ApiJson<RestoreRequest>,
) -> ApiResult<Response> {
    let r = backups
        .restore(
            &caller.user,
            project_id,
            req.backup_id,
            req.stop_workspace.unwrap_or(false),
        )
        .await?;
    Ok(ok_with(
        RestoredDto {
            restored: true,
            backup_id: r.backup.id,
            volume_name: r.volume_name,
            previous_volume: r.previous_volume,
            restarted_workspaces: r.restarted,
        },
        format!(
            "restored; the previous volume is kept for {} days",
            backups.config().cleanup.volume_retention_days
        ),
    ))
}

/// `POST /api/projects/:id/recover` (admins).
pub async fn recover_project(
    State(backups): State<Backups>,
    caller: Caller,
    IdPath(project_id): IdPath,
    ApiJson(req): ApiJson<MoveRequest>,
) -> ApiResult<Response> {
    let r = backups
        .recover_project(&caller.user, project_id, req.node.trim())
        .await?;
    let age = r.backup_age_s;
    let to = r.project.node.clone();
    Ok(ok_with(
        RecoveredDto {
            project: ProjectDto::from(&r.project),
            from: r.from.clone(),
            to: to.clone(),
            backup_id: r.backup.id,
            backup_created_at: crate::domain::rfc3339(r.backup.created_at),
            backup_age_seconds: age,
            fetched_from_remote: r.fetched,
        },
        format!(
            "recovered onto {to} from a backup {} old: what was written on {} after it is not there",
            human_age(age),
            r.from
        ),
    ))
}

/// "3 h 12 min", "45 s".
fn human_age(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} days {} h", s / 86400, s % 86400 / 3600),
    }
}

/// `POST /api/projects/:id/backups/upload`: the archive as the raw body,
/// streamed; `X-Checksum-Sha256` is checked when sent.
pub async fn upload(
    State(backups): State<Backups>,
    caller: Caller,
    IdPath(project_id): IdPath,
    crate::http::extract::ApiQuery(q): crate::http::extract::ApiQuery<UploadQuery>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let compression = q
        .compression
        .as_deref()
        .map(str::parse::<Compression>)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let expected = headers
        .get("x-checksum-sha256")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()))
                .map(str::to_string)
                .ok_or_else(|| ApiError::bad_request("X-Checksum-Sha256 must be 64 hex digits"))
        })
        .transpose()?;
    let b = backups
        .upload_backup(
            &caller.user,
            project_id,
            compression,
            expected,
            body.into_data_stream(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        ok_with(
            dto(&backups.locate_backup(b).await),
            "archive checked and added to the catalogue",
        ),
    )
        .into_response())
}

pub async fn get_policy(
    State(backups): State<Backups>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    Ok(ok(policy_dto(
        backups.backup_policy(&caller.user, id).await?,
    )))
}

/// Replaces the project's own settings; a field left out goes back to the
/// config's default.
pub async fn put_policy(
    State(backups): State<Backups>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<PolicyRequest>,
) -> ApiResult<Response> {
    let own = crate::domain::backups::PolicySettings {
        schedule: req.schedule,
        keep_last: req.keep_last,
        keep_daily: req.keep_daily,
        keep_weekly: req.keep_weekly,
    };
    Ok(ok(policy_dto(
        backups.set_backup_policy(&caller.user, id, own).await?,
    )))
}

//! Backups, restores, clones, sizes and backup policies on the wire.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::backups::Compression;
use crate::http::wire::{rfc3339, ProjectDto, Timestamp};
use crate::service::backups::LocatedBackup;

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupDto {
    pub id: Uuid,
    pub project_id: Uuid,
    #[schemars(with = "Timestamp")]
    pub created_at: String,
    #[schemars(with = "Option<Timestamp>")]
    pub completed_at: Option<String>,
    #[schemars(with = "crate::domain::backups::BackupState")]
    pub state: String,
    #[schemars(with = "Compression")]
    pub compression: String,
    pub size_bytes: Option<u64>,
    pub sha256: Option<String>,
    /// Taken while a workspace ran on the volume, without pausing it.
    pub crash_consistent: bool,
    pub error: Option<String>,
    /// The stored archive on the Berth host (for compatibility; never
    /// taken from a request).
    pub backup_path: String,
    /// The copy in remote storage (`backups.remote`); null when remote
    /// copies were off.
    pub remote: Option<RemoteDto>,
    /// The archive is on this host (false once `keep_local` moved it to
    /// remote storage only; it is fetched back when needed).
    pub stored_locally: bool,
    /// What the archive's files hold, in bytes (what a restore writes);
    /// null for backups made before it was recorded.
    pub unpacked_bytes: Option<u64>,
    /// Uploaded (`POST …/backups/upload`) rather than made by Berth.
    pub uploaded: bool,
    /// Paths that vanished while the volume was read (a workspace was
    /// writing to it): counted, the first few named.
    pub skipped: SkippedDto,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkippedDto {
    pub count: u64,
    pub sample: Vec<String>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteDto {
    /// `pending` (being sent), `stored`, or `failed` (retried by the
    /// backups job).
    #[schemars(with = "crate::domain::backups::RemoteState")]
    pub state: String,
    #[schemars(with = "Option<Timestamp>")]
    pub stored_at: Option<String>,
    pub error: Option<String>,
}

pub fn dto(located: &LocatedBackup) -> BackupDto {
    let b = &located.backup;
    BackupDto {
        id: b.id,
        project_id: b.project_id,
        created_at: rfc3339(b.created_at),
        completed_at: b.completed_at.map(rfc3339),
        state: b.state.as_str().to_string(),
        compression: b.compression.as_str().to_string(),
        size_bytes: b.size_bytes,
        sha256: b.sha256.clone(),
        crash_consistent: b.crash_consistent,
        error: b.error.clone(),
        backup_path: located
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        stored_locally: located.stored_locally,
        unpacked_bytes: b.content_bytes,
        uploaded: b.origin != crate::domain::backups::BackupOrigin::Made,
        skipped: SkippedDto {
            count: b.skipped_count,
            sample: b.skipped_sample.clone(),
        },
        remote: b.remote.as_ref().map(|r| RemoteDto {
            state: r.state.as_str().to_string(),
            stored_at: r.at.map(rfc3339),
            error: r.error.clone(),
        }),
    }
}

/// `POST /api/backups/:id/verify`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyDto {
    pub id: Uuid,
    pub valid: bool,
    /// Entries read through in the archive.
    pub entries: u64,
    pub sha256: Option<String>,
}

/// `POST /api/workspaces/projects/:projectId/restore`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoredDto {
    pub restored: bool,
    pub backup_id: Uuid,
    /// The project's volume now: a new one holding the archive's files.
    pub volume_name: String,
    /// The volume the project had before, kept for the retention period.
    pub previous_volume: String,
    /// Workspaces that were stopped for the restore and started again.
    pub restarted_workspaces: Vec<Uuid>,
}

/// `POST /api/projects/:id/move`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MovedDto {
    /// The project as it is now: on the target node, with its new volume.
    pub project: ProjectDto,
    /// The node it left.
    pub from: String,
    pub to: String,
    pub volume_name: String,
    /// Its volume on the node it left, kept there for the retention period.
    pub previous_volume: String,
    /// Entries in the volume, and the content digest both copies had.
    pub entries: u64,
    pub digest: String,
    /// Workspaces stopped for the move and started again on the target.
    pub restarted_workspaces: Vec<Uuid>,
    pub seconds: f64,
}

/// `POST /api/projects/:id/recover`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveredDto {
    /// The project as it is now: on the target node, on a volume restored
    /// from the backup.
    pub project: ProjectDto,
    /// The node it was on.
    pub from: String,
    pub to: String,
    pub backup_id: Uuid,
    #[schemars(with = "Timestamp")]
    pub backup_created_at: String,
    /// How old the backup is: what was written after it is lost.
    pub backup_age_seconds: u64,
    /// The archive was fetched back from remote storage.
    pub fetched_from_remote: bool,
}

/// `POST /api/workspaces/projects/:projectId/clone`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClonedDto {
    pub volume_name: String,
    pub target_project: ProjectDto,
    /// Paths that vanished while they were copied (a workspace was writing
    /// to the source).
    pub skipped: SkippedDto,
}

/// `GET /api/workspaces/projects/:projectId/volume-size`.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SizeDto {
    pub size_bytes: u64,
    #[serde(rename = "sizeMB")]
    pub size_mb: f64,
    #[serde(rename = "sizeGB")]
    pub size_gb: f64,
}

#[derive(Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupRequest {
    /// Default `zstd`.
    #[schemars(with = "Option<Compression>")]
    pub compression: Option<String>,
    pub pause_workspace: Option<bool>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreRequest {
    pub backup_id: Uuid,
    pub stop_workspace: Option<bool>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MoveRequest {
    /// The node to move the project to (`GET /api/nodes`).
    #[schemars(length(min = 1, max = 63))]
    pub node: String,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloneRequest {
    pub target_project_id: Option<Uuid>,
    /// Create the target project with this name instead.
    #[schemars(with = "Option<crate::http::wire::Name>")]
    pub name: Option<String>,
    pub overwrite: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// `zstd` or `gzip`; detected from the archive when absent.
    #[schemars(with = "Option<Compression>")]
    pub compression: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDto {
    pub schedule: String,
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    /// The fields this project set itself; the others come from the config.
    pub own: PolicyRequest,
}

#[derive(Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRequest {
    /// A five-field cron expression.
    #[schemars(length(max = 100))]
    pub schedule: Option<String>,
    pub keep_last: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
}

pub fn policy_dto(p: crate::service::backups::BackupPolicy) -> PolicyDto {
    PolicyDto {
        schedule: p.schedule,
        keep_last: p.retention.keep_last,
        keep_daily: p.retention.keep_daily,
        keep_weekly: p.retention.keep_weekly,
        own: PolicyRequest {
            schedule: p.own.schedule,
            keep_last: p.own.keep_last,
            keep_daily: p.own.keep_daily,
            keep_weekly: p.own.keep_weekly,
        },
    }
}

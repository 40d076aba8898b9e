//! Backups of project volumes: what a catalogue entry is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Millis;

/// How an archive is compressed.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Multi-threaded zstd: the default, fast and small.
    #[default]
    Zstd,
    /// A standard `.tar.gz` any `tar xzf` opens.
    Gzip,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }

    /// The file name suffix.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => "tar.zst",
            Compression::Gzip => "tar.gz",
        }
    }
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "zstd" => Ok(Compression::Zstd),
            "gzip" => Ok(Compression::Gzip),
            other => Err(format!("compression must be zstd or gzip (got {other:?})")),
        }
    }
}

/// Where a backup is in its life.
/// Serialized (and described) as `as_str` spells it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupState {
    #[default]
    InProgress,
    Complete,
    Failed,
}

impl BackupState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupState::InProgress => "in_progress",
            BackupState::Complete => "complete",
            BackupState::Failed => "failed",
        }
    }
}

impl fmt::Display for BackupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackupState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "in_progress" => Ok(BackupState::InProgress),
            "complete" => Ok(BackupState::Complete),
            "failed" => Ok(BackupState::Failed),
            other => Err(format!("unknown backup state {other:?}")),
        }
    }
}

/// Where an archive came from: Berth's own backup of the volume, or an
/// upload (archives Berth did not make keep set-user-id and set-group-id
/// bits only when an admin uploaded them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BackupOrigin {
    #[default]
    Made,
    Uploaded {
        by_admin: bool,
    },
}

impl BackupOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupOrigin::Made => "made",
            BackupOrigin::Uploaded { by_admin: false } => "uploaded",
            BackupOrigin::Uploaded { by_admin: true } => "uploaded_by_admin",
        }
    }

    /// The stored text; absent (rows from before uploads were told apart)
    /// is Berth's own.
    pub fn parse(s: Option<&str>) -> Result<BackupOrigin, String> {
        match s {
            None | Some("made") => Ok(BackupOrigin::Made),
            Some("uploaded") => Ok(BackupOrigin::Uploaded { by_admin: false }),
            Some("uploaded_by_admin") => Ok(BackupOrigin::Uploaded { by_admin: true }),
            Some(other) => Err(format!("unknown backup origin {other:?}")),
        }
    }

    /// Whether restoring clears set-id bits.
    pub fn strips_setid(self) -> bool {
        self == BackupOrigin::Uploaded { by_admin: false }
    }
}

/// One entry of the backup catalogue.
#[derive(Debug, Clone, Default)]
pub struct Backup {
    pub id: Uuid,
    pub project_id: Uuid,
    pub owner_id: Uuid,
    pub created_at: Millis,
    pub completed_at: Option<Millis>,
    pub state: BackupState,
    pub compression: Compression,
    pub size_bytes: Option<u64>,
    pub sha256: Option<String>,
    /// Taken while a workspace was running on the volume (crash-consistent,
    /// not paused).
    pub crash_consistent: bool,
    pub error: Option<String>,
    /// The copy in remote storage; `None` when remote copies were off.
    pub remote: Option<RemoteCopy>,
    /// What the archive's files hold, in bytes: what a restore may write.
    /// `None` for backups made before it was recorded.
    pub content_bytes: Option<u64>,
    pub origin: BackupOrigin,
    /// Paths that vanished while the volume was read (a workspace was
    /// writing to it), and the first few of them.
    pub skipped_count: u64,
    pub skipped_sample: Vec<String>,
}

/// Where a backup's remote copy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RemoteState {
    /// Waiting to be uploaded (or being uploaded).
    Pending,
    /// Uploaded, its size checked.
    Stored,
    /// The last upload failed; the backups job tries again.
    Failed,
}

impl RemoteState {
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteState::Pending => "pending",
            RemoteState::Stored => "stored",
            RemoteState::Failed => "failed",
        }
    }
}

impl FromStr for RemoteState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(RemoteState::Pending),
            "stored" => Ok(RemoteState::Stored),
            "failed" => Ok(RemoteState::Failed),
            other => Err(format!("unknown remote state {other:?}")),
        }
    }
}

/// A backup's remote copy: its state, when it was stored, why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCopy {
    pub state: RemoteState,
    pub at: Option<Millis>,
    pub error: Option<String>,
}

impl Backup {
    /// The archive's file name inside the backup directory: derived from
    /// the id, never from a request.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.id, self.compression.extension())
    }
}

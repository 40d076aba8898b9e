//! Backups of project volumes: what a catalogue entry is.

use uuid::Uuid;

use super::{spelled_enum, Millis};

spelled_enum! {
    /// How an archive is compressed.
    #[derive(Default)]
    pub enum Compression("compression") {
        /// Multi-threaded zstd: the default, fast and small.
        #[default]
        Zstd = "zstd",
        /// A standard `.tar.gz` any `tar xzf` opens.
        Gzip = "gzip",
    }
}

impl Compression {
    /// The file name suffix.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => "tar.zst",
            Compression::Gzip => "tar.gz",
        }
    }
}

spelled_enum! {
    /// Where a backup is in its life.
    #[derive(Default)]
    pub enum BackupState("backup state") {
        #[default]
        InProgress = "in_progress",
        Complete = "complete",
        Failed = "failed",
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
    /// The replica writing it while it is `in_progress` (when that replica
    /// is gone, another fails it).
    pub replica: Option<Uuid>,
}

spelled_enum! {
    /// Where a backup's remote copy stands.
    pub enum RemoteState("remote state") {
        /// Waiting to be uploaded (or being uploaded).
        Pending = "pending",
        /// Uploaded, its size checked.
        Stored = "stored",
        /// The last upload failed; the backups job tries again.
        Failed = "failed",
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

/// A project's own backup settings; `None` fields fall back to the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySettings {
    pub schedule: Option<String>,
    pub keep_last: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
}

-- What a backup's files hold (the bound of what restoring it may write),
-- where the archive came from (Berth's own backup, or an upload by a member
-- or an admin: set-id bits are kept only for the first and the last), and
-- what vanished while the volume was read.
ALTER TABLE backups ADD COLUMN content_bytes BIGINT;
ALTER TABLE backups ADD COLUMN origin TEXT;
ALTER TABLE backups ADD COLUMN skipped_count BIGINT;
ALTER TABLE backups ADD COLUMN skipped_sample TEXT;

-- Volume operations under way (clone, restore): a volume being filled that
-- no project uses yet. Removed when the operation switches the project to
-- it; one left at start-up was interrupted, and its volume is removed.
CREATE TABLE volume_ops (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    project_id TEXT NOT NULL,
    volume TEXT NOT NULL,
    new_project BIGINT NOT NULL,
    started_at BIGINT NOT NULL
);

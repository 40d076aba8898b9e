-- Remote copies of backups (backups.remote): state pending|stored|failed,
-- NULL when remote copies were off when the backup completed.
ALTER TABLE backups ADD COLUMN remote_state TEXT;
ALTER TABLE backups ADD COLUMN remote_at BIGINT;
ALTER TABLE backups ADD COLUMN remote_error TEXT;

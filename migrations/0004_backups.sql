-- The backup catalogue. Archives live under <data_dir>/backups/, named by id.
CREATE TABLE backups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    completed_at BIGINT,
    state TEXT NOT NULL,
    compression TEXT NOT NULL,
    size_bytes BIGINT,
    sha256 TEXT,
    crash_consistent BIGINT NOT NULL,
    error TEXT
);
CREATE INDEX backups_project ON backups(project_id, created_at);

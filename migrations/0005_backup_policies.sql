-- Per-project backup schedule and retention; NULL means the config default.
CREATE TABLE backup_policies (
    project_id TEXT PRIMARY KEY,
    schedule TEXT,
    keep_last BIGINT,
    keep_daily BIGINT,
    keep_weekly BIGINT
);

-- Every run of a scheduled or manual job, with what it did.
CREATE TABLE job_runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    dry_run BIGINT NOT NULL,
    counts TEXT NOT NULL,
    details TEXT NOT NULL,
    error TEXT
);
CREATE INDEX job_runs_name_started ON job_runs(name, started_at);

-- When a managed volume with no project record was first seen: its
-- retention clock starts then.
CREATE TABLE volume_clocks (
    name TEXT PRIMARY KEY,
    first_seen_at BIGINT NOT NULL
);

-- Several Berth processes ("replicas") on one database (PostgreSQL).

-- Every `berth serve` that ran on this database: a row at its start, a
-- heartbeat while it runs, `stopped_at` at a clean stop. One whose
-- heartbeat is older than `replicas.dead_after_s` is gone; what it left
-- under way is then taken care of by another (`reaped_at`, `reaped_by`).
CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    pid BIGINT NOT NULL,
    -- The id of the backup directory it writes archives to (the marker
    -- file in it): replicas that share one have the same.
    archive_dir TEXT NOT NULL,
    -- The ID of the Docker engine it calls the node `local`.
    engine_id TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped_at BIGINT,
    reaped_at BIGINT,
    reaped_by TEXT
);
CREATE INDEX replicas_heartbeat ON replicas(heartbeat_at);

-- Facts the whole installation shares, by name (e.g. its instance label:
-- a replica configured with another one would take every container for
-- gone).
CREATE TABLE installation (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- A scheduled run belongs to one tick of its schedule (the occurrence, in
-- unix milliseconds): the replica that records it first runs it, the
-- others do not. Manual runs have no tick. `replica`: who ran it; a run
-- still `running` when its replica is gone becomes `interrupted`.
ALTER TABLE job_runs ADD COLUMN tick BIGINT;
ALTER TABLE job_runs ADD COLUMN replica TEXT;
CREATE UNIQUE INDEX job_runs_tick ON job_runs(name, tick);
CREATE INDEX job_runs_outcome ON job_runs(outcome);

-- Who is writing a backup, filling a volume (clone, restore, move,
-- recover): when that replica is gone, another fails the backup and
-- removes the partial volume.
ALTER TABLE backups ADD COLUMN replica TEXT;
ALTER TABLE volume_ops ADD COLUMN replica TEXT;

-- Recovery restarts waiting out their backoff: due at `due_at`, done by
-- whichever replica takes the workspace's lock first after that.
CREATE TABLE recoveries (
    workspace_id TEXT PRIMARY KEY,
    due_at BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    failure TEXT NOT NULL,
    scheduled_by TEXT NOT NULL
);
CREATE INDEX recoveries_due ON recoveries(due_at);

-- The engine event an event was recorded from (node, container, action,
-- time): every replica follows the engines, one records it.
ALTER TABLE workspace_events ADD COLUMN source TEXT;
CREATE UNIQUE INDEX workspace_events_source ON workspace_events(source);

-- Long operations that run in the background (a node's drain, an image
-- pull), as any replica reads them; `replica` runs it.
CREATE TABLE progress (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    replica TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT,
    -- Why it ended unfinished (its replica was gone).
    interrupted TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);

-- Failed logins by key (an account's email, a client's address), shared
-- by every replica so that spreading attempts over them gains nothing.
CREATE TABLE login_attempts (
    name TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_failure BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);
CREATE INDEX login_attempts_last ON login_attempts(last_failure);

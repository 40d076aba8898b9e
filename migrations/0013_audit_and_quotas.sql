-- Every state-changing action through the API, the UI or the CLI's admin
-- commands, and failed logins: who (user and credential), from where,
-- what (action, resource, its owner when someone else's, the fields of
-- the request that name resources) and how it ended. Nothing secret.
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    -- The user who acted (null: not authenticated, or unknown).
    actor_id TEXT,
    actor_email TEXT,
    -- `session`, `token`, `cli` or `none`; the token's id and name.
    credential TEXT NOT NULL,
    credential_id TEXT,
    credential_name TEXT,
    client TEXT,
    user_agent TEXT,
    -- The operation (`startWorkspace`), its method and route.
    action TEXT NOT NULL,
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    resource_type TEXT,
    resource_id TEXT,
    -- The resource's owner when the actor is not (an admin acting).
    owner_id TEXT,
    -- JSON: the request's fields that name resources.
    details TEXT NOT NULL,
    -- `done`, `refused` (4xx) or `failed` (5xx), with the status and the
    -- error code.
    outcome TEXT NOT NULL,
    status BIGINT,
    code TEXT,
    replica TEXT
);
CREATE INDEX audit_log_at ON audit_log(at, id);
CREATE INDEX audit_log_actor ON audit_log(actor_id, at);
CREATE INDEX audit_log_resource ON audit_log(resource_id, at);
CREATE INDEX audit_log_action ON audit_log(action, at);

-- What an admin set for one user, over their role's defaults: per limit
-- NULL (the role's default), -1 (no limit) or the limit. CPUs in
-- thousandths.
CREATE TABLE user_quotas (
    user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    workspaces BIGINT,
    running BIGINT,
    cpus_milli BIGINT,
    memory_mb BIGINT,
    storage_mb BIGINT
);

-- A project volume's size as last measured (the volume-sizes job, a size
-- request, a restore or clone): what storage quotas count, approximate
-- between measurements.
ALTER TABLE projects ADD COLUMN size_bytes BIGINT;
ALTER TABLE projects ADD COLUMN size_at BIGINT;

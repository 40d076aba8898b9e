-- Workspace apps on their own origins (proxy.app_domain): the login
-- handoff's single-use codes, the app sessions they are exchanged for (one
-- per browser and app origin, ended with the Berth session they came from),
-- and what each workspace's ports are shared with.
CREATE TABLE app_codes (
    code_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    parent_token_id TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    port BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX app_codes_expires ON app_codes(expires_at);

CREATE TABLE app_sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    parent_token_id TEXT NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    port BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX app_sessions_parent ON app_sessions(parent_token_id);
CREATE INDEX app_sessions_user ON app_sessions(user_id);
CREATE INDEX app_sessions_workspace ON app_sessions(workspace_id);

CREATE TABLE app_shares (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    port BIGINT NOT NULL,
    level TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, port)
);

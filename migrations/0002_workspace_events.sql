-- What happened to a workspace and why: user actions, recovery restarts,
-- give-ups, OOM kills. Shown by GET /api/workspaces/:id/events.
CREATE TABLE workspace_events (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX workspace_events_ws_at ON workspace_events(workspace_id, at);

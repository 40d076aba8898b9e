-- A user's credential for one git host: a username and a token, sent by
-- HTTP basic authentication to that host only, when it asks. Never shown
-- again after it is stored; removed with its user.
CREATE TABLE git_credentials (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    host TEXT NOT NULL,
    username TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, host)
);

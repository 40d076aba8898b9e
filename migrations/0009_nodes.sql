-- Nodes: the Docker engines Berth places workspaces on (issue: several
-- Docker hosts). The engine Berth starts with is the node 'local', always
-- present; others are added by an admin. A TLS node's client certificate
-- and key are kept here (as Portainer keeps them), so every Berth replica
-- on one database reaches the same engines: protect the database like the
-- config file. Each project's volume lives on one node (projects.node).
CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    address TEXT NOT NULL,
    labels TEXT NOT NULL,
    tls_ca TEXT,
    tls_cert TEXT,
    tls_key TEXT,
    cordoned BIGINT NOT NULL,
    draining BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO nodes (name, endpoint, address, labels, cordoned, draining, created_at)
    VALUES ('local', 'default', '127.0.0.1', '{}', 0, 0, 0);

ALTER TABLE projects ADD COLUMN node TEXT NOT NULL DEFAULT 'local';
CREATE INDEX projects_node ON projects(node);

-- Indexes for the lists that page and the filters the jobs use (issue 19):
-- each page query reads its rows in order from an index instead of sorting
-- the whole table, and each cleanup planner reads only its node's records
-- of the status it decides on.
CREATE INDEX workspaces_page ON workspaces(is_default DESC, created_at DESC, id);
CREATE INDEX workspaces_owner_page ON workspaces(owner_id, is_default DESC, created_at DESC, id);
CREATE INDEX workspaces_node_status ON workspaces(node, status);
CREATE INDEX workspaces_status ON workspaces(status);
CREATE INDEX projects_owner_page ON projects(owner_id, created_at DESC, id);
CREATE INDEX projects_page ON projects(created_at DESC, id);
CREATE INDEX users_page ON users(created_at, id);

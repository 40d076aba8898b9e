-- The node a workspace's container lives on (issue: several Docker hosts):
-- its project's node, or where the planner put a workspace without a
-- project. Every engine call for the workspace goes there.
ALTER TABLE workspaces ADD COLUMN node TEXT NOT NULL DEFAULT 'local';
UPDATE workspaces SET node = COALESCE(
    (SELECT p.node FROM projects p WHERE p.id = workspaces.project_id), 'local');
CREATE INDEX workspaces_node ON workspaces(node);

-- The node an unfinished clone or restore was filling a volume on, so the
-- partial volume is removed there at the next start.
ALTER TABLE volume_ops ADD COLUMN node TEXT NOT NULL DEFAULT 'local';

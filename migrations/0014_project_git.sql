-- A project cloned from a git repository: where from (the URL as given,
-- never with a credential in it), the ref asked for (NULL: the remote's
-- HEAD), the commit checked out, and the directory in the volume.
ALTER TABLE projects ADD COLUMN git_url TEXT;
ALTER TABLE projects ADD COLUMN git_ref TEXT;
ALTER TABLE projects ADD COLUMN git_commit TEXT;
ALTER TABLE projects ADD COLUMN git_dir TEXT;

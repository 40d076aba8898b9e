//! Project records. A deleted project keeps its row (with `deleted_at`) while
//! its volume is retained, so cleanup can tell a retained volume from an
//! orphan; live queries never see it.

use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{get_opt_uuid, get_uuid, Result, Store};
use crate::domain::git::GitOrigin;
use crate::domain::{Millis, Project};

pub(super) fn project_from_row(row: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: get_uuid(row, "id")?,
        owner_id: get_uuid(row, "owner_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        workspace_type: row.try_get("workspace_type")?,
        workspace_id: get_opt_uuid(row, "workspace_id")?,
        volume_name: row.try_get("volume_name")?,
        node: row.try_get("node")?,
        git: match row.try_get::<Option<String>, _>("git_url")? {
            Some(url) => Some(GitOrigin {
                url,
                reference: row.try_get("git_ref")?,
                commit: row
                    .try_get::<Option<String>, _>("git_commit")?
                    .unwrap_or_default(),
                dir: row
                    .try_get::<Option<String>, _>("git_dir")?
                    .unwrap_or_default(),
            }),
            None => None,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    pub async fn insert_project(&self, p: &Project) -> Result<()> {
        sqlx::query(
            "INSERT INTO projects (id, owner_id, name, description, workspace_type, workspace_id, \
             volume_name, node, created_at, updated_at, git_url, git_ref, git_commit, git_dir) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(p.id.to_string())
        .bind(p.owner_id.to_string())
        .bind(&p.name)
        .bind(&p.description)
        .bind(p.workspace_type.clone())
        .bind(p.workspace_id.map(|u| u.to_string()))
        .bind(&p.volume_name)
        .bind(&p.node)
        .bind(p.created_at)
        .bind(p.updated_at)
        .bind(p.git.as_ref().map(|g| g.url.clone()))
        .bind(p.git.as_ref().and_then(|g| g.reference.clone()))
        .bind(p.git.as_ref().map(|g| g.commit.clone()))
        .bind(p.git.as_ref().map(|g| g.dir.clone()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A live (not deleted) project.
    pub async fn project(&self, id: Uuid) -> Result<Option<Project>> {
        let row = sqlx::query("SELECT * FROM projects WHERE id = $1 AND deleted_at IS NULL")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(project_from_row).transpose()
    }

    /// Live projects, newest first; all owners when `owner` is `None`.
    pub async fn projects(&self, owner: Option<Uuid>) -> Result<Vec<Project>> {
        let rows =
            match owner {
                Some(o) => {
                    sqlx::query(
                        "SELECT * FROM projects WHERE deleted_at IS NULL AND owner_id = $1 \
                 ORDER BY created_at DESC, id",
                    )
                    .bind(o.to_string())
                    .fetch_all(&self.pool)
                    .await?
                }
                None => sqlx::query(
                    "SELECT * FROM projects WHERE deleted_at IS NULL ORDER BY created_at DESC, id",
                )
                .fetch_all(&self.pool)
                .await?,
            };
        rows.iter().map(project_from_row).collect()
    }

    /// Sets the workspace a project is assigned to (and its type, if the
    /// project had none).
    pub async fn assign_project(
        &self,
        project_id: Uuid,
        workspace_id: Uuid,
        workspace_type: &str,
        now: Millis,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE projects SET workspace_id = $1, \
             workspace_type = COALESCE(workspace_type, $2), updated_at = $3 WHERE id = $4",
        )
        .bind(workspace_id.to_string())
        .bind(workspace_type)
        .bind(now)
        .bind(project_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets an assignment to a workspace that is going away.
    pub async fn unassign_projects_of(&self, workspace_id: Uuid) -> Result<()> {
        sqlx::query("UPDATE projects SET workspace_id = NULL WHERE workspace_id = $1")
            .bind(workspace_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a project deleted; its volume is retained until cleanup.
    pub async fn soft_delete_project(&self, id: Uuid, now: Millis) -> Result<()> {
        sqlx::query("UPDATE projects SET deleted_at = $1, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes a project's row for good (its volume is gone too).
    pub async fn purge_project(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

//! Pages of the lists that grow (workspaces, projects, backups, events,
//! users): one keyset query per page, ordered as the whole list is, with
//! the total counted by the same filter (an index serves both).

use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{Result, Store};
use crate::domain::backups::Backup;
use crate::domain::page::{Cursor, Page, PageRequest};
use crate::domain::{Project, User, Workspace, WorkspaceEvent};

/// A value bound to a placeholder.
enum Arg {
    Text(String),
    Int(i64),
}

/// Where a list's rows are and how it is ordered: `rank DESC` (when it has
/// one), then `at` (newest first, or oldest first with `ascending`), then
/// `id`.
struct Order {
    table: &'static str,
    rank: Option<&'static str>,
    at: &'static str,
    ascending: bool,
}

impl Store {
    /// The page of `order.table`'s rows matching `filter` (placeholders `$1`…`$k`
    /// for `args`), in `order`, after the page's cursor, each read with
    /// `from_row`; `key` is an item's place in `order`. The total matching
    /// `filter` is counted when the list is cut.
    async fn page_of<T>(
        &self,
        filter: &str,
        args: Vec<Arg>,
        order: Order,
        page: &PageRequest,
        from_row: fn(&AnyRow) -> Result<T>,
        key: impl Fn(&T) -> Cursor,
    ) -> Result<Page<T>> {
        let table = order.table;
        let mut sql = format!("SELECT * FROM {table} WHERE {filter}");
        let mut all: Vec<Arg> = Vec::new();
        let k = args.len();
        let cmp = if order.ascending { ">" } else { "<" };
        if let Some(c) = &page.after {
            let (a, i) = (k + 1, k + 2);
            let at = order.at;
            let within = format!("({at} {cmp} ${a} OR ({at} = ${a} AND id > ${i}))");
            match order.rank {
                Some(rank) => {
                    let r = k + 3;
                    sql.push_str(&format!(
                        " AND ({rank} < ${r} OR ({rank} = ${r} AND {within}))"
                    ));
                }
                None => sql.push_str(&format!(" AND {within}")),
            }
            all.push(Arg::Int(c.at));
            all.push(Arg::Text(c.id.clone()));
            if order.rank.is_some() {
                all.push(Arg::Int(c.rank));
            }
        }
        let dir = if order.ascending { "" } else { " DESC" };
        sql.push_str(" ORDER BY ");
        if let Some(rank) = order.rank {
            sql.push_str(&format!("{rank} DESC, "));
        }
        sql.push_str(&format!("{}{dir}, id", order.at));
        if let Some(n) = page.fetch() {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let total = match page.limit {
            Some(_) => {
                let count = format!("SELECT COUNT(*) AS n FROM {table} WHERE {filter}");
                let mut q = sqlx::query(&count);
                for a in &args {
                    q = match a {
                        Arg::Text(s) => q.bind(s.clone()),
                        Arg::Int(i) => q.bind(*i),
                    };
                }
                let n: i64 = q.fetch_one(&self.pool).await?.try_get("n")?;
                Some(n.max(0) as u64)
            }
            None => None,
        };
        let mut q = sqlx::query(&sql);
        for a in args.iter().chain(all.iter()) {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        let rows = q.fetch_all(&self.pool).await?;
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(page.cut(items, total, key))
    }

    /// A page of workspaces, default first, then newest (as
    /// [`Store::workspaces`]); all owners when `owner` is `None`.
    pub async fn workspaces_page(
        &self,
        owner: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<Workspace>> {
        let (filter, args) = match owner {
            Some(o) => ("owner_id = $1", vec![Arg::Text(o.to_string())]),
            None => ("1 = 1", vec![]),
        };
        let order = Order {
            table: "workspaces",
            rank: Some("is_default"),
            at: "created_at",
            ascending: false,
        };
        self.page_of(
            filter,
            args,
            order,
            page,
            super::workspaces::workspace_from_row,
            |w| Cursor {
                rank: i64::from(w.is_default),
                at: w.created_at,
                id: w.id.to_string(),
            },
        )
        .await
    }

    /// A page of live projects, newest first; all owners when `owner` is
    /// `None`.
    pub async fn projects_page(
        &self,
        owner: Option<Uuid>,
        page: &PageRequest,
    ) -> Result<Page<Project>> {
        let (filter, args) = match owner {
            Some(o) => (
                "deleted_at IS NULL AND owner_id = $1",
                vec![Arg::Text(o.to_string())],
            ),
            None => ("deleted_at IS NULL", vec![]),
        };
        let order = Order {
            table: "projects",
            rank: None,
            at: "created_at",
            ascending: false,
        };
        self.page_of(
            filter,
            args,
            order,
            page,
            super::projects::project_from_row,
            |p| Cursor {
                rank: 0,
                at: p.created_at,
                id: p.id.to_string(),
            },
        )
        .await
    }

    /// A page of a project's backups, newest first.
    pub async fn backups_page(&self, project_id: Uuid, page: &PageRequest) -> Result<Page<Backup>> {
        let order = Order {
            table: "backups",
            rank: None,
            at: "created_at",
            ascending: false,
        };
        self.page_of(
            "project_id = $1",
            vec![Arg::Text(project_id.to_string())],
            order,
            page,
            super::backups::backup_from_row,
            |b| Cursor {
                rank: 0,
                at: b.created_at,
                id: b.id.to_string(),
            },
        )
        .await
    }

    /// A page of a workspace's events, newest first.
    pub async fn events_page(
        &self,
        workspace_id: Uuid,
        page: &PageRequest,
    ) -> Result<Page<WorkspaceEvent>> {
        let order = Order {
            table: "workspace_events",
            rank: None,
            at: "at",
            ascending: false,
        };
        self.page_of(
            "workspace_id = $1",
            vec![Arg::Text(workspace_id.to_string())],
            order,
            page,
            super::events::event_from_row,
            |e| Cursor {
                rank: 0,
                at: e.at,
                id: e.id.to_string(),
            },
        )
        .await
    }

    /// A page of one job's runs, newest first.
    /// A page of the audit log, newest first, filtered.
    pub async fn audit_page(
        &self,
        f: &crate::domain::audit::AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<crate::domain::audit::AuditRecord>> {
        let mut filter = vec!["1 = 1".to_string()];
        let mut args = Vec::new();
        let mut add = |cond: &str, arg: Arg| {
            args.push(arg);
            filter.push(cond.replace("$?", &format!("${}", args.len())));
        };
        if let Some(a) = f.actor {
            add("actor_id = $?", Arg::Text(a.to_string()));
        }
        if let Some(r) = &f.resource {
            add("resource_id = $?", Arg::Text(r.clone()));
        }
        if let Some(a) = &f.action {
            add("action = $?", Arg::Text(a.clone()));
        }
        if let Some(t) = f.since {
            add("at >= $?", Arg::Int(t));
        }
        if let Some(t) = f.until {
            add("at < $?", Arg::Int(t));
        }
        let order = Order {
            table: "audit_log",
            rank: None,
            at: "at",
            ascending: false,
        };
        self.page_of(
            &filter.join(" AND "),
            args,
            order,
            page,
            super::audit::audit_from_row,
            |r| Cursor {
                rank: 0,
                at: r.at,
                id: r.id.to_string(),
            },
        )
        .await
    }

    pub async fn job_runs_page(
        &self,
        name: &str,
        page: &PageRequest,
    ) -> Result<Page<crate::domain::jobs::JobRun>> {
        let order = Order {
            table: "job_runs",
            rank: None,
            at: "started_at",
            ascending: false,
        };
        self.page_of(
            "name = $1",
            vec![Arg::Text(name.to_string())],
            order,
            page,
            super::jobs::job_run_from_row,
            |r| Cursor {
                rank: 0,
                at: r.started_at,
                id: r.id.to_string(),
            },
        )
        .await
    }

    /// A page of users, oldest first.
    pub async fn users_page(&self, page: &PageRequest) -> Result<Page<User>> {
        let order = Order {
            table: "users",
            rank: None,
            at: "created_at",
            ascending: true,
        };
        self.page_of(
            "1 = 1",
            vec![],
            order,
            page,
            super::users::user_from_row,
            |u| Cursor {
                rank: 0,
                at: u.created_at,
                id: u.id.to_string(),
            },
        )
        .await
    }
}

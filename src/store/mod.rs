//! The store: users, tokens, projects and workspaces in SQL, through sqlx's
//! `Any` driver. SQLite (a file in the data directory) by default; the SQL is
//! kept portable (`$n` placeholders, TEXT ids, BIGINT instants and flags) so a
//! `postgres://` URL works without touching a caller.
//!
//! Only this module writes SQL. Callers get domain types back.

mod apps;
mod audit;
mod backups;
mod coord;
mod events;
mod git;
mod jobs;
mod nodes;
mod operations;
mod pages;
mod projects;
mod quotas;
mod replicas;
mod settings;
mod users;
mod workspaces;

pub use apps::AppCode;
pub use backups::{VolumeOp, VolumeOpKind};
pub use coord::{Coordinator, HeldLock, LockKey, Notice};
pub use nodes::NodeRow;
pub use operations::RecoveryDue;
pub use quotas::Storage;
pub use replicas::Whose;
pub use users::TokenUse;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Connection, Row};
use uuid::Uuid;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (e.g. an email already registered).
    #[error("{0}")]
    Conflict(String),
    /// A stored row could not be read back as a domain value.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The embedded migrations could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The replicas' coordination (locks, notices) failed.
    #[error("coordination failed: {0}")]
    Coordination(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A cheap-to-clone handle on the database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// Locks and notices shared with the other replicas on this database.
    coord: Coordinator,
}

impl Store {
    /// Connects and applies the embedded migrations (creating the database
    /// on first start).
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; a few connections serve
            // concurrent readers under WAL.
            .max_connections(if is_sqlite { 8 } else { 16 })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA busy_timeout = 5000",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA synchronous = NORMAL",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store {
            pool,
            coord: Coordinator::new(url),
        })
    }

    /// Locks and notices shared by every process on this database.
    pub fn coordinator(&self) -> &Coordinator {
        &self.coord
    }

    /// Whether several processes may serve from this database
    /// (PostgreSQL): SQLite is one `berth serve`'s alone.
    pub fn is_shared(&self) -> bool {
        self.coord.is_shared()
    }

    /// Tells every replica on this database (this one too) of a change.
    pub async fn notify(&self, notice: Notice) {
        self.coord.notify(&self.pool, notice).await
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        conn.ping().await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
fn conflict_on_unique(e: sqlx::Error, message: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(message.to_string())
        }
        _ => StoreError::Database(e),
    }
}

fn get_uuid(row: &AnyRow, col: &str) -> Result<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn get_opt_uuid(row: &AnyRow, col: &str) -> Result<Option<Uuid>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))))
        .transpose()
}

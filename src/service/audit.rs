//! The audit log, as a service of its own: records what people did
//! (`domain::audit`), to the store and, with `audit.log`, also as one JSON
//! line each to a file or standard output for a log shipper; lists it for
//! admins; removes what is older than `audit.retention_days` (the
//! `audit-retention` job). Recording never fails the action it records:
//! a record that cannot be written is logged and counted
//! (`berth_audit_failures_total`).

use std::io::Write;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::{Result, ServiceError};
use crate::config::AuditConfig;
use crate::domain::audit::{retention_cutoff, AuditFilter, AuditRecord, ResourceKind};
use crate::domain::page::{Page, PageRequest};
use crate::domain::{now_millis, User};
use crate::store::Store;

/// Where the JSON lines go.
enum Sink {
    Stdout,
    File(std::fs::File),
}

/// The audit log: cheap to clone.
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: AuditConfig,
    /// The replica that records (none for the CLI).
    replica: Option<Uuid>,
    sink: Option<Mutex<Sink>>,
}

impl Audit {
    /// The audit log on `store`; the JSON-lines file (`audit.log`) is
    /// opened for appending now, and a failure to open it said once.
    pub fn new(store: Store, config: AuditConfig, replica: Option<Uuid>) -> Audit {
        let sink = match config.log.trim() {
            "" => None,
            "-" => Some(Mutex::new(Sink::Stdout)),
            path => match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => Some(Mutex::new(Sink::File(f))),
                Err(e) => {
                    tracing::error!(file = path, error = %e, "cannot open audit.log: audit records go to the database only");
                    None
                }
            },
        };
        Audit {
            inner: Arc::new(Inner {
                store,
                config,
                replica,
                sink,
            }),
        }
    }

    /// Records one action (its id, time and replica are filled in here
    /// when left empty).
    pub async fn record(&self, mut rec: AuditRecord) {
        if rec.id.is_nil() {
            rec.id = Uuid::new_v4();
        }
        if rec.at == 0 {
            rec.at = now_millis();
        }
        if rec.replica.is_none() {
            rec.replica = self.inner.replica;
        }
        if let Err(e) = self.inner.store.insert_audit(&rec).await {
            metrics::counter!("berth_audit_failures_total").increment(1);
            tracing::error!(action = %rec.action, error = %e, "an audit record could not be written");
        }
        if let Some(sink) = &self.inner.sink {
            let line = json_line(&rec);
            let mut sink = sink.lock().expect("audit sink poisoned");
            let written = match &mut *sink {
                Sink::Stdout => writeln!(std::io::stdout(), "{line}"),
                Sink::File(f) => writeln!(f, "{line}"),
            };
            if let Err(e) = written {
                metrics::counter!("berth_audit_failures_total").increment(1);
                tracing::warn!(error = %e, "writing an audit line failed");
            }
        }
    }

    /// A page of the log, newest first (admins).
    pub async fn page(
        &self,
        user: &User,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>> {
        if !user.is_admin() {
            return Err(ServiceError::Forbidden(
                "only an admin may read the audit log".into(),
            ));
        }
        Ok(self.inner.store.audit_page(filter, page).await?)
    }

    /// Removes the records older than `audit.retention_days` (with
    /// `dry_run`, counts them); returns how many, and the cutoff.
    pub async fn prune(&self, dry_run: bool) -> Result<(u64, crate::domain::Millis)> {
        let cutoff = retention_cutoff(now_millis(), self.inner.config.retention_days);
        let n = if dry_run {
            self.inner.store.count_audit_before(cutoff).await?
        } else {
            self.inner.store.delete_audit_before(cutoff).await?
        };
        Ok((n, cutoff))
    }

    /// `audit.retention_days`.
    pub fn retention_days(&self) -> u64 {
        self.inner.config.retention_days
    }

    /// The owner of the resource a record names (for an admin acting on
    /// someone else's): a workspace, project, backup or user.
    pub async fn owner_of(&self, kind: ResourceKind, id: &str) -> Option<Uuid> {
        let id = Uuid::parse_str(id).ok()?;
        let store = &self.inner.store;
        match kind {
            ResourceKind::Workspace => store.workspace(id).await.ok()?.map(|w| w.owner_id),
            ResourceKind::Project => store.project(id).await.ok()?.map(|p| p.owner_id),
            ResourceKind::Backup => store.backup(id).await.ok()?.map(|b| b.owner_id),
            ResourceKind::User => Some(id),
            ResourceKind::Type
            | ResourceKind::Token
            | ResourceKind::Node
            | ResourceKind::Job
            | ResourceKind::GitCredential => None,
        }
    }
}

/// A record as one JSON line (a log format of its own: field names stay
/// as they are here whatever the API does).
fn json_line(r: &AuditRecord) -> String {
    serde_json::json!({
        "id": r.id,
        "at": crate::domain::rfc3339(r.at),
        "actor": {
            "id": r.actor_id,
            "email": r.actor_email,
            "credential": r.credential.as_str(),
            "credentialId": r.credential_id,
            "credentialName": r.credential_name,
            "client": r.client,
            "userAgent": r.user_agent,
        },
        "action": r.action,
        "method": r.method,
        "route": r.route,
        "resource": {"type": r.resource_type, "id": r.resource_id, "owner": r.owner_id},
        "details": r.details,
        "outcome": r.outcome.as_str(),
        "status": r.status,
        "code": r.code,
        "replica": r.replica,
    })
    .to_string()
}

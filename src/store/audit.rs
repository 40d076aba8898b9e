//! The audit log's records: written once, read by pages (newest first,
//! filtered by actor, resource, action and time), removed by age.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{get_opt_uuid, get_uuid, Result, Store, StoreError};
use crate::domain::audit::{AuditOutcome, AuditRecord, Credential};
use crate::domain::Millis;

pub(super) fn audit_from_row(r: &AnyRow) -> Result<AuditRecord> {
    let credential: String = r.try_get("credential")?;
    let outcome: String = r.try_get("outcome")?;
    let details: String = r.try_get("details")?;
    let status: Option<i64> = r.try_get("status")?;
    Ok(AuditRecord {
        id: get_uuid(r, "id")?,
        at: r.try_get("at")?,
        actor_id: get_opt_uuid(r, "actor_id")?,
        actor_email: r.try_get("actor_email")?,
        credential: Credential::parse(&credential)
            .ok_or_else(|| StoreError::Corrupt(format!("credential {credential:?}")))?,
        credential_id: get_opt_uuid(r, "credential_id")?,
        credential_name: r.try_get("credential_name")?,
        client: r.try_get("client")?,
        user_agent: r.try_get("user_agent")?,
        action: r.try_get("action")?,
        method: r.try_get("method")?,
        route: r.try_get("route")?,
        resource_type: r.try_get("resource_type")?,
        resource_id: r.try_get("resource_id")?,
        owner_id: get_opt_uuid(r, "owner_id")?,
        details: serde_json::from_str(&details)
            .map_err(|e| StoreError::Corrupt(format!("audit details: {e}")))?,
        outcome: AuditOutcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("audit outcome {outcome:?}")))?,
        status: status.and_then(|s| u16::try_from(s).ok()),
        code: r.try_get("code")?,
        replica: get_opt_uuid(r, "replica")?,
    })
}

impl Store {
    pub async fn insert_audit(&self, a: &AuditRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor_id, actor_email, credential, credential_id, \
             credential_name, client, user_agent, action, method, route, resource_type, \
             resource_id, owner_id, details, outcome, status, code, replica) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        )
        .bind(a.id.to_string())
        .bind(a.at)
        .bind(a.actor_id.map(|u| u.to_string()))
        .bind(a.actor_email.clone())
        .bind(a.credential.as_str())
        .bind(a.credential_id.map(|u| u.to_string()))
        .bind(a.credential_name.clone())
        .bind(a.client.clone())
        .bind(a.user_agent.clone())
        .bind(&a.action)
        .bind(&a.method)
        .bind(&a.route)
        .bind(a.resource_type.clone())
        .bind(a.resource_id.clone())
        .bind(a.owner_id.map(|u| u.to_string()))
        .bind(serde_json::to_string(&a.details).expect("details serialise"))
        .bind(a.outcome.as_str())
        .bind(a.status.map(i64::from))
        .bind(a.code.clone())
        .bind(a.replica.map(|u| u.to_string()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the records older than `before`; returns how many.
    pub async fn delete_audit_before(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// How many records are older than `before` (a dry run of the
    /// retention).
    pub async fn count_audit_before(&self, before: Millis) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE at < $1")
            .bind(before)
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n.max(0) as u64)
    }
}

//! Nodes: the Docker engines Berth places workspaces on, as an admin added
//! them (the row `local` is made by the migration). A TLS node's client key
//! is kept here; it leaves the store only as a [`Secret`].

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{conflict_on_unique, Result, Store, StoreError};
use crate::domain::nodes::NodeTls;
use crate::domain::nodes::{Endpoint, Schedule, LOCAL};
use crate::domain::Millis;
use crate::secret::Secret;

/// One node as stored.
#[derive(Debug, Clone)]
pub struct NodeRow {
    pub name: String,
    pub endpoint: Endpoint,
    pub address: String,
    pub labels: BTreeMap<String, String>,
    pub tls: Option<NodeTls>,
    pub schedule: Schedule,
    pub created_at: Millis,
}

fn node_from_row(row: &AnyRow) -> Result<NodeRow> {
    let name: String = row.try_get("name")?;
    let endpoint: String = row.try_get("endpoint")?;
    let endpoint = if endpoint == "default" && name == LOCAL {
        Endpoint::Default
    } else {
        Endpoint::parse(&endpoint).map_err(StoreError::Corrupt)?
    };
    let labels: String = row.try_get("labels")?;
    let labels = serde_json::from_str(&labels)
        .map_err(|e| StoreError::Corrupt(format!("node {name} labels: {e}")))?;
    let ca: Option<String> = row.try_get("tls_ca")?;
    let cert: Option<String> = row.try_get("tls_cert")?;
    let key: Option<String> = row.try_get("tls_key")?;
    let tls = match (ca, cert, key) {
        (Some(ca), Some(cert), Some(key)) => Some(NodeTls {
            ca,
            cert,
            key: Secret::new(key),
        }),
        (None, None, None) => None,
        _ => {
            return Err(StoreError::Corrupt(format!(
                "node {name}: part of its TLS material is missing"
            )))
        }
    };
    let cordoned: i64 = row.try_get("cordoned")?;
    let draining: i64 = row.try_get("draining")?;
    Ok(NodeRow {
        name,
        endpoint,
        address: row.try_get("address")?,
        labels,
        tls,
        schedule: Schedule {
            cordoned: cordoned != 0,
            draining: draining != 0,
        },
        created_at: row.try_get("created_at")?,
    })
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).expect("a string map serialises")
}

impl Store {
    /// Every node, `local` first, then by name.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>> {
        let rows = sqlx::query(
            "SELECT * FROM nodes ORDER BY CASE WHEN name = 'local' THEN 0 ELSE 1 END, name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(node_from_row).collect()
    }

    pub async fn node(&self, name: &str) -> Result<Option<NodeRow>> {
        let row = sqlx::query("SELECT * FROM nodes WHERE name = $1")
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(node_from_row).transpose()
    }

    pub async fn insert_node(&self, n: &NodeRow) -> Result<()> {
        let (ca, cert, key) = match &n.tls {
            Some(t) => (
                Some(t.ca.clone()),
                Some(t.cert.clone()),
                Some(t.key.expose().to_string()),
            ),
            None => (None, None, None),
        };
        sqlx::query(
            "INSERT INTO nodes (name, endpoint, address, labels, tls_ca, tls_cert, tls_key, \
             cordoned, draining, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(n.name.clone())
        .bind(n.endpoint.url())
        .bind(n.address.clone())
        .bind(labels_text(&n.labels))
        .bind(ca)
        .bind(cert)
        .bind(key)
        .bind(i64::from(n.schedule.cordoned))
        .bind(i64::from(n.schedule.draining))
        .bind(n.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on_unique(e, &format!("a node named {} exists", n.name)))?;
        Ok(())
    }

    /// Writes what an admin may change on a node: its address, labels and
    /// schedule (never its endpoint or certificates: remove and add again).
    pub async fn update_node(&self, n: &NodeRow) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE nodes SET address = $2, labels = $3, cordoned = $4, draining = $5 \
             WHERE name = $1",
        )
        .bind(n.name.clone())
        .bind(n.address.clone())
        .bind(labels_text(&n.labels))
        .bind(i64::from(n.schedule.cordoned))
        .bind(i64::from(n.schedule.draining))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a node that holds no project (live or awaiting removal), in
    /// one statement so a project placed meanwhile keeps it. `Ok(false)`:
    /// it holds some, or does not exist.
    pub async fn delete_node_if_empty(&self, name: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM nodes WHERE name = $1 AND name <> 'local' \
             AND NOT EXISTS (SELECT 1 FROM projects WHERE node = $1)",
        )
        .bind(name.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many projects (live or awaiting volume removal) live on each
    /// node.
    pub async fn projects_per_node(&self) -> Result<BTreeMap<String, i64>> {
        let rows = sqlx::query("SELECT node, COUNT(*) AS n FROM projects GROUP BY node")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>("node")?, r.try_get::<i64, _>("n")?)))
            .collect()
    }
}

//! `GET /metrics`: Prometheus text, behind the metrics token (generated at
//! first start unless `metrics.token` is set; open only with
//! `metrics.public`), since it names every workspace and project.

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::domain::WorkspaceStatus;
use crate::http::error::{ApiError, ApiResult, ErrorCode};
use crate::service::Berth;

pub async fn render(State(berth): State<Berth>, headers: HeaderMap) -> ApiResult<Response> {
    if !berth.core().metrics_public() {
        let want = berth.core().metrics_token();
        let got = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Compared in constant time: the token is a secret.
        let same = got.len() == want.len()
            && got
                .bytes()
                .zip(want.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Err(ApiError::new(ErrorCode::Unauthorized, "metrics need 'Authorization: Bearer <token>': metrics.token, or the one in <data_dir>/metrics-token",
            ));
        }
    }
    // Fleet gauges from the store: every type × status, zeros included, so
    // a series that drops to zero says so instead of vanishing.
    let all = berth
        .core()
        .store()
        .workspaces(None)
        .await
        .map_err(crate::service::ServiceError::from)?;
    for t in berth.core().config().types.keys() {
        for st in WorkspaceStatus::ALL {
            let n = all
                .iter()
                .filter(|w| &w.type_name == t && w.status == st)
                .count();
            metrics::gauge!("berth_workspaces", "type" => t.clone(), "status" => st.as_str())
                .set(n as f64);
        }
    }
    // Per node: whether it answers, what it has, what is placed on it.
    for r in berth.placement().node_reports().await? {
        let n = r.node.row.name.clone();
        let up = r.node.beat.reachable() == Some(true);
        metrics::gauge!("berth_node_up", "node" => n.clone()).set(if up { 1.0 } else { 0.0 });
        metrics::gauge!("berth_node_schedulable", "node" => n.clone()).set(
            if r.node.state == crate::domain::nodes::NodeState::Ready {
                1.0
            } else {
                0.0
            },
        );
        if let Some(i) = &r.node.info {
            metrics::gauge!("berth_node_cpus", "node" => n.clone()).set(f64::from(i.cpus));
            metrics::gauge!("berth_node_memory_bytes", "node" => n.clone())
                .set(i.memory_bytes as f64);
        }
        metrics::gauge!("berth_node_allocated_cpus", "node" => n.clone()).set(r.allocated.cpus);
        metrics::gauge!("berth_node_allocated_memory_bytes", "node" => n.clone())
            .set((r.allocated.memory_mb * 1024 * 1024) as f64);
        metrics::gauge!("berth_node_running_workspaces", "node" => n).set(r.running as f64);
    }
    // The replicas on this database, as every replica sees them: how many
    // in each state, and per replica whether it beats.
    let replicas = berth.core().replicas().list().await?;
    for st in crate::domain::replicas::ReplicaState::ALL {
        let n = replicas.iter().filter(|(_, s)| *s == st).count();
        metrics::gauge!("berth_replicas", "state" => st.as_str()).set(n as f64);
    }
    for (r, st) in &replicas {
        let up = *st == crate::domain::replicas::ReplicaState::Live;
        metrics::gauge!("berth_replica_up", "replica" => r.name.clone(), "id" => r.id.to_string())
            .set(if up { 1.0 } else { 0.0 });
    }
    // Each user's usage against their limits (a limit only where there is
    // one).
    for q in berth.quotas().all_quotas().await? {
        let (u, l) = (&q.usage, &q.limits);
        let user = q.user.email.clone();
        let series: [(&str, f64, Option<f64>); 5] = [
            (
                "workspaces",
                u.workspaces as f64,
                l.workspaces.0.map(|v| v as f64),
            ),
            ("running", u.running as f64, l.running.0.map(|v| v as f64)),
            ("cpus", u.cpus, l.cpus.0),
            (
                "memory_bytes",
                (u.memory_mb * 1024 * 1024) as f64,
                l.memory_mb.0.map(|v| (v * 1024 * 1024) as f64),
            ),
            (
                "storage_bytes",
                u.storage_bytes() as f64,
                l.storage_mb.0.map(|v| (v * 1024 * 1024) as f64),
            ),
        ];
        for (resource, used, limit) in series {
            metrics::gauge!("berth_quota_used", "user" => user.clone(), "resource" => resource)
                .set(used);
            if let Some(limit) = limit {
                metrics::gauge!("berth_quota_limit", "user" => user.clone(), "resource" => resource)
                    .set(limit);
            }
        }
    }
    let mut resp = crate::metrics::handle().render().into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}

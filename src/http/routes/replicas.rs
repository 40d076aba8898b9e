//! The replicas: `GET /api/replicas`, the Berth processes sharing this
//! database (admins).

use axum::extract::State;
use axum::response::Response;

use crate::http::error::ApiResult;
use crate::http::extract::Caller;
use crate::http::wire::{ok, ReplicaDto};
use crate::service::Replicas;

/// `GET /api/replicas`: the Berth processes on this database.
pub async fn list(State(replicas): State<Replicas>, _caller: Caller) -> ApiResult<Response> {
    let me = replicas.id();
    let list = replicas.list().await?;
    Ok(ok(list
        .iter()
        .map(|(r, s)| ReplicaDto::new(r, *s, me))
        .collect::<Vec<_>>()))
}

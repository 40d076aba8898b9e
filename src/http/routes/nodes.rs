//! `/api/nodes`: the Docker engines workspaces run on, for admins — list,
//! add (with TLS client certificates), change address, labels or cordon,
//! remove an empty one.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::domain::nodes::NodeTls;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, Caller, TextPath};
use crate::http::wire::DrainDto;
use crate::http::wire::{
    ok, ok_with, AddNodeRequest, NodeDto, NodeRemovedDto, PlacementDto, PlacementRequestDto,
    UpdateNodeRequest,
};
use crate::secret::Secret;
use crate::service::{Berth, NewNode, NodeChange};

pub async fn list(State(berth): State<Berth>, _caller: Caller) -> ApiResult<Response> {
    let reports = berth.placement().node_reports().await?;
    Ok(ok(reports.iter().map(NodeDto::from).collect::<Vec<_>>()))
}

pub async fn get(
    State(berth): State<Berth>,
    _caller: Caller,
    TextPath(name): TextPath,
) -> ApiResult<Response> {
    Ok(ok(NodeDto::from(
        &berth.placement().node_report(&name).await?,
    )))
}

pub async fn add(
    State(berth): State<Berth>,
    _caller: Caller,
    ApiJson(req): ApiJson<AddNodeRequest>,
) -> ApiResult<Response> {
    let name = req.name.clone();
    berth
        .core()
        .nodes()
        .add(NewNode {
            name: req.name,
            endpoint: req.endpoint,
            address: req.address.unwrap_or_default(),
            labels: req.labels,
            tls: req.tls.map(|t| NodeTls {
                ca: t.ca,
                cert: t.cert,
                key: Secret::new(t.key),
            }),
        })
        .await?;
    let dto = NodeDto::from(&berth.placement().node_report(&name).await?);
    let message = match (dto.state.as_str(), &dto.error) {
        ("unreachable", Some(e)) => {
            format!("node {name} added, but it does not answer yet: {e}")
        }
        _ => format!("node {name} added"),
    };
    Ok((StatusCode::CREATED, ok_with(dto, message)).into_response())
}

pub async fn update(
    State(berth): State<Berth>,
    _caller: Caller,
    TextPath(name): TextPath,
    ApiJson(req): ApiJson<UpdateNodeRequest>,
) -> ApiResult<Response> {
    berth
        .core()
        .nodes()
        .change(
            &name,
            NodeChange {
                address: req.address,
                labels: req.labels,
                cordoned: req.cordoned,
                draining: None,
            },
        )
        .await?;
    Ok(ok(NodeDto::from(
        &berth.placement().node_report(&name).await?,
    )))
}

pub async fn remove(
    State(berth): State<Berth>,
    _caller: Caller,
    TextPath(name): TextPath,
) -> ApiResult<Response> {
    berth.core().nodes().remove(&name).await?;
    Ok(ok_with(
        NodeRemovedDto {
            name: name.clone(),
            removed: true,
        },
        format!("node {name} removed"),
    ))
}

pub async fn plan(
    State(berth): State<Berth>,
    caller: Caller,
    ApiJson(req): ApiJson<PlacementRequestDto>,
) -> ApiResult<Response> {
    let plan = berth
        .placement()
        .plan_placement(&caller.user, &req.type_name, req.project_id, req.labels)
        .await?;
    let message = format!(
        "a workspace of type {} would go to {}",
        req.type_name, plan.node
    );
    Ok(ok_with(PlacementDto::from(&plan), message))
}

/// `POST /api/nodes/:node/drain`: begins; the answer is the progress so far.
pub async fn drain(
    State(volumes): State<crate::service::Volumes>,
    caller: Caller,
    TextPath(name): TextPath,
) -> ApiResult<Response> {
    let d = volumes.start_drain(&caller.user, &name).await?;
    Ok(crate::http::wire::ok_with(
        DrainDto::from(&d),
        format!(
            "draining {name}: {} project(s) to move, one at a time; GET /api/nodes/{name}/drain for progress",
            d.total
        ),
    ))
}

/// `GET /api/nodes/:node/drain`.
pub async fn drain_progress(
    State(volumes): State<crate::service::Volumes>,
    caller: Caller,
    TextPath(name): TextPath,
) -> ApiResult<Response> {
    Ok(ok(DrainDto::from(
        &volumes.drain(&caller.user, &name).await?,
    )))
}

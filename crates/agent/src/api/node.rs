//! Node-wide resources: health, configuration, IPAM, identities, maps.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    Json,
};
use serde::Deserialize;

use super::{ApiResult, AppState};
use crate::error::AgentError;

pub async fn healthz(State(s): State<AppState>) -> Json<api::models::StatusResponse> {
    Json(s.daemon.status())
}

pub async fn config(State(s): State<AppState>) -> Json<api::models::DaemonConfiguration> {
    Json(s.daemon.daemon_config())
}

#[derive(Deserialize)]
pub struct IpamQuery {
    owner: Option<String>,
}

pub async fn ipam_allocate(
    State(s): State<AppState>,
    Query(q): Query<IpamQuery>,
) -> Result<(StatusCode, Json<api::models::IpamResponse>), AgentError> {
    let owner = q.owner.unwrap_or_default();
    Ok((StatusCode::CREATED, Json(s.daemon.ipam_allocate(&owner)?)))
}

pub async fn ipam_release(
    State(s): State<AppState>,
    Path(ip): Path<String>,
) -> Result<StatusCode, AgentError> {
    s.daemon.ipam_release(&ip)?;
    Ok(StatusCode::OK)
}

pub async fn identity_list(State(s): State<AppState>) -> Json<Vec<api::models::Identity>> {
    Json(s.daemon.identity_list())
}

pub async fn identity_get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<api::models::Identity> {
    Ok(Json(s.daemon.identity_get(&id)?))
}

pub async fn map_get(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<api::models::BpfMap> {
    Ok(Json(s.daemon.map_dump(&name)?))
}

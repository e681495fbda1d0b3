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
    /// `ipv4` or `ipv6`; absent: every enabled family (Cilium's `family`).
    family: Option<String>,
}

pub async fn ipam_allocate(
    State(s): State<AppState>,
    Query(q): Query<IpamQuery>,
) -> Result<(StatusCode, Json<api::models::IpamResponse>), AgentError> {
    let owner = q.owner.unwrap_or_default();
    let family = match q.family.as_deref() {
        None => crate::daemon::Family::Both,
        Some("ipv4") => crate::daemon::Family::V4,
        Some("ipv6") => crate::daemon::Family::V6,
        Some(other) => {
            return Err(AgentError::BadRequest(format!(
                "family: {other:?} (expected ipv4 or ipv6)"
            )))
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(s.daemon.ipam_allocate(&owner, family)?),
    ))
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

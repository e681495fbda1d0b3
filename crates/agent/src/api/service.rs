//! `/v1/service`: services balanced in the datapath.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    Json,
};

use super::{parse_json, ApiResult, AppState};
use crate::error::AgentError;

pub async fn upsert(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<api::models::Service>), AgentError> {
    let spec = parse_json(&body, "service spec")?;
    let (service, created) = s.daemon.service_upsert(&id, spec)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(service)))
}

pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<api::models::Service> {
    Ok(Json(s.daemon.service_get(&id)?))
}

pub async fn list(State(s): State<AppState>) -> Json<Vec<api::models::Service>> {
    Json(s.daemon.service_list())
}

pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, AgentError> {
    s.daemon.service_delete(&id)?;
    Ok(StatusCode::OK)
}

pub async fn lb(State(s): State<AppState>) -> ApiResult<Vec<api::models::LbEntry>> {
    Ok(Json(s.daemon.lb_dump()?))
}

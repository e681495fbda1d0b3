//! `/v1/endpoint`: endpoints as container plugins create them.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    Json,
};

use super::{parse_json, ApiResult, AppState};
use crate::error::AgentError;

pub async fn create(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<api::models::Endpoint>), AgentError> {
    let req = parse_json(&body, "endpoint change request")?;
    Ok((
        StatusCode::CREATED,
        Json(s.daemon.endpoint_create(&id, req).await?),
    ))
}

pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<api::models::Endpoint> {
    Ok(Json(s.daemon.endpoint_get(&id)?))
}

pub async fn list(State(s): State<AppState>) -> Json<Vec<api::models::Endpoint>> {
    Json(s.daemon.endpoint_list())
}

pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, AgentError> {
    s.daemon.endpoint_delete(&id).await?;
    Ok(StatusCode::OK)
}

pub async fn patch_labels(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, AgentError> {
    let spec = parse_json(&body, "label configuration")?;
    s.daemon.endpoint_set_labels(&id, spec).await?;
    Ok(StatusCode::OK)
}

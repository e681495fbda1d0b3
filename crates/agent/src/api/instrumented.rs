//! Handlers that regenerate endpoints, wrapped to count regenerations
//! (and their time) and failed policy imports for the metrics. Counting
//! happens here, around the daemon's calls, so the daemon stays unaware of
//! metrics: a policy change regenerates every endpoint, an endpoint
//! create or relabel regenerates that endpoint.

use std::sync::{atomic::Ordering, Arc};
use std::time::Instant;

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    Extension, Json,
};

use super::{endpoint, policy, ApiResult, AppState};
use crate::error::AgentError;
use crate::metrics::Registry;

fn record<T>(
    registry: &Registry,
    endpoints: usize,
    started: Instant,
    result: &Result<T, AgentError>,
) {
    match result {
        Ok(_) => registry.regenerated(endpoints as u64, true, started.elapsed()),
        // Rejected before anything was regenerated.
        Err(AgentError::BadRequest(_) | AgentError::NotFound(_) | AgentError::Conflict(_)) => {}
        Err(AgentError::Internal(_)) => {
            registry.regenerated(endpoints as u64, false, started.elapsed())
        }
    }
}

pub async fn policy_import(
    State(s): State<AppState>,
    Extension(registry): Extension<Arc<Registry>>,
    query: Query<policy::ImportQuery>,
    body: Bytes,
) -> ApiResult<api::models::Policy> {
    let endpoints = s.daemon.endpoint_list().len();
    let started = Instant::now();
    let result = policy::import(State(s), query, body).await;
    if result.is_err() {
        registry
            .policy_import_errors
            .fetch_add(1, Ordering::Relaxed);
    }
    record(&registry, endpoints, started, &result);
    result
}

pub async fn policy_delete(
    State(s): State<AppState>,
    Extension(registry): Extension<Arc<Registry>>,
    body: Bytes,
) -> ApiResult<api::models::Policy> {
    let endpoints = s.daemon.endpoint_list().len();
    let started = Instant::now();
    let result = policy::delete(State(s), body).await;
    record(&registry, endpoints, started, &result);
    result
}

pub async fn endpoint_create(
    state: State<AppState>,
    Extension(registry): Extension<Arc<Registry>>,
    id: Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<api::models::Endpoint>), AgentError> {
    let started = Instant::now();
    let result = endpoint::create(state, id, body).await;
    record(&registry, 1, started, &result);
    result
}

pub async fn endpoint_patch_labels(
    state: State<AppState>,
    Extension(registry): Extension<Arc<Registry>>,
    id: Path<String>,
    body: Bytes,
) -> Result<StatusCode, AgentError> {
    let started = Instant::now();
    let result = endpoint::patch_labels(state, id, body).await;
    record(&registry, 1, started, &result);
    result
}

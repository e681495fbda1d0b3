//! `GET /v1/metrics`: every exported metric as a list of samples.

use std::sync::Arc;

use api::models::MetricSample;
use axum::{extract::State, Extension, Json};

use super::AppState;
use crate::error::AgentError;
use crate::metrics::{collect::collect, exposition::to_samples, Registry};

pub async fn list(
    State(s): State<AppState>,
    Extension(registry): Extension<Arc<Registry>>,
) -> Result<Json<Vec<MetricSample>>, AgentError> {
    let daemon = s.daemon.clone();
    tokio::task::spawn_blocking(move || Json(to_samples(&collect(&daemon, &registry))))
        .await
        .map_err(|e| AgentError::Internal(format!("collecting metrics: {e}")))
}

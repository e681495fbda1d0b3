//! The REST API on the unix socket: Cilium's `/v1` paths, thin handlers that
//! decode the request, call the daemon and encode its answer.

mod cluster;
mod endpoint;
mod error_body;
mod fqdn;
mod instrumented;
mod metrics;
mod monitor_filter;
pub(crate) mod monitor_stream;
mod node;
mod policy;
mod service;
mod status;
mod trace;

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::DefaultBodyLimit,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, put},
    Json, Router,
};
use serde::de::DeserializeOwned;

use crate::{daemon::Daemon, error::AgentError, monitor::MonitorHub};

#[derive(Clone)]
pub struct AppState {
    pub daemon: Arc<Daemon>,
    pub monitor: MonitorHub,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/healthz", get(status::healthz))
        .route("/v1/config", get(node::config))
        .route("/v1/ipam", axum::routing::post(node::ipam_allocate))
        .route("/v1/ipam/{ip}", axum::routing::delete(node::ipam_release))
        .route("/v1/identity", get(node::identity_list))
        .route("/v1/identity/{id}", get(node::identity_get))
        .route("/v1/map/{name}", get(node::map_get))
        .route("/v1/fqdn/cache", get(fqdn::list).delete(fqdn::clean))
        .route("/v1/endpoint", get(endpoint::list))
        .route(
            "/v1/endpoint/{id}",
            put(instrumented::endpoint_create)
                .get(endpoint::get)
                .delete(endpoint::delete),
        )
        .route(
            "/v1/endpoint/{id}/labels",
            axum::routing::patch(instrumented::endpoint_patch_labels),
        )
        .route(
            "/v1/policy",
            put(instrumented::policy_import)
                .get(policy::get)
                .delete(instrumented::policy_delete),
        )
        .route(
            "/v1/policy/resolve",
            get(trace::resolve).post(trace::resolve),
        )
        .route("/v1/metrics", get(metrics::list))
        .route("/v1/monitor", get(monitor_stream::stream))
        .route("/v1/service", get(service::list))
        .route(
            "/v1/service/{id}",
            put(service::upsert)
                .get(service::get)
                .delete(service::delete),
        )
        .route("/v1/lb", get(service::lb))
        .route("/v1/cluster/nodes", get(cluster::nodes))
        .route(
            "/v1/kvstore/{*key}",
            get(cluster::get).put(cluster::set).delete(cluster::delete),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(api::models::MAX_REQUEST_BODY_BYTES))
        .layer(axum::middleware::from_fn(error_body::guard))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> AgentError {
    AgentError::NotFound(format!("no API path {}", uri.path()))
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        error_body::error_response(status, self.to_string())
    }
}

/// Decodes a JSON body, naming what is wrong and where.
fn parse_json<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, AgentError> {
    serde_json::from_slice(body).map_err(|e| AgentError::BadRequest(format!("invalid {what}: {e}")))
}

type ApiResult<T> = Result<Json<T>, AgentError>;

//! The health API on its unix socket (Cilium's `/v1beta` paths): the last
//! round's results, a round on demand, and whether the checker is up.

use std::path::Path;
use std::sync::Arc;

use ::health::model::LoadResponse;
use ::health::{time, HealthResponse, HealthStatusResponse};
use axum::{
    extract::State,
    routing::{get, put},
    Json, Router,
};
use tokio::net::UnixListener;

use super::checker::Checker;

pub fn router(checker: Arc<Checker>) -> Router {
    Router::new()
        .route("/v1beta/status", get(status))
        .route("/v1beta/status/probe", put(probe))
        .route("/v1beta/healthz", get(healthz))
        .with_state(checker)
}

/// Binds `socket` (replacing a stale one) and serves the API on it.
pub fn serve(socket: &Path, checker: Arc<Checker>) -> std::io::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(checker)).await {
            eprintln!("level=error msg=\"health API stopped: {e}\"");
        }
    });
    Ok(())
}

async fn status(State(c): State<Arc<Checker>>) -> Json<HealthStatusResponse> {
    Json(c.last())
}

async fn probe(State(c): State<Arc<Checker>>) -> Json<HealthStatusResponse> {
    Json(c.probe_now().await)
}

async fn healthz(State(c): State<Arc<Checker>>) -> Json<HealthResponse> {
    let cilium = serde_json::to_value(c.daemon().status()).unwrap_or_default();
    Json(HealthResponse {
        uptime: time::format_duration(c.uptime()),
        system_load: load_average(),
        cilium,
    })
}

/// `/proc/loadavg`'s three averages; empty when unreadable.
fn load_average() -> LoadResponse {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut fields = text.split_whitespace().map(str::to_string);
    LoadResponse {
        last1min: fields.next().unwrap_or_default(),
        last5min: fields.next().unwrap_or_default(),
        last15min: fields.next().unwrap_or_default(),
    }
}

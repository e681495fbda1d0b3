//! Serving the plugin protocol on a unix socket (where dockerd discovers
//! plugins: `/run/docker/plugins/NAME.sock`). Handlers block (agent calls,
//! `ip`, namespaces), so each call runs on tokio's blocking pool.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::UnixListener;

use crate::driver::Driver;
use crate::protocol::CONTENT_TYPE;

/// Binds `socket` (replacing a stale file nobody listens on) and serves
/// until `shutdown` completes; the socket file is removed afterwards.
pub async fn serve(
    driver: Driver,
    socket: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = bind(socket)?;
    let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
        let driver = driver.clone();
        async move { call(driver, uri, body).await }
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = std::fs::remove_file(socket);
    served.map_err(|e| anyhow::anyhow!("serving {}: {e}", socket.display()))
}

fn bind(socket: &Path) -> anyhow::Result<UnixListener> {
    use anyhow::Context;
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        anyhow::bail!(
            "something already listens on {}: another cilium-docker is running",
            socket.display()
        );
    }
    let _ = std::fs::remove_file(socket);
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    UnixListener::bind(socket).with_context(|| format!("cannot listen on {}", socket.display()))
}

async fn call(driver: Driver, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let verbose = driver.verbose;
    let for_log = path.clone();
    let request_text = verbose.then(|| String::from_utf8_lossy(&body).into_owned());
    let outcome = tokio::task::spawn_blocking(move || driver.handle(&path, &body)).await;
    let (status, value) = match outcome {
        Ok(Ok(v)) => (StatusCode::OK, v),
        Ok(Err(e)) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.body(),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"Err": format!("cilium-docker: handler failed: {e}")}),
        ),
    };
    if let Some(req) = request_text {
        eprintln!(
            "cilium-docker: {for_log} {req} -> {} {value}",
            status.as_u16()
        );
    } else if status != StatusCode::OK {
        eprintln!("cilium-docker: {for_log} -> {} {value}", status.as_u16());
    }
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        value.to_string(),
    )
        .into_response()
}

/// Cilium's plugin socket.
pub fn default_socket() -> PathBuf {
    PathBuf::from("/run/docker/plugins/cilium.sock")
}

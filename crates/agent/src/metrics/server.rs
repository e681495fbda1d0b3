//! The Prometheus endpoint: `GET /metrics` on `--prometheus-serve-addr`.

use std::sync::Arc;

use anyhow::Result;
use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use tokio::net::TcpListener;

use super::{collect::collect, exposition::render, Registry};
use crate::daemon::Daemon;

/// `--prometheus-serve-addr` (see [`crate::listen`]); binds first, so a taken port fails the agent's start-up.
pub async fn bind(text: &str) -> Result<TcpListener> {
    crate::listen::bind(FLAG, text).await
}

const FLAG: &str = "--prometheus-serve-addr";

pub async fn serve(
    listener: TcpListener,
    daemon: Arc<Daemon>,
    registry: Arc<Registry>,
) -> Result<()> {
    if let Ok(addr) = listener.local_addr() {
        eprintln!("cilium-agent: Prometheus metrics on http://{addr}/metrics");
    }
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state((daemon, registry));
    axum::serve(listener, app).await?;
    Ok(())
}

async fn scrape(
    State((daemon, registry)): State<(Arc<Daemon>, Arc<Registry>)>,
) -> impl IntoResponse {
    let text = tokio::task::spawn_blocking(move || render(&collect(&daemon, &registry)))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_addr(text: &str) -> Result<std::net::SocketAddr> {
        crate::listen::parse(FLAG, text)
    }

    #[test]
    fn addresses_like_cilium() {
        assert_eq!(
            parse_addr(":9962").unwrap(),
            "0.0.0.0:9962".parse().unwrap()
        );
        assert_eq!(parse_addr("127.0.0.1:1234").unwrap().port(), 1234);
        assert!(parse_addr("9962")
            .unwrap_err()
            .to_string()
            .contains("--prometheus-serve-addr"));
    }
}

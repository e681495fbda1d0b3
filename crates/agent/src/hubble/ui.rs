//! Hubble's web UI on `--hubble-ui-address`: a page (static files compiled
//! into the agent, no CDN, no build step) that polls `GET /api/flows` once
//! a second and draws the service map and the flow table from it.
//!
//! `/api/flows` reads the agent's flow ring and selects with the hubble
//! crate's flow filters, built from the query as `cilium flows` builds
//! them from its flags (`query`); the shaping into rows and a map is pure
//! (`view`).

mod query;
mod view;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hubble::FlowRing;
use serde::Serialize;
use tokio::net::TcpListener;

use query::FlowQuery;
use view::{Row, ServiceMap};

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const STYLE_CSS: &str = include_str!("ui/style.css");

pub async fn serve(listener: TcpListener, ring: Arc<FlowRing>) -> anyhow::Result<()> {
    axum::serve(listener, router(ring)).await?;
    Ok(())
}

fn router(ring: Arc<FlowRing>) -> Router {
    Router::new()
        .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route(
            "/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/style.css",
            get(|| asset("text/css; charset=utf-8", STYLE_CSS)),
        )
        .route("/api/flows", get(flows))
        .with_state(ring)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The answer to one poll: the newest matching rows (newest first) and the
/// map of every matching flow in the ring.
#[derive(Serialize)]
struct FlowsPage {
    rows: Vec<Row>,
    map: ServiceMap,
    /// Matching flows in the ring (the rows may be fewer).
    matched: usize,
    /// Flows stored since the agent started.
    seen: u64,
}

async fn flows(
    State(ring): State<Arc<FlowRing>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let shaped = FlowQuery::from_pairs(&pairs).and_then(|q| Ok((q.filters()?, q)));
    let (filters, q) = match shaped {
        Ok(x) => x,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let snap = ring.snapshot(false);
    let since = q.since_ms;
    let selected: Vec<(u64, &hubble::proto::flow::Flow)> = snap
        .flows
        .iter()
        .enumerate()
        .map(|(i, f)| (snap.first_seq + i as u64, f.as_ref()))
        .filter(|(_, f)| {
            since.is_none_or(|s| {
                f.time
                    .is_some_and(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000 >= s)
            })
        })
        .filter(|(_, f)| filters.matches(f))
        .collect();
    let page = FlowsPage {
        rows: selected
            .iter()
            .rev()
            .take(q.limit)
            .map(|(id, f)| view::row(*id, f))
            .collect(),
        map: view::service_map(selected.iter().map(|(_, f)| *f)),
        matched: selected.len(),
        seen: snap.first_seq + snap.flows.len() as u64,
    };
    Json(page).into_response()
}

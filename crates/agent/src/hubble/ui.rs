//! Hubble's web UI on `--hubble-ui-address`: a page (static files compiled
//! into the agent, no CDN, no build step) that polls `GET /api/flows` once
//! a second and draws the service map and the flow table from it. Each poll
//! fetches only the rows newer than those the page has (`from`, the flow
//! number after the last one it got) and the map, a summary.
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

/// The answer to one poll: the newest matching rows the page does not
/// have yet (numbered `from` or later, newest first) and the map of every
/// matching flow in the ring. The page keeps the rows it got before and
/// drops those numbered below `first`.
#[derive(Serialize)]
struct FlowsPage {
    rows: Vec<Row>,
    map: ServiceMap,
    /// Matching flows in the ring (the rows may be fewer).
    matched: usize,
    /// Flows stored since the agent started: the next poll's `from`.
    seen: u64,
    /// The oldest matching flow's number (`seen` when none matches): a
    /// row numbered below it left the ring or the time window.
    first: u64,
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
    let seen = snap.first_seq + snap.flows.len() as u64;
    let page = FlowsPage {
        rows: selected
            .iter()
            .rev()
            .take_while(|(id, _)| *id >= q.from)
            .take(q.limit)
            .map(|(id, f)| view::row(*id, f))
            .collect(),
        map: view::service_map(selected.iter().map(|(_, f)| *f)),
        matched: selected.len(),
        seen,
        first: selected.first().map_or(seen, |(id, _)| *id),
    };
    Json(page).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubble::proto::flow::Flow;

    async fn page(ring: &Arc<FlowRing>, query: &[(&str, &str)]) -> serde_json::Value {
        let pairs = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let response = flows(State(ring.clone()), Query(pairs)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    fn ids(page: &serde_json::Value) -> Vec<u64> {
        page["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_poll_gets_only_the_rows_from_its_cursor_on() {
        let ring = Arc::new(FlowRing::new(4));
        for _ in 0..3 {
            ring.push(Flow::default());
        }
        let all = page(&ring, &[]).await;
        assert_eq!(ids(&all), [2, 1, 0]);
        assert_eq!(
            (all["seen"].as_u64(), all["first"].as_u64()),
            (Some(3), Some(0))
        );

        for _ in 0..3 {
            ring.push(Flow::default());
        }
        // Flows 0 and 1 left the ring of 4; the page asks from 3 on.
        let next = page(&ring, &[("from", "3")]).await;
        assert_eq!(ids(&next), [5, 4, 3]);
        assert_eq!(
            (next["seen"].as_u64(), next["first"].as_u64()),
            (Some(6), Some(2))
        );
        assert_eq!(
            next["matched"].as_u64(),
            Some(4),
            "the map still covers the ring"
        );

        let none = page(&ring, &[("from", "6")]).await;
        assert!(ids(&none).is_empty());
    }
}

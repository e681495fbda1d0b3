//! Hubble's web UI on `--hubble-ui-address`: a page (static files compiled
//! into the agent, no CDN, no build step) that polls `GET /api/flows` once
//! a second and draws the service map and the flow table from it. Each poll
//! fetches only the rows newer than those the page has (`from`, the flow
//! number after the last one it got) and the map, a summary the agent keeps
//! up to date per query (`live_map`), so a poll reads only the flows stored
//! since the last one, however big the ring.
//!
//! `/api/flows` reads the agent's flow ring and selects with the hubble
//! crate's flow filters, built from the query as `cilium flows` builds
//! them from its flags (`query`); the shaping into rows and a map is pure
//! (`view`).

mod live_map;
mod query;
mod view;

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hubble::FlowRing;
use serde::Serialize;
use tokio::net::TcpListener;

use live_map::{flow_ms, LiveMaps};
use query::FlowQuery;
use view::{Row, ServiceMap};

#[derive(Clone)]
struct UiState {
    ring: Arc<FlowRing>,
    maps: Arc<Mutex<LiveMaps>>,
}

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
        .with_state(UiState {
            ring,
            maps: Arc::default(),
        })
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
    State(state): State<UiState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let shaped = FlowQuery::from_pairs(&pairs).and_then(|q| Ok((q.filters()?, q)));
    let (filters, q) = match shaped {
        Ok(x) => x,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let since = q.since_ms;
    let matches = |f: &hubble::proto::flow::Flow| {
        since.is_none_or(|s| flow_ms(f).is_some_and(|t| t >= s)) && filters.matches(f)
    };
    let live = state.maps.lock().unwrap_or_else(|p| p.into_inner()).poll(
        &q.map_key(),
        &state.ring,
        since,
        matches,
    );
    // Rows: only the flows from the page's cursor on.
    let tail = state.ring.tail(q.from);
    let seen = tail.first_seq + tail.flows.len() as u64;
    let page = FlowsPage {
        rows: tail
            .flows
            .iter()
            .enumerate()
            .rev()
            .map(|(i, f)| (tail.first_seq + i as u64, f.as_ref()))
            .filter(|(_, f)| matches(f))
            .take(q.limit)
            .map(|(id, f)| view::row(id, f))
            .collect(),
        map: live.map,
        matched: live.matched,
        seen,
        first: live.first.unwrap_or(seen),
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
        let state = UiState {
            ring: ring.clone(),
            maps: Arc::default(),
        };
        let response = flows(State(state), Query(pairs)).await;
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

//! `/v1/monitor`: datapath events as newline-delimited JSON, until the
//! client goes away.

use axum::{
    body::{Body, Bytes},
    extract::{RawQuery, State},
    response::Response,
};
use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::error::AgentError;

const KINDS: [&str; 4] = ["drop", "trace", "policy-verdict", "debug"];

pub async fn stream(
    State(s): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, AgentError> {
    let mut kinds = Vec::new();
    for pair in query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("type", kind)) if KINDS.contains(&kind) => kinds.push(kind.to_string()),
            Some(("type", kind)) => {
                return Err(AgentError::BadRequest(format!(
                "type: unknown event type {kind:?} (expected drop, trace, policy-verdict or debug)"
            )))
            }
            _ => {}
        }
    }
    let rx = s.monitor.subscribe();
    let closed = Box::pin(s.monitor.closed());
    let events = stream::unfold(
        (rx, kinds, closed),
        |(mut rx, kinds, mut closed)| async move {
            loop {
                let received = tokio::select! {
                    r = rx.recv() => r,
                    _ = &mut closed => return None,
                };
                match received {
                    Ok(ev) if kinds.is_empty() || kinds.contains(&ev.kind) => {
                        let mut line = serde_json::to_vec(&*ev).expect("events serialize");
                        line.push(b'\n');
                        let next = (rx, kinds, closed);
                        return Some((Ok::<_, std::io::Error>(Bytes::from(line)), next));
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(events))
        .expect("static response parts"))
}

//! `GET|POST /v1/policy/resolve`: policy trace between two label sets,
//! identities or endpoints (body: a TraceSelector).

use api::models::{PolicyTraceResult, TraceSelector};
use axum::{body::Bytes, extract::State, Json};

use super::{parse_json, ApiResult, AppState};

pub async fn resolve(State(s): State<AppState>, body: Bytes) -> ApiResult<PolicyTraceResult> {
    let selector: TraceSelector = parse_json(&body, "trace selector")?;
    Ok(Json(s.daemon.policy_trace(&selector)?))
}

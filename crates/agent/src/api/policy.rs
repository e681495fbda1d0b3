//! `/v1/policy`: the rule repository.

use axum::{
    body::Bytes,
    extract::{Query, State},
    Json,
};
use serde::Deserialize;

use super::{parse_json, ApiResult, AppState};
use crate::error::AgentError;

#[derive(Deserialize)]
pub struct ImportQuery {
    #[serde(default)]
    replace: bool,
}

pub async fn import(
    State(s): State<AppState>,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> ApiResult<api::models::Policy> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| AgentError::BadRequest("policy: body is not UTF-8 text".into()))?;
    Ok(Json(s.daemon.policy_import(text, q.replace)?))
}

pub async fn get(State(s): State<AppState>) -> Json<api::models::Policy> {
    Json(s.daemon.policy_get())
}

/// The body lists label strings; an empty body or list deletes every rule.
pub async fn delete(State(s): State<AppState>, body: Bytes) -> ApiResult<api::models::Policy> {
    let labels: Vec<String> = if body.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        parse_json(&body, "label list")?
    };
    Ok(Json(s.daemon.policy_delete(&labels)?))
}

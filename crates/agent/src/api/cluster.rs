//! `/v1/cluster/nodes` and `/v1/kvstore/{key}`: the cluster as this node
//! sees it, and the kvstore behind it (what `cilium kvstore` reads).

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    Json,
};
use serde::Deserialize;

use super::{ApiResult, AppState};
use crate::error::AgentError;

pub async fn nodes(State(s): State<AppState>) -> Json<api::models::ClusterNodeStatus> {
    Json(s.daemon.cluster_nodes())
}

#[derive(Deserialize, Default)]
pub struct KeyQuery {
    #[serde(default)]
    recursive: bool,
}

fn unavailable(e: kvstore::KvError) -> AgentError {
    AgentError::Internal(format!("kvstore: {e}"))
}

pub async fn get(
    State(s): State<AppState>,
    Path(key): Path<String>,
    Query(q): Query<KeyQuery>,
) -> ApiResult<Vec<api::models::KvPair>> {
    let kv = &s.daemon.cluster().kv;
    let pairs: Vec<api::models::KvPair> = if q.recursive {
        kv.list_prefix(&key)
            .await
            .map_err(unavailable)?
            .kvs
            .into_iter()
            .map(|k| api::models::KvPair {
                value: k.value_str().into_owned(),
                key: k.key,
            })
            .collect()
    } else {
        kv.get(&key)
            .await
            .map_err(unavailable)?
            .map(|k| api::models::KvPair {
                value: k.value_str().into_owned(),
                key: k.key,
            })
            .into_iter()
            .collect()
    };
    if pairs.is_empty() {
        return Err(AgentError::NotFound(format!(
            "no key {key:?} in the kvstore"
        )));
    }
    Ok(Json(pairs))
}

pub async fn set(
    State(s): State<AppState>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<StatusCode, AgentError> {
    // Cilium's kvstore has no empty values: an empty body is a client that
    // forgot the value, not a value.
    if body.is_empty() {
        return Err(AgentError::BadRequest(format!(
            "no value for {key:?}: the body is the key's value and cannot be empty"
        )));
    }
    s.daemon
        .cluster()
        .kv
        .set(&key, body.to_vec(), None)
        .await
        .map_err(unavailable)?;
    Ok(StatusCode::OK)
}

pub async fn delete(
    State(s): State<AppState>,
    Path(key): Path<String>,
    Query(q): Query<KeyQuery>,
) -> Result<StatusCode, AgentError> {
    let kv = &s.daemon.cluster().kv;
    if q.recursive {
        kv.delete_prefix(&key).await.map_err(unavailable)?;
    } else {
        kv.delete(&key).await.map_err(unavailable)?;
    }
    Ok(StatusCode::OK)
}

//! `/v1/fqdn/cache`: what endpoints learned through the DNS proxy
//! (Cilium's `GET`/`DELETE /fqdn/cache`, `?matchpattern=`).

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use axum::{
    extract::{Query, State},
    http::StatusCode,
    Json,
};
use serde::Deserialize;

use super::{ApiResult, AppState};
use crate::error::AgentError;
use crate::fqdn::Lookup;

#[derive(Deserialize)]
pub struct CacheQuery {
    matchpattern: Option<String>,
}

pub async fn list(
    State(s): State<AppState>,
    Query(q): Query<CacheQuery>,
) -> ApiResult<Vec<api::models::DnsLookup>> {
    let matcher = match q.matchpattern.as_deref() {
        Some(p) => Some(pattern(p)?),
        None => None,
    };
    let lookups = s
        .daemon
        .fqdn_lookups()
        .into_iter()
        .filter(|l| matcher.as_ref().is_none_or(|m| m.matches(&l.name)));
    Ok(Json(models(lookups)))
}

pub async fn clean(
    State(s): State<AppState>,
    Query(q): Query<CacheQuery>,
) -> Result<StatusCode, AgentError> {
    s.daemon.fqdn_clean(q.matchpattern.as_deref())?;
    Ok(StatusCode::OK)
}

fn pattern(text: &str) -> Result<policy::fqdn::FqdnMatcher, AgentError> {
    let selector = policy::fqdn::FqdnSelector::pattern(text);
    selector
        .validate()
        .map_err(|e| AgentError::BadRequest(format!("matchpattern: {}", e.message)))?;
    Ok(selector.matcher())
}

/// One row per endpoint, name and lookup (IPs learned together).
fn models(lookups: impl Iterator<Item = Lookup>) -> Vec<api::models::DnsLookup> {
    let mut rows: BTreeMap<(u16, String, u64, u64), Vec<String>> = BTreeMap::new();
    for l in lookups {
        rows.entry((l.endpoint, l.name, l.learned.looked_up, l.learned.expires))
            .or_default()
            .push(l.ip.to_string());
    }
    let time = |secs: u64| ::health::time::rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
    rows.into_iter()
        .map(
            |((endpoint, fqdn, looked_up, expires), ips)| api::models::DnsLookup {
                fqdn,
                ips,
                ttl: expires.saturating_sub(looked_up) as u32,
                lookup_time: time(looked_up),
                expiration_time: time(expires),
                endpoint_id: endpoint.into(),
                source: "lookup".into(),
            },
        )
        .collect()
}

//! `GET /v1/healthz`: the daemon's status plus the health of what runs
//! around it — the datapath (bpffs, programs, maps and their fill levels),
//! the proxy, and the background controllers — with every failure spelled
//! out and reflected in the overall `cilium` state.

use std::path::Path;
use std::sync::Arc;

use api::models::{BpfMapStatus, ProxyStatus, Status, StatusResponse};
use axum::{extract::State, Extension, Json};
use datapath::maps;

use super::AppState;
use crate::daemon::Daemon;
use crate::metrics::{pressure, Registry};

pub async fn healthz(
    State(s): State<AppState>,
    Extension(registry): Extension<Arc<Registry>>,
    health: Option<Extension<Arc<crate::health::Checker>>>,
) -> Json<StatusResponse> {
    let Json(mut base) = super::node::healthz(State(s.clone())).await;
    base.kvstore = kvstore_status(&s.daemon).await;
    let daemon = s.daemon.clone();
    let full = tokio::task::spawn_blocking(move || complete(base, &daemon, &registry)).await;
    let mut full = full.unwrap_or_else(|e| StatusResponse {
        cilium: status(Status::FAILURE, format!("status task failed: {e}")),
        ..Default::default()
    });
    if let Some(Extension(health)) = health {
        full.cluster_health = health.summary();
    }
    Json(full)
}

/// The kvstore as this node sees it, with how many nodes it knows.
async fn kvstore_status(daemon: &Daemon) -> Status {
    let probe = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        daemon.cluster().kv.status(),
    );
    let nodes = daemon.cluster_nodes().nodes_added.len();
    match probe.await {
        Ok(Ok(msg)) => status(Status::OK, format!("{msg}; cluster: {nodes} node(s)")),
        Ok(Err(e)) => status(
            Status::FAILURE,
            format!("{e}; enforcing the last known state"),
        ),
        Err(_) => status(
            Status::FAILURE,
            "no answer within 2s; enforcing the last known state",
        ),
    }
}

fn status(state: &str, msg: impl Into<String>) -> Status {
    Status {
        state: state.into(),
        msg: msg.into(),
    }
}

/// Fills in what the daemon's own status leaves out, and derives the
/// overall state: Failure when the datapath or the events reader is
/// broken, Warning for full maps and failing controllers.
pub fn complete(mut st: StatusResponse, daemon: &Daemon, registry: &Registry) -> StatusResponse {
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    st.kubernetes = daemon.k8s().map(|k8s| {
        let report = k8s.status.report();
        if !report.ok {
            warnings.push(format!("kubernetes: {}", report.message));
        }
        api::models::K8sStatus {
            state: if report.ok {
                Status::OK
            } else {
                Status::WARNING
            }
            .into(),
            msg: report.message,
            k8s_api_versions: report.resources,
            policy_errors: report.policy_errors,
        }
    });
    let summary = daemon.summary();
    st.endpoint_states = summary.endpoint_states.clone();

    let bpffs_ok = Path::new(&summary.bpf_root).join(maps::LXC_MAP).exists();
    let maps = match registry.maps() {
        Some(maps) => Ok(maps),
        None => daemon
            .map_fill()
            .map(|fill| pressure::properties(&fill, daemon.bpf_root())),
    };
    st.datapath = if !bpffs_ok {
        failures.push(format!("bpffs: {} holds no pinned maps", summary.bpf_root));
        status(
            Status::FAILURE,
            format!("pinned maps missing under {}", summary.bpf_root),
        )
    } else if !summary.endpoints_missing_programs.is_empty() {
        let ids: Vec<String> = summary
            .endpoints_missing_programs
            .iter()
            .map(u16::to_string)
            .collect();
        let msg = format!("endpoints without attached programs: {}", ids.join(", "));
        failures.push(format!("datapath: {msg}"));
        status(Status::FAILURE, msg)
    } else if let Err(e) = &maps {
        failures.push(format!("datapath: {e}"));
        status(Status::FAILURE, format!("cannot read maps: {e}"))
    } else {
        status(
            Status::OK,
            format!(
                "{} endpoint programs attached{}",
                summary.endpoints_attached,
                if summary.overlay {
                    ", overlay attached"
                } else {
                    ""
                }
            ),
        )
    };
    st.bpf_maps = BpfMapStatus {
        maps: maps.unwrap_or_default(),
    };
    warnings.extend(
        st.bpf_maps
            .maps
            .iter()
            .filter(|m| !m.warning.is_empty())
            .map(|m| m.warning.clone()),
    );
    st.proxy = proxy_status(daemon);
    if st.proxy.state == Status::FAILURE {
        failures.push(format!("proxy: {}", st.proxy.msg));
    }
    st.controllers = registry.controllers();
    if !registry
        .events_reader_alive
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        failures.push(
            "monitor-events-reader: stopped; no drop or trace events reach monitor clients".into(),
        );
    }
    for c in st
        .controllers
        .iter()
        .filter(|c| c.status.consecutive_failure_count > 0)
    {
        warnings.push(format!(
            "controller {} failing: {}",
            c.name, c.status.last_failure_msg
        ));
    }
    warnings.dedup();
    st.cilium = if !failures.is_empty() {
        status(Status::FAILURE, failures.join("; "))
    } else if !warnings.is_empty() {
        status(Status::WARNING, warnings.join("; "))
    } else {
        st.cilium
    };
    st
}

/// The L7 proxy as `cilium status` shows it: disabled, idle (no L7 rule
/// needs it yet), or running with its redirects.
fn proxy_status(daemon: &crate::daemon::Daemon) -> ProxyStatus {
    if !daemon.config().enable_l7_proxy {
        return ProxyStatus {
            state: Status::DISABLED.into(),
            msg: "--enable-l7-proxy=false: L7 rules are not enforced".into(),
            total_redirects: 0,
        };
    }
    let health = daemon.proxy_health();
    let health = health.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (state, msg) = match (&health.error, health.connected) {
        (_, true) => (
            Status::OK,
            format!(
                "cilium-proxy pid {} with {} redirects",
                health.pid.map_or("?".into(), |p| p.to_string()),
                health.redirects
            ),
        ),
        (Some(e), false) => (Status::FAILURE, e.clone()),
        (None, false) => (Status::OK, "not started: no L7 rule needs it".into()),
    };
    ProxyStatus {
        state: state.into(),
        msg,
        total_redirects: health.redirects as u64,
    }
}

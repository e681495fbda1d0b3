//! Every metric family the agent exports, gathered at scrape time from the
//! datapath's counters, the daemon's state and the [`Registry`]. Names,
//! labels and units follow Cilium's.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use datapath::events::drop_reason_text;

use super::exposition::{Family, Kind};
use super::{pressure, Registry};
use crate::daemon::Daemon;

const DIRECTIONS: [&str; 2] = ["INGRESS", "EGRESS"];
const ENDPOINT_STATES: [&str; 4] = [
    "ready",
    "regenerating",
    "waiting-for-identity",
    "disconnected",
];

/// Direction label of a metrics-map key, Cilium's spelling.
fn direction(dir: u8) -> &'static str {
    if dir == 1 {
        "EGRESS"
    } else {
        "INGRESS"
    }
}

/// Gathers everything. Blocking (reads BPF maps): call off the async runtime.
pub fn collect(daemon: &Daemon, registry: &Registry) -> Vec<Family> {
    let mut families = datapath_families(daemon);
    let summary = daemon.summary();

    let mut states = Family::new(
        "cilium_endpoint_state",
        Kind::Gauge,
        "Count of all endpoints, tagged by different endpoint states",
    );
    for state in ENDPOINT_STATES {
        let n = summary.endpoint_states.get(state).copied().unwrap_or(0);
        states.push(&[("endpoint_state", state)], n as f64);
    }
    for (state, n) in summary
        .endpoint_states
        .iter()
        .filter(|(s, _)| !ENDPOINT_STATES.contains(&s.as_str()))
    {
        states.push(&[("endpoint_state", state)], *n as f64);
    }
    let mut identities = Family::new(
        "cilium_identity",
        Kind::Gauge,
        "Number of identities currently allocated",
    );
    for kind in ["reserved", "cluster_local", "node_local"] {
        let n = summary.identities_by_type.get(kind).copied().unwrap_or(0);
        identities.push(&[("type", kind)], n as f64);
    }
    let regen = registry.regeneration_time.snapshot();
    let mut regen_time = Family::new(
        "cilium_policy_regeneration_time_stats_seconds",
        Kind::Histogram,
        "Policy regeneration time stats labeled by the scope",
    );
    regen_time.push_histogram(&[("scope", "total")], &regen);
    let failing = registry
        .controllers()
        .iter()
        .filter(|c| c.status.consecutive_failure_count > 0)
        .count();

    families.extend([
        Family::new(
            "cilium_endpoint",
            Kind::Gauge,
            "Number of endpoints managed by this agent",
        )
        .with(&[], summary.endpoints as f64),
        Family::new(
            "cilium_endpoint_regenerations_total",
            Kind::Counter,
            "Count of all endpoint regenerations that have completed, tagged by outcome",
        )
        .with(
            &[("outcome", "success")],
            registry.regenerations_success.load(Ordering::Relaxed) as f64,
        )
        .with(
            &[("outcome", "fail")],
            registry.regenerations_failure.load(Ordering::Relaxed) as f64,
        ),
        states,
        Family::new(
            "cilium_policy",
            Kind::Gauge,
            "Number of policy rules currently imported",
        )
        .with(&[], summary.policy_rules as f64),
        Family::new(
            "cilium_policy_max_revision",
            Kind::Gauge,
            "Highest policy revision number in the agent",
        )
        .with(&[], summary.policy_revision as f64),
        Family::new(
            "cilium_policy_import_errors_total",
            Kind::Counter,
            "Number of times a policy import has failed",
        )
        .with(
            &[],
            registry.policy_import_errors.load(Ordering::Relaxed) as f64,
        ),
        identities,
        regen_time,
        Family::new(
            "cilium_controllers_failing",
            Kind::Gauge,
            "Number of failing controllers",
        )
        .with(&[], failing as f64),
        Family::new(
            "cilium_monitor_lost_events_total",
            Kind::Counter,
            "Monitor events not delivered to a client that fell behind",
        )
        .with(
            &[],
            registry.monitor_lost_events.load(Ordering::Relaxed) as f64,
        ),
    ]);
    families.push(pressure_family(daemon));
    families.push(map_ops_family());
    families.extend(super::l7::families(daemon));
    families.extend(fqdn_families(daemon));
    if daemon.config().enable_hubble {
        families.extend(super::hubble::families(&registry.hubble_flows.snapshot()));
    }
    families
}

/// Cilium's `cilium_fqdn_*`: the DNS cache per endpoint, the toFQDNs
/// selectors, and what expired.
fn fqdn_families(daemon: &Daemon) -> Vec<Family> {
    let (stats, selectors, deletions) = daemon.fqdn_stats();
    let per_endpoint = |name, help, value: fn(&crate::fqdn::Stats) -> usize| {
        let mut f = Family::new(name, Kind::Gauge, help);
        for (ep, s) in &stats {
            f.push(&[("endpoint", &ep.to_string())], value(s) as f64);
        }
        f
    };
    vec![
        per_endpoint(
            "cilium_fqdn_active_names",
            "Number of domains inside the DNS cache that have not expired (by TTL), per endpoint",
            |s| s.active_names,
        ),
        per_endpoint(
            "cilium_fqdn_active_ips",
            "Number of IPs inside the DNS cache associated with a domain that has not expired (by TTL), per endpoint",
            |s| s.active_ips,
        ),
        per_endpoint(
            "cilium_fqdn_alive_zombie_connections",
            "Number of IPs associated with domains that have expired (by TTL) yet still associated with an active connection (aka zombie), per endpoint",
            |s| s.zombies,
        ),
        Family::new(
            "cilium_fqdn_selectors",
            Kind::Gauge,
            "Number of registered ToFQDN selectors",
        )
        .with(&[], selectors as f64),
        Family::new(
            "cilium_fqdn_gc_deletions_total",
            Kind::Counter,
            "Number of FQDNs that have been cleaned on FQDN Garbage collector job",
        )
        .with(&[], deletions as f64),
    ]
}

/// The agent's own map operations (`datapath::maps::ops`). A pair that
/// happened shows both outcomes, so a first failure is a change of value.
fn map_ops_family() -> Family {
    let mut f = Family::new(
        "cilium_bpf_map_ops_total",
        Kind::Counter,
        "Total operations on map, tagged by map name",
    );
    for c in datapath::maps::ops::snapshot() {
        for (outcome, n) in [("success", c.success), ("fail", c.fail)] {
            f.push(
                &[
                    ("map_name", c.map.name()),
                    ("operation", c.op.name()),
                    ("outcome", outcome),
                ],
                n as f64,
            );
        }
    }
    f
}

/// Drops and forwards from `cilium_metrics`. Reasons are spelled out; codes
/// sharing a text are summed.
fn datapath_families(daemon: &Daemon) -> Vec<Family> {
    let mut drop_count = Family::new(
        "cilium_drop_count_total",
        Kind::Counter,
        "Total dropped packets, tagged by drop reason and ingress/egress direction",
    );
    let mut drop_bytes = Family::new(
        "cilium_drop_bytes_total",
        Kind::Counter,
        "Total dropped bytes, tagged by drop reason and ingress/egress direction",
    );
    let mut fwd_count = Family::new(
        "cilium_forward_count_total",
        Kind::Counter,
        "Total forwarded packets, tagged by ingress/egress direction",
    );
    let mut fwd_bytes = Family::new(
        "cilium_forward_bytes_total",
        Kind::Counter,
        "Total forwarded bytes, tagged by ingress/egress direction",
    );
    let totals = daemon.datapath_totals().unwrap_or_else(|e| {
        eprintln!("level=warning msg=\"metrics: reading cilium_metrics: {e}\"");
        Vec::new()
    });
    let mut drops: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    let mut forwards: BTreeMap<&str, (u64, u64)> =
        DIRECTIONS.iter().map(|d| (*d, (0, 0))).collect();
    for (key, value) in totals {
        let slot = if key.reason == 0 {
            forwards.entry(direction(key.dir)).or_default()
        } else {
            drops
                .entry((drop_reason_text(key.reason), direction(key.dir)))
                .or_default()
        };
        slot.0 += value.packets;
        slot.1 += value.bytes;
    }
    for ((reason, dir), (packets, bytes)) in drops {
        drop_count.push(&[("reason", reason), ("direction", dir)], packets as f64);
        drop_bytes.push(&[("reason", reason), ("direction", dir)], bytes as f64);
    }
    for (dir, (packets, bytes)) in forwards {
        fwd_count.push(&[("direction", dir)], packets as f64);
        fwd_bytes.push(&[("direction", dir)], bytes as f64);
    }
    vec![drop_count, drop_bytes, fwd_count, fwd_bytes]
}

fn pressure_family(daemon: &Daemon) -> Family {
    let mut f = Family::new(
        "cilium_bpf_map_pressure",
        Kind::Gauge,
        "Fill level of a BPF map (entries / max entries)",
    );
    match daemon.map_fill() {
        Ok(fill) => {
            for p in pressure::properties(&fill, daemon.bpf_root()) {
                f.push(&[("map_name", &p.name)], p.pressure);
            }
        }
        Err(e) => eprintln!("level=warning msg=\"metrics: reading map fill levels: {e}\""),
    }
    f
}

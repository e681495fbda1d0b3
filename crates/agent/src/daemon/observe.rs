//! Read-only views of the daemon for observability: identity labels and
//! local endpoints for the monitor, the datapath's counters and map fill
//! levels for metrics and status, and policy trace (`observe/trace.rs`).
//! Nothing here changes state; every method takes the lock briefly.

mod trace;

use std::{collections::BTreeMap, collections::HashMap, net::IpAddr, sync::Arc};

use datapath::maps::{self, MetricsKey, MetricsValue, PolicyMap};

use super::Daemon;
use crate::error::AgentError;

/// What the monitor needs to name the two sides of an event.
#[derive(Debug, Clone, Default)]
pub struct MonitorContext {
    /// Every identity the node knows, reserved and CIDR ones included.
    pub identity_labels: HashMap<u32, Arc<Vec<String>>>,
    /// Local endpoints by address, of either family.
    pub endpoint_by_ip: HashMap<IpAddr, u16>,
}

/// One BPF map's fill level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapFill {
    pub name: String,
    pub entries: u64,
}

/// Counts for status and metrics.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub endpoint_states: BTreeMap<String, u32>,
    pub endpoints: u32,
    pub policy_rules: u32,
    pub policy_revision: u64,
    /// Cilium's identity types: reserved, cluster_local, node_local.
    pub identities_by_type: BTreeMap<&'static str, u32>,
    /// Endpoints whose programs are pinned (attached) in bpffs.
    pub endpoints_attached: u32,
    /// Endpoints the agent knows whose programs are not attached.
    pub endpoints_missing_programs: Vec<u16>,
    /// The overlay device's program is attached.
    pub overlay: bool,
    pub bpf_root: String,
}

impl Daemon {
    pub fn monitor_context(&self) -> MonitorContext {
        let inner = self.lock();
        let mut identity_labels: HashMap<u32, Arc<Vec<String>>> =
            policy::reserved::reserved_identities()
                .into_iter()
                .map(|(id, labels)| (id, Arc::new(labels.to_strings())))
                .collect();
        identity_labels.extend(
            inner
                .all_identities()
                .into_iter()
                .map(|(id, labels)| (id, Arc::new(labels.to_strings()))),
        );
        MonitorContext {
            identity_labels,
            endpoint_by_ip: inner
                .endpoints
                .values()
                .flat_map(|ep| {
                    let v4 = ep.ipv4.map(IpAddr::V4);
                    let v6 = ep.ipv6.map(IpAddr::V6);
                    [v4, v6].into_iter().flatten().map(move |ip| (ip, ep.id))
                })
                .collect(),
        }
    }

    /// `cilium_metrics`, summed over CPUs.
    pub fn datapath_totals(&self) -> Result<Vec<(MetricsKey, MetricsValue)>, AgentError> {
        Ok(self.lock().maps.metrics.totals()?)
    }

    /// Entries in every map the agent can read: the shared maps and each
    /// endpoint's policy map. A map that cannot be read is an error naming it.
    pub fn map_fill(&self) -> Result<Vec<MapFill>, AgentError> {
        let inner = self.lock();
        let fill = |name: &str, entries: usize| MapFill {
            name: name.to_string(),
            entries: entries as u64,
        };
        let mut out = vec![
            fill(maps::LXC_MAP, inner.maps.lxc.entries()?.len()),
            fill(maps::IPCACHE_MAP, inner.maps.ipcache.entries()?.len()),
            fill(maps::CT_MAP, inner.maps.ct.entries()?.len()),
            fill(maps::METRICS_MAP, inner.maps.metrics.totals()?.len()),
        ];
        for id in inner.endpoints.keys() {
            let name = self
                .root
                .policy_map(*id)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(fill(
                &name,
                PolicyMap::open(&self.root, *id)?.entries()?.len(),
            ));
        }
        Ok(out)
    }

    pub fn summary(&self) -> Summary {
        let mut endpoint_states = BTreeMap::new();
        for ep in self.endpoint_list() {
            *endpoint_states.entry(ep.status.state).or_insert(0) += 1;
        }
        let mut identities_by_type = BTreeMap::new();
        for i in self.identity_list() {
            let kind = if i.id < identity::MIN_ALLOCATED {
                "reserved"
            } else if i.id >= identity::LOCAL_MIN {
                "node_local"
            } else {
                "cluster_local"
            };
            *identities_by_type.entry(kind).or_insert(0) += 1;
        }
        let pinned = datapath::endpoint::pinned_endpoints(&self.root);
        let inner = self.lock();
        let missing = inner
            .endpoints
            .keys()
            .filter(|id| !pinned.contains(id))
            .copied()
            .collect();
        Summary {
            endpoint_states,
            endpoints: inner.endpoints.len() as u32,
            policy_rules: inner.repo.rules().len() as u32,
            policy_revision: inner.repo.revision(),
            identities_by_type,
            endpoints_attached: pinned
                .iter()
                .filter(|id| inner.endpoints.contains_key(id))
                .count() as u32,
            endpoints_missing_programs: missing,
            overlay: self.encap_ifindex != 0,
            bpf_root: self.root.dir().display().to_string(),
        }
    }
}

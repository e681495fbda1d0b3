//! CRD mode: the cluster's shared state through the API server instead of
//! a kvstore. CiliumIdentity objects are the identities, CiliumEndpoint
//! objects tell where other nodes' pods are, CiliumNode objects which nodes
//! exist; this node writes its own CiliumNode and its pods' CiliumEndpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s::cilium_objects::{
    endpoint_named_ports, endpoint_resource, identity_resource, node_object, node_resource,
    parse_endpoint, parse_identity, parse_node, NodeView,
};
use k8s::identities::CrdAllocator;
use k8s::kube::api::{Api, DynamicObject, Patch, PatchParams};
use k8s::kube::runtime::watcher;
use k8s::kube::ResourceExt;
use k8s::Change;

use super::K8sState;
use crate::cluster::keys::{IpRecord, NodeRecord};
use crate::daemon::Daemon;

pub async fn watch_identities(
    daemon: Arc<Daemon>,
    state: Arc<K8sState>,
    client: k8s::Client,
    allocator: Arc<CrdAllocator>,
) {
    const RESOURCE: &str = "ciliumidentities";
    state.status.watching(RESOURCE);
    let api = Api::<DynamicObject>::all_with(client, &identity_resource());
    let changes = k8s::watch(api, watcher::Config::default());
    futures_util::pin_mut!(changes);
    let mut known = BTreeSet::new();
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied(object) => {
                if let Some(identity) = allocator.learned(&object) {
                    known.insert(identity.id);
                    daemon.identity_seen(identity);
                }
            }
            Change::Deleted(object) => {
                if let Some((id, _)) = parse_identity(&object) {
                    known.remove(&id);
                    allocator.forgot(id).await;
                    daemon.identity_gone(id);
                }
            }
            Change::Synced => {
                daemon.identities_resynced(&known);
                state.status.synced(RESOURCE);
            }
            Change::Lost(e) => state.status.lost(RESOURCE, e),
        }
    }
}

pub async fn watch_endpoints(daemon: Arc<Daemon>, state: Arc<K8sState>, client: k8s::Client) {
    const RESOURCE: &str = "ciliumendpoints";
    state.status.watching(RESOURCE);
    let api = Api::<DynamicObject>::all_with(client, &endpoint_resource());
    let changes = k8s::watch(api, watcher::Config::default());
    futures_util::pin_mut!(changes);
    // Which object claims which addresses (both families): a pod's address
    // may pass to a new pod before the old object is gone.
    let mut claims = AddressClaims::default();
    let key = |o: &DynamicObject| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied(object) => {
                let Some(place) = parse_endpoint(&object) else {
                    continue;
                };
                let named_ports = endpoint_named_ports(&object)
                    .into_iter()
                    .map(|(name, port, protocol)| api::models::Port {
                        name,
                        port,
                        protocol,
                    })
                    .filter_map(|p| crate::endpoint::parse_named_ports(&[p]).ok())
                    .flatten()
                    .collect();
                let record = IpRecord {
                    identity: place.identity,
                    host_ip: place.node_ip,
                    named_ports,
                };
                for ip in claims.claim(key(&object), place.ips.clone()) {
                    remote_ip_gone(&daemon, ip);
                }
                for ip in place.ips {
                    remote_ip_seen(&daemon, ip, record.clone());
                }
            }
            Change::Deleted(object) => {
                for ip in claims.claim(key(&object), Vec::new()) {
                    remote_ip_gone(&daemon, ip);
                }
            }
            Change::Synced => {
                let (v4, v6) = claims.claimed();
                daemon.remote_ips_resynced(&v4);
                daemon.remote_ips6_resynced(&v6);
                state.status.synced(RESOURCE);
            }
            Change::Lost(e) => state.status.lost(RESOURCE, e),
        }
    }
}

fn remote_ip_seen(daemon: &Daemon, ip: IpAddr, record: IpRecord) {
    match ip {
        IpAddr::V4(ip) => daemon.remote_ip_seen(ip, record),
        IpAddr::V6(ip) => daemon.remote_ip6_seen(ip, record),
    }
}

fn remote_ip_gone(daemon: &Daemon, ip: IpAddr) {
    match ip {
        IpAddr::V4(ip) => daemon.remote_ip_gone(ip),
        IpAddr::V6(ip) => daemon.remote_ip6_gone(ip),
    }
}

/// The addresses each CiliumEndpoint claims.
#[derive(Default)]
struct AddressClaims(BTreeMap<String, Vec<IpAddr>>);

impl AddressClaims {
    /// Makes `ips` what object `key` claims (none: the object is gone);
    /// returns the addresses it claimed before and no object claims now.
    fn claim(&mut self, key: String, ips: Vec<IpAddr>) -> Vec<IpAddr> {
        let before = match ips.is_empty() {
            true => self.0.remove(&key),
            false => self.0.insert(key, ips),
        };
        before
            .unwrap_or_default()
            .into_iter()
            .filter(|ip| !self.0.values().any(|claimed| claimed.contains(ip)))
            .collect()
    }

    /// Every claimed address, per family.
    fn claimed(&self) -> (BTreeSet<Ipv4Addr>, BTreeSet<Ipv6Addr>) {
        let mut v4 = BTreeSet::new();
        let mut v6 = BTreeSet::new();
        for ip in self.0.values().flatten() {
            match ip {
                IpAddr::V4(ip) => v4.insert(*ip),
                IpAddr::V6(ip) => v6.insert(*ip),
            };
        }
        (v4, v6)
    }
}

pub async fn watch_nodes(daemon: Arc<Daemon>, state: Arc<K8sState>, client: k8s::Client) {
    const RESOURCE: &str = "ciliumnodes";
    state.status.watching(RESOURCE);
    let api = Api::<DynamicObject>::all_with(client, &node_resource());
    let changes = k8s::watch(api, watcher::Config::default());
    futures_util::pin_mut!(changes);
    let mut known = BTreeSet::new();
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied(object) => {
                if let Some(node) = parse_node(&object) {
                    known.insert(node.name.clone());
                    daemon.node_seen(NodeRecord {
                        name: node.name,
                        ipv4: node.ipv4,
                        pod_cidr: node.pod_cidr.unwrap_or_default(),
                        health_ipv4: node.health_ipv4,
                        ipv6_pod_cidr: node.ipv6_pod_cidr,
                        ipv6: node.ipv6,
                        health_ipv6: node.health_ipv6,
                    });
                }
            }
            Change::Deleted(object) => {
                known.remove(&object.name_any());
                daemon.node_gone(&object.name_any());
            }
            Change::Synced => {
                daemon.nodes_resynced(&known);
                state.status.synced(RESOURCE);
            }
            Change::Lost(e) => state.status.lost(RESOURCE, e),
        }
    }
}

/// Deletes CiliumIdentities nobody uses, every `interval`; an identity
/// must be older than `interval` to go, so a new one is not collected
/// before its CiliumEndpoint is written.
pub async fn collect_identities(allocator: Arc<CrdAllocator>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        match allocator.collect_unused(interval).await {
            Ok(ids) if !ids.is_empty() => {
                eprintln!("level=info msg=\"deleted unused CiliumIdentities {ids:?}\"")
            }
            Ok(_) => {}
            Err(e) => eprintln!("level=warning msg=\"collecting unused CiliumIdentities: {e}\""),
        }
    }
}

/// Writes this node's CiliumNode (addresses, pod CIDRs, router and health
/// addresses of both families), retrying until the API server takes it,
/// and again whenever the health endpoint's addresses change.
pub async fn publish_node(daemon: Arc<Daemon>, state: Arc<K8sState>, client: k8s::Client) {
    let cluster = daemon.cluster();
    let node = &cluster.node;
    let api = Api::<DynamicObject>::all_with(client, &node_resource());
    let apply = PatchParams::apply("cilium-agent").force();
    let mut health = state.node_health.subscribe();
    let router_ips: Vec<IpAddr> = crate::ipam::Cidr::parse(&node.pod_cidr)
        .ok()
        .map(|cidr| IpAddr::V4(cidr.router()))
        .into_iter()
        .chain(cluster.pod_cidr6().map(|cidr| IpAddr::V6(cidr.router())))
        .collect();
    loop {
        let health_ips = *health.borrow_and_update();
        let object = node_object(&NodeView {
            name: node.name.clone(),
            ipv4: node.ipv4,
            ipv6: node.ipv6,
            pod_cidr: Some(node.pod_cidr.clone()).filter(|cidr| !cidr.is_empty()),
            ipv6_pod_cidr: node.ipv6_pod_cidr.clone(),
            router_ips: router_ips.clone(),
            health_ipv4: health_ips.ipv4,
            health_ipv6: health_ips.ipv6,
        });
        let mut delay = Duration::from_millis(200);
        while let Err(e) = api.patch(&node.name, &apply, &Patch::Apply(&object)).await {
            eprintln!(
                "level=warning msg=\"CiliumNode {}: {e}; retrying\"",
                node.name
            );
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        if health.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AddressClaims;
    use std::net::IpAddr;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    #[test]
    fn an_address_goes_when_no_endpoint_claims_it() {
        let mut claims = AddressClaims::default();
        assert!(claims
            .claim("a/web".into(), ips(&["10.0.1.5", "f00d::5"]))
            .is_empty());
        // A new pod takes the IPv6 address before the old object goes.
        assert!(claims.claim("a/new".into(), ips(&["f00d::5"])).is_empty());
        assert_eq!(claims.claim("a/web".into(), vec![]), ips(&["10.0.1.5"]));
        // An update that drops an address releases it.
        assert!(claims
            .claim("a/new".into(), ips(&["10.0.1.7", "f00d::5"]))
            .is_empty());
        assert_eq!(
            claims.claim("a/new".into(), ips(&["10.0.1.7"])),
            ips(&["f00d::5"])
        );
        let (v4, v6) = claims.claimed();
        assert_eq!(v4.len(), 1);
        assert!(v6.is_empty());
    }
}

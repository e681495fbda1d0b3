//! CRD mode: the cluster's shared state through the API server instead of
//! a kvstore. CiliumIdentity objects are the identities, CiliumEndpoint
//! objects tell where other nodes' pods are, CiliumNode objects which nodes
//! exist; this node writes its own CiliumNode and its pods' CiliumEndpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s::cilium_objects::{
    endpoint_named_ports, endpoint_resource, identity_resource, node_object, node_resource,
    parse_endpoint, parse_identity, parse_node,
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
    // Which object claims which address: a pod's address may pass to a
    // new pod before the old object is gone.
    let mut claims: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    let key = |o: &DynamicObject| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied(object) => {
                if let Some((ip, identity, host_ip)) = parse_endpoint(&object) {
                    claims.insert(key(&object), ip);
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
                        identity,
                        host_ip,
                        named_ports,
                    };
                    daemon.remote_ip_seen(ip, record);
                }
            }
            Change::Deleted(object) => {
                if let Some(ip) = claims.remove(&key(&object)) {
                    if !claims.values().any(|other| *other == ip) {
                        daemon.remote_ip_gone(ip);
                    }
                }
            }
            Change::Synced => {
                let seen: BTreeSet<Ipv4Addr> = claims.values().copied().collect();
                daemon.remote_ips_resynced(&seen);
                state.status.synced(RESOURCE);
            }
            Change::Lost(e) => state.status.lost(RESOURCE, e),
        }
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
                        pod_cidr: node.pod_cidr,
                        health_ipv4: node.health_ipv4,
                        ipv6_pod_cidr: None,
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

/// Writes this node's CiliumNode (address, pod CIDR, health address),
/// retrying until the API server takes it, and again whenever the health
/// endpoint's address changes.
pub async fn publish_node(daemon: Arc<Daemon>, state: Arc<K8sState>, client: k8s::Client) {
    let node = &daemon.cluster().node;
    let api = Api::<DynamicObject>::all_with(client, &node_resource());
    let apply = PatchParams::apply("cilium-agent").force();
    let mut health = state.node_health.subscribe();
    loop {
        let health_ipv4 = *health.borrow_and_update();
        let object = node_object(&node.name, node.ipv4, &node.pod_cidr, health_ipv4);
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

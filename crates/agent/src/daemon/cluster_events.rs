//! What the cluster's watches report, applied to this node: identities from
//! other nodes reach every endpoint's policy map (only their own keys), and
//! other nodes' endpoints reach the ipcache with their node as the tunnel
//! endpoint.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
};

use identity::Identity;

use super::Daemon;
use crate::cluster::keys::{IpRecord, NodeRecord};

impl Daemon {
    pub fn identity_seen(&self, identity: Identity) {
        let mut inner = self.lock();
        let (id, labels) = (identity.id, identity.labels.clone());
        if inner.identities.insert(identity) {
            if let Err(e) = self.identity_added(&inner, id, &labels) {
                eprintln!("identity {id} from the cluster: {e}");
            }
        }
    }

    pub fn identity_gone(&self, id: u32) {
        let mut inner = self.lock();
        if inner.endpoints.values().any(|ep| ep.identity == id) {
            return; // still used here; the allocator re-publishes it
        }
        if let Some(gone) = inner.identities.remove(id) {
            if let Err(e) = self.identity_removed(&inner, id, &gone.labels) {
                eprintln!("identity {id} removed from the cluster: {e}");
            }
        }
    }

    pub fn identities_resynced(&self, seen: &BTreeSet<u32>) {
        let stale: Vec<u32> = {
            let inner = self.lock();
            inner
                .identities
                .ids()
                .filter(|id| !identity::reserved::is_reserved(*id) && !seen.contains(id))
                .collect()
        };
        for id in stale {
            self.identity_gone(id);
        }
    }

    pub fn remote_ip_seen(&self, ip: Ipv4Addr, record: IpRecord) {
        if record.host_ip == self.cluster.node_ip() {
            return; // our own endpoint
        }
        let mut inner = self.lock();
        let previous = inner.remote_ips.insert(ip, record.clone());
        if previous.as_ref() != Some(&record) {
            if let Err(e) = inner
                .maps
                .ipcache
                .upsert(ip, 32, record.identity, record.host_ip)
            {
                eprintln!("ipcache {ip}: {e}");
            }
            self.refresh_peer_ports(&mut inner);
        }
    }

    pub fn remote_ip_gone(&self, ip: Ipv4Addr) {
        let mut inner = self.lock();
        if inner.remote_ips.remove(&ip).is_some()
            && !inner.endpoints.values().any(|ep| ep.ipv4 == Some(ip))
        {
            if let Err(e) = inner.maps.ipcache.remove(ip, 32) {
                eprintln!("ipcache {ip}: {e}");
            }
            self.refresh_peer_ports(&mut inner);
        }
    }

    pub fn remote_ips_resynced(&self, seen: &BTreeSet<Ipv4Addr>) {
        let stale: Vec<Ipv4Addr> = self
            .lock()
            .remote_ips
            .keys()
            .filter(|ip| !seen.contains(ip))
            .copied()
            .collect();
        for ip in stale {
            self.remote_ip_gone(ip);
        }
    }

    pub fn node_seen(&self, node: NodeRecord) {
        let remote = node.name != self.cluster.node.name;
        let new_cidr = {
            let mut inner = self.lock();
            if remote {
                if let Err(e) = inner.maps.ipcache.upsert(
                    node.ipv4,
                    32,
                    identity::REMOTE_NODE,
                    Ipv4Addr::UNSPECIFIED,
                ) {
                    eprintln!("ipcache node {}: {e}", node.ipv4);
                }
                if let Some(ip6) = node.ipv6 {
                    let id = identity::REMOTE_NODE;
                    if let Err(e) = inner
                        .maps
                        .ipcache6
                        .upsert(ip6, 128, id, Ipv4Addr::UNSPECIFIED)
                    {
                        eprintln!("ipcache6 node {ip6}: {e}");
                    }
                }
            }
            let previous = inner.nodes.insert(node.name.clone(), node.clone());
            self.publish_node_addresses(&inner);
            previous.is_none_or(|p| {
                p.pod_cidr != node.pod_cidr || p.ipv6_pod_cidr != node.ipv6_pod_cidr
            })
        };
        if remote && new_cidr {
            self.route_pod_cidrs(&node);
        }
    }

    pub fn node_gone(&self, name: &str) {
        let node = {
            let mut inner = self.lock();
            match inner.nodes.remove(name) {
                Some(node) if name != self.cluster.node.name => {
                    let _ = inner.maps.ipcache.remove(node.ipv4, 32);
                    if let Some(ip6) = node.ipv6 {
                        let _ = inner.maps.ipcache6.remove(ip6, 128);
                    }
                    self.publish_node_addresses(&inner);
                    node
                }
                _ => return,
            }
        };
        for (cidr, _) in self.routed_pod_cidrs(&node) {
            if let Err(e) = crate::node::tunnel::unroute_pod_cidr(cidr) {
                eprintln!("route to node {}'s pods: {e:#}", node.name);
            }
        }
    }

    /// Every known node's addresses and this node's, for the NodePorts:
    /// IPv4 and, where a node has one, IPv6.
    fn publish_node_addresses(&self, inner: &super::Inner) {
        let addresses: BTreeSet<std::net::IpAddr> = inner
            .nodes
            .values()
            .chain([&self.cluster.node])
            .flat_map(|n| [Some(n.ipv4.into()), n.ipv6.map(Into::into)])
            .flatten()
            .collect();
        self.node_addresses.send_if_modified(|known| {
            let changed = *known != addresses;
            *known = addresses;
            changed
        });
    }

    /// The addresses NodePorts are served on, as they change.
    pub fn watch_node_addresses(&self) -> tokio::sync::watch::Receiver<BTreeSet<std::net::IpAddr>> {
        self.node_addresses.subscribe()
    }

    /// `node`'s pod CIDRs routed into the overlay, each with the source
    /// this node's connections to them take: none without an overlay.
    fn routed_pod_cidrs<'a>(&self, node: &'a NodeRecord) -> Vec<(&'a str, Option<IpAddr>)> {
        if self.encap_ifindex == 0 {
            return Vec::new();
        }
        let own = &self.cluster.node;
        let v4 =
            (!node.pod_cidr.is_empty()).then(|| (node.pod_cidr.as_str(), Some(own.ipv4.into())));
        let v6 = node
            .ipv6_pod_cidr
            .as_deref()
            .filter(|_| own.ipv6_pod_cidr.is_some())
            .map(|cidr| (cidr, own.ipv6.map(IpAddr::from)));
        v4.into_iter().chain(v6).collect()
    }

    /// The node's own connections to the node's pods go through the overlay.
    fn route_pod_cidrs(&self, node: &NodeRecord) {
        for (cidr, src) in self.routed_pod_cidrs(node) {
            if let Err(e) = crate::node::tunnel::route_pod_cidr(cidr, src) {
                eprintln!("route to node {}'s pods: {e:#}", node.name);
            }
        }
    }

    pub fn nodes_resynced(&self, seen: &BTreeSet<String>) {
        let stale: Vec<String> = self
            .lock()
            .nodes
            .keys()
            .filter(|n| !seen.contains(*n))
            .cloned()
            .collect();
        for name in stale {
            self.node_gone(&name);
        }
    }

    pub fn cluster_nodes(&self) -> api::models::ClusterNodeStatus {
        use api::models::*;
        let inner = self.lock();
        let mut nodes: Vec<NodeRecord> = inner.nodes.values().cloned().collect();
        if !inner.nodes.contains_key(&self.cluster.node.name) {
            nodes.push(self.cluster.node.clone());
        }
        ClusterNodeStatus {
            self_name: self.cluster.node.name.clone(),
            nodes_added: nodes
                .into_iter()
                .map(|n| NodeElement {
                    primary_address: NodeAddressing {
                        ipv4: NodeAddressingElement {
                            enabled: true,
                            ip: n.ipv4.to_string(),
                            alloc_range: n.pod_cidr.clone(),
                        },
                        ipv6: n.ipv6_pod_cidr.as_ref().map(|range| NodeAddressingElement {
                            enabled: true,
                            // Empty: the node has no IPv6 address of its own.
                            ip: n.ipv6.map(|ip| ip.to_string()).unwrap_or_default(),
                            alloc_range: range.clone(),
                        }),
                    },
                    ipv4_alloc_cidr: n.pod_cidr,
                    health: "ok".into(),
                    name: n.name,
                })
                .collect(),
        }
    }
}

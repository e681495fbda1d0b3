//! Where the cluster's state lives in the kvstore (Cilium's layout).

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::{ipam::Cidr, services::ServiceRecord};

pub const NODES_PREFIX: &str = "cilium/state/nodes/v1/default/";
pub const IP_PREFIX: &str = "cilium/state/ip/v1/default/";
pub const PODCIDR_PREFIX: &str = "cilium/state/podcidrs/v1/";
/// IPv6 blocks of `--cluster-pool-ipv6-cidr`, claimed like the IPv4 ones.
pub const PODCIDR6_PREFIX: &str = "cilium/state/podcidrs6/v1/";
/// Services, cluster-wide and lease-less: a service outlives the node that
/// defined it.
pub const SERVICES_PREFIX: &str = "cilium/state/services/v1/default/";

/// A node's registration, held under its session lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub ipv4: Ipv4Addr,
    pub pod_cidr: String,
    /// The node's health endpoint, probed by the other nodes' health
    /// checkers (absent from older agents' records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_ipv4: Option<Ipv4Addr>,
    /// The node's IPv6 pod range, when IPv6 is enabled there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_pod_cidr: Option<String>,
    /// The node's own IPv6 address, when it has one (`--ipv6-node`): the
    /// other nodes' health checkers probe it next to its IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<std::net::Ipv6Addr>,
    /// The health endpoint's IPv6 address, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_ipv6: Option<std::net::Ipv6Addr>,
}

/// An endpoint's address as every node's ipcache needs it, and its named
/// ports for other nodes' egress rules that name ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRecord {
    pub identity: u32,
    /// The node hosting the endpoint: the tunnel endpoint.
    pub host_ip: Ipv4Addr,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub named_ports: policy::ports::NamedPorts,
}

pub fn node_key(name: &str) -> String {
    format!("{NODES_PREFIX}{name}")
}

/// An endpoint address's key; IPv4 and IPv6 addresses share the prefix,
/// as in Cilium.
pub fn ip_key(ip: impl Into<IpAddr>) -> String {
    format!("{IP_PREFIX}{}", ip.into())
}

pub fn parse_ip_key(key: &str) -> Option<IpAddr> {
    key.strip_prefix(IP_PREFIX)?.parse().ok()
}

pub fn podcidr_key(block: &Cidr) -> String {
    format!("{PODCIDR_PREFIX}{}_{}", block.network, block.prefix_len)
}

pub fn parse_podcidr_key(key: &str) -> Option<Cidr> {
    let (ip, len) = key.strip_prefix(PODCIDR_PREFIX)?.split_once('_')?;
    Cidr::parse(&format!("{ip}/{len}")).ok()
}

pub fn service_key(id: u16) -> String {
    format!("{SERVICES_PREFIX}{id}")
}

pub fn parse_service_key(key: &str) -> Option<u16> {
    key.strip_prefix(SERVICES_PREFIX)?
        .parse()
        .ok()
        .filter(|id| *id != 0)
}

pub fn encode_service(record: &ServiceRecord) -> Vec<u8> {
    serde_json::to_vec(record).expect("a service record serializes")
}

/// A service record under its key; `None` when either is malformed or
/// they disagree on the id.
pub fn decode_service(key: &str, value: &[u8]) -> Option<(u16, ServiceRecord)> {
    let id = parse_service_key(key)?;
    let record: ServiceRecord = serde_json::from_slice(value).ok()?;
    (record.id == id).then_some((id, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        assert_eq!(parse_ip_key(&ip_key(ip)), Some(IpAddr::V4(ip)));
        let ip6: std::net::Ipv6Addr = "f00d::a00:f:0:5".parse().unwrap();
        assert_eq!(ip_key(ip6), "cilium/state/ip/v1/default/f00d::a00:f:0:5");
        assert_eq!(parse_ip_key(&ip_key(ip6)), Some(IpAddr::V6(ip6)));
        let block = Cidr::parse("10.210.4.0/24").unwrap();
        assert_eq!(parse_podcidr_key(&podcidr_key(&block)), Some(block));
        assert_eq!(parse_ip_key("cilium/state/ip/v1/default/x"), None);
    }

    #[test]
    fn service_records_round_trip_under_their_id() {
        use crate::services::{Addr, Backend, BackendState, TCP};
        let addr = |ip: [u8; 4], port| Addr {
            ip: Ipv4Addr::from(ip).into(),
            port,
            proto: TCP,
        };
        let record = ServiceRecord {
            id: 7,
            frontend: addr([10, 96, 0, 7], 80),
            backends: vec![Backend {
                addr: addr([10, 200, 0, 5], 8080),
                weight: 1,
                state: BackendState::Active,
            }],
            kind: "ClusterIP".into(),
            name: "web".into(),
            namespace: "shop".into(),
        };
        let value = encode_service(&record);
        assert_eq!(
            decode_service(&service_key(7), &value),
            Some((7, record.clone()))
        );
        assert_eq!(decode_service(&service_key(8), &value), None, "id mismatch");
        assert_eq!(parse_service_key(&format!("{SERVICES_PREFIX}0")), None);
    }
}

//! Where the cluster's state lives in the kvstore (Cilium's layout).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::ipam::Cidr;

pub const NODES_PREFIX: &str = "cilium/state/nodes/v1/default/";
pub const IP_PREFIX: &str = "cilium/state/ip/v1/default/";
pub const PODCIDR_PREFIX: &str = "cilium/state/podcidrs/v1/";

/// A node's registration, held under its session lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub ipv4: Ipv4Addr,
    pub pod_cidr: String,
}

/// An endpoint's address as every node's ipcache needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpRecord {
    pub identity: u32,
    /// The node hosting the endpoint: the tunnel endpoint.
    pub host_ip: Ipv4Addr,
}

pub fn node_key(name: &str) -> String {
    format!("{NODES_PREFIX}{name}")
}

pub fn ip_key(ip: Ipv4Addr) -> String {
    format!("{IP_PREFIX}{ip}")
}

pub fn parse_ip_key(key: &str) -> Option<Ipv4Addr> {
    key.strip_prefix(IP_PREFIX)?.parse().ok()
}

pub fn podcidr_key(block: &Cidr) -> String {
    format!("{PODCIDR_PREFIX}{}_{}", block.network, block.prefix_len)
}

pub fn parse_podcidr_key(key: &str) -> Option<Cidr> {
    let (ip, len) = key.strip_prefix(PODCIDR_PREFIX)?.split_once('_')?;
    Cidr::parse(&format!("{ip}/{len}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let ip = Ipv4Addr::new(10, 1, 2, 3);
        assert_eq!(parse_ip_key(&ip_key(ip)), Some(ip));
        let block = Cidr::parse("10.210.4.0/24").unwrap();
        assert_eq!(parse_podcidr_key(&podcidr_key(&block)), Some(block));
        assert_eq!(parse_ip_key("cilium/state/ip/v1/default/x"), None);
    }
}

//! `cilium_ipcache6`: IPv6 prefix -> identity (`struct ipcache6_key` /
//! `struct remote_endpoint_info` in bpf/lib/maps.h), with its /128 entries
//! mirrored in the `cilium_ipcache6_host` hash the programs look at first.
//! The IPv4 map's twin, both `ipcache::Prefixes`; tunnel endpoints stay
//! IPv4.

use std::net::{Ipv4Addr, Ipv6Addr};

use aya::maps::{lpm_trie::Key, Map};

use super::ipcache::Prefixes;
use super::RemoteEndpointInfo;
use crate::DatapathError;

/// The C key; aya's `Key<[u8; 16]>` has the same layout and is what the map uses.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Ipcache6Key {
    pub prefixlen: u32,
    pub ip6: [u8; 16],
}

// SAFETY: plain #[repr(C)] data without padding.
unsafe impl aya::Pod for Ipcache6Key {}

const _: () = assert!(std::mem::size_of::<Key<[u8; 16]>>() == std::mem::size_of::<Ipcache6Key>());

pub struct Ipcache6Map(Prefixes<16>);

impl Ipcache6Map {
    pub(crate) fn new(trie: Map, hosts: Map) -> Result<Self, DatapathError> {
        let names = (super::IPCACHE6_MAP, super::IPCACHE6_HOST_MAP);
        Ok(Ipcache6Map(Prefixes::new(trie, hosts, names)?))
    }

    /// `tunnel_endpoint`: the (IPv4) node hosting the prefix; unspecified
    /// for this node and for addresses outside the cluster.
    pub fn upsert(
        &mut self,
        ip: Ipv6Addr,
        prefix_len: u32,
        identity: u32,
        tunnel_endpoint: Ipv4Addr,
    ) -> Result<(), DatapathError> {
        self.0
            .upsert(ip.octets(), prefix_len, identity, tunnel_endpoint)
    }

    pub fn remove(&mut self, ip: Ipv6Addr, prefix_len: u32) -> Result<(), DatapathError> {
        self.0.remove(ip.octets(), prefix_len)
    }

    /// (address, prefix length, value) for every entry.
    pub fn entries(&self) -> Result<Vec<(Ipv6Addr, u32, RemoteEndpointInfo)>, DatapathError> {
        Ok(self
            .0
            .entries()?
            .into_iter()
            .map(|(ip, len, value)| (Ipv6Addr::from(ip), len, value))
            .collect())
    }
}

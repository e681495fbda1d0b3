//! `cilium_ipcache6`: IPv6 prefix -> identity (`struct ipcache6_key` /
//! `struct remote_endpoint_info` in bpf/lib/maps.h), with its /128 entries
//! mirrored in the `cilium_ipcache6_host` hash the programs look at first.
//! The IPv4 map's twin (`ipcache.rs`); tunnel endpoints stay IPv4.

use std::net::{Ipv4Addr, Ipv6Addr};

use aya::maps::{lpm_trie::Key, HashMap, LpmTrie, Map, MapData};

use super::ops::{counted, CountedMap::Ipcache, MapOp};
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

pub struct Ipcache6Map {
    trie: LpmTrie<MapData, [u8; 16], RemoteEndpointInfo>,
    hosts: HashMap<MapData, [u8; 16], RemoteEndpointInfo>,
}

impl Ipcache6Map {
    pub(crate) fn new(trie: Map, hosts: Map) -> Result<Self, DatapathError> {
        let trie =
            LpmTrie::try_from(trie).map_err(|e| DatapathError::map(super::IPCACHE6_MAP, e))?;
        let hosts = HashMap::try_from(hosts)
            .map_err(|e| DatapathError::map(super::IPCACHE6_HOST_MAP, e))?;
        Ok(Ipcache6Map { trie, hosts })
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
        let value = RemoteEndpointInfo {
            sec_identity: identity,
            tunnel_endpoint: tunnel_endpoint.octets(),
            ..Default::default()
        };
        let key = Key::new(prefix_len, ip.octets());
        counted(Ipcache, MapOp::Update, self.trie.insert(&key, value, 0))
            .map_err(|e| DatapathError::map(super::IPCACHE6_MAP, e))?;
        if prefix_len == 128 {
            self.hosts
                .insert(ip.octets(), value, 0)
                .map_err(|e| DatapathError::map(super::IPCACHE6_HOST_MAP, e))?;
        }
        Ok(())
    }

    pub fn remove(&mut self, ip: Ipv6Addr, prefix_len: u32) -> Result<(), DatapathError> {
        // The hash first: no moment where it holds what the trie lost.
        if prefix_len == 128 {
            match self.hosts.remove(&ip.octets()) {
                Err(aya::maps::MapError::KeyNotFound) | Ok(()) => {}
                Err(e) => return Err(DatapathError::map(super::IPCACHE6_HOST_MAP, e)),
            }
        }
        let key = Key::new(prefix_len, ip.octets());
        match counted(Ipcache, MapOp::Delete, self.trie.remove(&key)) {
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => Ok(()),
            Err(e) => Err(DatapathError::map(super::IPCACHE6_MAP, e)),
        }
    }

    /// (address, prefix length, value) for every entry.
    pub fn entries(&self) -> Result<Vec<(Ipv6Addr, u32, RemoteEndpointInfo)>, DatapathError> {
        let all: Result<Vec<_>, DatapathError> = self
            .trie
            .iter()
            .map(|r| {
                r.map(|(k, v)| (Ipv6Addr::from(k.data()), k.prefix_len(), v))
                    .map_err(|e| DatapathError::map(super::IPCACHE6_MAP, e))
            })
            .collect();
        super::ops::record(Ipcache, MapOp::Dump, all.is_ok());
        all
    }
}

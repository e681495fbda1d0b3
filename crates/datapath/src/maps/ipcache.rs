//! `cilium_ipcache`: address prefix -> identity (`struct ipcache_key` /
//! `struct remote_endpoint_info` in bpf/lib/maps.h), with its /32 entries
//! mirrored in the `cilium_ipcache_host` hash the programs look at first.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;

use aya::maps::{lpm_trie::Key, HashMap, IterableMap, LpmTrie, Map, MapData};

use super::ops::{counted, CountedMap::Ipcache, MapOp};
use crate::DatapathError;

/// The C key; aya's `Key<[u8; 4]>` has the same layout and is what the map uses.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct IpcacheKey {
    pub prefixlen: u32,
    pub ip4: [u8; 4],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemoteEndpointInfo {
    pub sec_identity: u32,
    /// Node hosting the address, network order; 0 = this node.
    pub tunnel_endpoint: [u8; 4],
    pub flags: u8,
    pub pad: [u8; 3],
}

// SAFETY: plain #[repr(C)] data.
unsafe impl aya::Pod for RemoteEndpointInfo {}
// SAFETY: plain #[repr(C)] data without padding.
unsafe impl aya::Pod for IpcacheKey {}

const _: () = assert!(std::mem::size_of::<Key<[u8; 4]>>() == std::mem::size_of::<IpcacheKey>());

/// One family's prefixes: the LPM trie, and the hash mirroring its
/// host-length entries (addresses of `N` bytes). Both families' maps are
/// this, keyed by their own address type.
pub(super) struct Prefixes<const N: usize> {
    pub(super) trie: LpmTrie<MapData, [u8; N], RemoteEndpointInfo>,
    hosts: HashMap<MapData, [u8; N], RemoteEndpointInfo>,
    /// The trie's and the hash's map names, for errors.
    names: (&'static str, &'static str),
}

impl<const N: usize> Prefixes<N> {
    const HOST_LEN: u32 = N as u32 * 8;

    pub(super) fn new(
        trie: Map,
        hosts: Map,
        names: (&'static str, &'static str),
    ) -> Result<Self, DatapathError> {
        let trie = LpmTrie::try_from(trie).map_err(|e| DatapathError::map(names.0, e))?;
        let hosts = HashMap::try_from(hosts).map_err(|e| DatapathError::map(names.1, e))?;
        Ok(Prefixes { trie, hosts, names })
    }

    /// `tunnel_endpoint`: the (IPv4) node hosting the prefix; unspecified
    /// for this node and for addresses outside the cluster.
    pub(super) fn upsert(
        &mut self,
        ip: [u8; N],
        prefix_len: u32,
        identity: u32,
        tunnel_endpoint: Ipv4Addr,
    ) -> Result<(), DatapathError> {
        let value = RemoteEndpointInfo {
            sec_identity: identity,
            tunnel_endpoint: tunnel_endpoint.octets(),
            ..Default::default()
        };
        let key = Key::new(prefix_len, ip);
        counted(Ipcache, MapOp::Update, self.trie.insert(&key, value, 0))
            .map_err(|e| DatapathError::map(self.names.0, e))?;
        if prefix_len == Self::HOST_LEN {
            self.hosts
                .insert(ip, value, 0)
                .map_err(|e| DatapathError::map(self.names.1, e))?;
        }
        Ok(())
    }

    pub(super) fn remove(&mut self, ip: [u8; N], prefix_len: u32) -> Result<(), DatapathError> {
        // The hash first: no moment where it holds what the trie lost.
        if prefix_len == Self::HOST_LEN {
            match self.hosts.remove(&ip) {
                Err(aya::maps::MapError::KeyNotFound) | Ok(()) => {}
                Err(e) => return Err(DatapathError::map(self.names.1, e)),
            }
        }
        let key = Key::new(prefix_len, ip);
        match counted(Ipcache, MapOp::Delete, self.trie.remove(&key)) {
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => Ok(()),
            Err(e) => Err(DatapathError::map(self.names.0, e)),
        }
    }

    /// (address, prefix length, value) for every entry.
    pub(super) fn entries(&self) -> Result<Vec<([u8; N], u32, RemoteEndpointInfo)>, DatapathError> {
        let all: Result<Vec<_>, DatapathError> = self
            .trie
            .iter()
            .map(|r| {
                r.map(|(k, v)| (k.data(), k.prefix_len(), v))
                    .map_err(|e| DatapathError::map(self.names.0, e))
            })
            .collect();
        super::ops::record(Ipcache, MapOp::Dump, all.is_ok());
        all
    }

    pub(super) fn hosts_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.hosts.map().fd().as_fd()
    }
}

pub struct IpcacheMap(Prefixes<4>);

impl IpcacheMap {
    pub(crate) fn new(trie: Map, hosts: Map) -> Result<Self, DatapathError> {
        let names = (super::IPCACHE_MAP, super::IPCACHE_HOST_MAP);
        Ok(IpcacheMap(Prefixes::new(trie, hosts, names)?))
    }

    pub fn upsert(
        &mut self,
        ip: Ipv4Addr,
        prefix_len: u32,
        identity: u32,
        tunnel_endpoint: Ipv4Addr,
    ) -> Result<(), DatapathError> {
        self.0
            .upsert(ip.octets(), prefix_len, identity, tunnel_endpoint)
    }

    /// [`upsert`](Self::upsert) of many prefixes, node-local (no tunnel
    /// endpoint), in a few system calls: a big CIDR policy's identities.
    pub fn upsert_local_all(
        &mut self,
        prefixes: &[(Ipv4Addr, u32, u32)],
    ) -> Result<(), DatapathError> {
        let value = |identity| RemoteEndpointInfo {
            sec_identity: identity,
            ..Default::default()
        };
        let trie: Vec<(IpcacheKey, RemoteEndpointInfo)> = prefixes
            .iter()
            .map(|&(ip, prefixlen, identity)| {
                let key = IpcacheKey {
                    prefixlen,
                    ip4: ip.octets(),
                };
                (key, value(identity))
            })
            .collect();
        let hosts: Vec<([u8; 4], RemoteEndpointInfo)> = prefixes
            .iter()
            .filter(|(_, prefixlen, _)| *prefixlen == 32)
            .map(|&(ip, _, identity)| (ip.octets(), value(identity)))
            .collect();
        let written = super::batch::update(self.0.trie.map().fd().as_fd(), &trie);
        super::ops::record(Ipcache, MapOp::Update, written.is_ok());
        let failed = |map: &str, e| DatapathError::Syscall(format!("writing {map}: {e}"));
        written.map_err(|e| failed(super::IPCACHE_MAP, e))?;
        super::batch::update(self.0.hosts_fd(), &hosts)
            .map_err(|e| failed(super::IPCACHE_HOST_MAP, e))
    }

    pub fn remove(&mut self, ip: Ipv4Addr, prefix_len: u32) -> Result<(), DatapathError> {
        self.0.remove(ip.octets(), prefix_len)
    }

    /// (address, prefix length, value) for every entry.
    pub fn entries(&self) -> Result<Vec<(Ipv4Addr, u32, RemoteEndpointInfo)>, DatapathError> {
        Ok(self
            .0
            .entries()?
            .into_iter()
            .map(|(ip, len, value)| (Ipv4Addr::from(ip), len, value))
            .collect())
    }
}

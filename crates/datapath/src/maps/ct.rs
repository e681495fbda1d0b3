//! `cilium_ct4_global` and `cilium_ct6_global`: connection tracking
//! (`struct ct_key` / `struct ct6_key` / `struct ct_entry` in
//! bpf/lib/maps.h). One handle sweeps both families.

use std::os::fd::{AsFd, OwnedFd};

use aya::maps::{HashMap, Map, MapData};

use super::ops::{counted, CountedMap::Ct, MapOp};
use crate::DatapathError;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    /// Network byte order.
    pub sport: u16,
    pub dport: u16,
    pub protocol: u8,
    /// `CT_DIR_*`: the endpoint's egress or ingress, or a service entry.
    pub dir: u8,
    pub pad: u16,
}

/// `struct ct6_key`: [`CtKey`] with IPv6 addresses.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ct6Key {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Network byte order.
    pub sport: u16,
    pub dport: u16,
    pub protocol: u8,
    pub dir: u8,
    pub pad: u16,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtEntry {
    /// CLOCK_MONOTONIC seconds.
    pub expires: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub src_identity: u32,
    pub flags: u16,
    /// Service the flow was translated for; 0 = none.
    pub rev_nat_index: u16,
    /// `CT_DIR_SERVICE` entries: the backend chosen.
    pub backend_id: u32,
    /// L7 proxy port the flow is redirected to; 0 = none.
    pub proxy_port: u16,
    pub pad: u16,
}

/// Entry directions (`dir` in the key).
pub const CT_DIR_INGRESS: u8 = 0;
pub const CT_DIR_EGRESS: u8 = 1;
pub const CT_DIR_SERVICE: u8 = 2;

// SAFETY: plain #[repr(C)] data.
unsafe impl aya::Pod for CtKey {}
unsafe impl aya::Pod for Ct6Key {}
unsafe impl aya::Pod for CtEntry {}

pub const CT_SEEN_SYN: u16 = 1 << 0;
pub const CT_SEEN_REPLY: u16 = 1 << 1;
pub const CT_CLOSING: u16 = 1 << 2;

/// The datapath's clock for expiry: CLOCK_MONOTONIC in seconds.
pub fn monotonic_secs() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64
}

/// Both families' tables; IPv4 calls keep their names, IPv6 ones say so.
pub struct CtMap {
    v4: Table<CtKey>,
    v6: Table<Ct6Key>,
}

/// One family's table: the typed map, and the same map for whole-map reads
/// in batches.
struct Table<K: aya::Pod> {
    map: HashMap<MapData, K, CtEntry>,
    fd: OwnedFd,
    name: &'static str,
}

impl<K: aya::Pod> Table<K> {
    fn new(map: Map, name: &'static str) -> Result<Self, DatapathError> {
        let fd = match &map {
            Map::LruHashMap(data) | Map::HashMap(data) => data.fd().as_fd().try_clone_to_owned(),
            _ => return Err(DatapathError::Syscall(format!("{name} is not a hash map"))),
        }
        .map_err(|e| DatapathError::Syscall(format!("{name}: {e}")))?;
        let map = HashMap::try_from(map).map_err(|e| DatapathError::map(name, e))?;
        Ok(Table { map, fd, name })
    }

    fn entries(&self) -> Result<Vec<(K, CtEntry)>, DatapathError> {
        let all = super::batch::dump(self.fd.as_fd())
            .map_err(|e| DatapathError::Syscall(format!("reading {}: {e}", self.name)));
        super::ops::record(Ct, MapOp::Dump, all.is_ok());
        all
    }

    /// Deletes the entries `doomed` picks; returns how many went.
    fn remove_where(
        &mut self,
        doomed: impl Fn(&K, &CtEntry) -> bool,
    ) -> Result<usize, DatapathError> {
        let keys: Vec<K> = self
            .entries()?
            .into_iter()
            .filter(|(k, e)| doomed(k, e))
            .map(|(k, _)| k)
            .collect();
        for key in &keys {
            match counted(Ct, MapOp::Delete, self.map.remove(key)) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(DatapathError::map(self.name, e)),
            }
        }
        Ok(keys.len())
    }
}

impl CtMap {
    pub(crate) fn new(v4: Map, v6: Map) -> Result<Self, DatapathError> {
        Ok(CtMap {
            v4: Table::new(v4, super::CT_MAP)?,
            v6: Table::new(v6, super::CT6_MAP)?,
        })
    }

    /// The IPv4 entry of one tuple, expired or not; `None` when there is
    /// none. (For tools reading one flow, e.g. which service a flow was
    /// load-balanced for.)
    pub fn get(&self, key: &CtKey) -> Result<Option<CtEntry>, DatapathError> {
        match counted(Ct, MapOp::Lookup, self.v4.map.get(key, 0)) {
            Ok(entry) => Ok(Some(entry)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(DatapathError::map(self.v4.name, e)),
        }
    }

    /// `get` for an IPv6 tuple.
    pub fn get6(&self, key: &Ct6Key) -> Result<Option<CtEntry>, DatapathError> {
        match counted(Ct, MapOp::Lookup, self.v6.map.get(key, 0)) {
            Ok(entry) => Ok(Some(entry)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(DatapathError::map(self.v6.name, e)),
        }
    }

    /// A handle of its own on the pinned maps under `root` (for a sweep that
    /// must not hold up the agent's other users of the shared maps).
    pub fn open(root: &crate::BpfRoot) -> Result<Self, DatapathError> {
        Self::new(
            super::open_pinned(root, super::CT_MAP)?,
            super::open_pinned(root, super::CT6_MAP)?,
        )
    }

    /// The IPv4 entries.
    pub fn entries(&self) -> Result<Vec<(CtKey, CtEntry)>, DatapathError> {
        self.v4.entries()
    }

    /// The IPv6 entries.
    pub fn entries6(&self) -> Result<Vec<(Ct6Key, CtEntry)>, DatapathError> {
        self.v6.entries()
    }

    /// Deletes expired entries of both families; returns how many went.
    pub fn gc(&mut self) -> Result<usize, DatapathError> {
        let now = monotonic_secs();
        let v4 = self.v4.remove_where(|_, e| e.expires <= now)?;
        Ok(v4 + self.v6.remove_where(|_, e| e.expires <= now)?)
    }

    /// Removes every entry an address takes part in (endpoint deleted).
    pub fn flush_address(&mut self, ip: [u8; 4]) -> Result<usize, DatapathError> {
        self.v4.remove_where(|k, _| k.saddr == ip || k.daddr == ip)
    }

    /// [`flush_address`](Self::flush_address) for an IPv6 address.
    pub fn flush_address6(&mut self, ip: [u8; 16]) -> Result<usize, DatapathError> {
        self.v6.remove_where(|k, _| k.saddr == ip || k.daddr == ip)
    }
}

//! `cilium_ct4_global`: connection tracking (`struct ct_key` /
//! `struct ct_entry` in bpf/lib/maps.h).

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

pub struct CtMap {
    map: HashMap<MapData, CtKey, CtEntry>,
    /// The same map, for whole-map reads in batches.
    fd: OwnedFd,
}

impl CtMap {
    pub(crate) fn new(map: Map) -> Result<Self, DatapathError> {
        let fd = match &map {
            Map::LruHashMap(data) | Map::HashMap(data) => data.fd().as_fd().try_clone_to_owned(),
            _ => {
                return Err(DatapathError::Syscall(format!(
                    "{} is not a hash map",
                    super::CT_MAP
                )))
            }
        }
        .map_err(|e| DatapathError::Syscall(format!("{}: {e}", super::CT_MAP)))?;
        let map = HashMap::try_from(map).map_err(|e| DatapathError::map(super::CT_MAP, e))?;
        Ok(CtMap { map, fd })
    }

    /// A handle of its own on the pinned map under `root` (for a sweep that
    /// must not hold up the agent's other users of the shared maps).
    pub fn open(root: &crate::BpfRoot) -> Result<Self, DatapathError> {
        Self::new(super::open_pinned(root, super::CT_MAP)?)
    }

    pub fn entries(&self) -> Result<Vec<(CtKey, CtEntry)>, DatapathError> {
        let all = super::batch::dump(self.fd.as_fd())
            .map_err(|e| DatapathError::Syscall(format!("reading {}: {e}", super::CT_MAP)));
        super::ops::record(Ct, MapOp::Dump, all.is_ok());
        all
    }

    /// Deletes expired entries; returns how many went.
    pub fn gc(&mut self) -> Result<usize, DatapathError> {
        let now = monotonic_secs();
        let expired: Vec<CtKey> = self
            .entries()?
            .into_iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(k, _)| k)
            .collect();
        for key in &expired {
            match counted(Ct, MapOp::Delete, self.map.remove(key)) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(DatapathError::map(super::CT_MAP, e)),
            }
        }
        Ok(expired.len())
    }

    /// Removes every entry an address takes part in (endpoint deleted).
    pub fn flush_address(&mut self, ip: [u8; 4]) -> Result<usize, DatapathError> {
        let doomed: Vec<CtKey> = self
            .entries()?
            .into_iter()
            .filter(|(k, _)| k.saddr == ip || k.daddr == ip)
            .map(|(k, _)| k)
            .collect();
        for key in &doomed {
            let _ = counted(Ct, MapOp::Delete, self.map.remove(key));
        }
        Ok(doomed.len())
    }
}

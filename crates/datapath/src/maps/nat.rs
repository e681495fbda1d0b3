//! `cilium_snat_v4_external` (`struct nat4_key` / `struct nat4_entry` in
//! bpf/lib/maps.h): NodePort's source NAT towards other nodes' backends,
//! read for `cilium bpf nat list`. Only the datapath writes it.

use std::os::fd::{AsFd, OwnedFd};

use aya::maps::{Map, MapData};

use crate::{BpfRoot, DatapathError};

pub const NAT_MAP: &str = "cilium_snat_v4_external";

/// Directions as the datapath writes them.
pub const NAT_DIR_OUT: u8 = 0;
pub const NAT_DIR_IN: u8 = 1;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Nat4Key {
    pub saddr: [u8; 4],
    pub daddr: [u8; 4],
    /// Network byte order.
    pub sport: u16,
    /// Network byte order.
    pub dport: u16,
    pub protocol: u8,
    pub dir: u8,
    pub pad: u16,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Nat4Entry {
    pub to_addr: [u8; 4],
    /// Network byte order.
    pub to_port: u16,
    pub rev_nat_index: u16,
}

// SAFETY: plain-old-data with explicit padding, as in bpf/lib/maps.h.
unsafe impl aya::Pod for Nat4Key {}
// SAFETY: as above.
unsafe impl aya::Pod for Nat4Entry {}

/// Every translation the datapath holds now.
pub fn entries(root: &BpfRoot) -> Result<Vec<(Nat4Key, Nat4Entry)>, DatapathError> {
    let fd: OwnedFd = match super::open_pinned(root, NAT_MAP)? {
        Map::LruHashMap(data) | Map::HashMap(data) => fd_of(&data, NAT_MAP)?,
        _ => {
            return Err(DatapathError::Syscall(format!(
                "{NAT_MAP} is not a hash map"
            )))
        }
    };
    super::batch::dump(fd.as_fd())
        .map_err(|e| DatapathError::Syscall(format!("reading {NAT_MAP}: {e}")))
}

fn fd_of(data: &MapData, name: &str) -> Result<OwnedFd, DatapathError> {
    data.fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| DatapathError::Syscall(format!("{name}: {e}")))
}

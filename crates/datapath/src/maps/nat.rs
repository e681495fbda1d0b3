//! `cilium_snat_v4_external` (`struct nat4_key` / `struct nat4_entry` in
//! bpf/lib/maps.h) and its IPv6 twin `cilium_snat_v6_external`: NodePort's
//! source NAT towards other nodes' backends, read for `cilium bpf nat
//! list`. Only the datapath writes them.

use std::os::fd::{AsFd, OwnedFd};

use aya::maps::{Map, MapData};

use crate::{BpfRoot, DatapathError};

pub const NAT_MAP: &str = "cilium_snat_v4_external";
pub const NAT6_MAP: &str = "cilium_snat_v6_external";

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

/// `struct nat6_key`: [`Nat4Key`] with IPv6 addresses.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Nat6Key {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Network byte order.
    pub sport: u16,
    /// Network byte order.
    pub dport: u16,
    pub protocol: u8,
    pub dir: u8,
    pub pad: u16,
}

/// `struct nat6_entry`: [`Nat4Entry`] with an IPv6 address.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Nat6Entry {
    pub to_addr: [u8; 16],
    /// Network byte order.
    pub to_port: u16,
    pub rev_nat_index: u16,
    pub pad: u32,
}

// SAFETY: plain-old-data with explicit padding, as in bpf/lib/maps.h.
unsafe impl aya::Pod for Nat4Key {}
// SAFETY: as above.
unsafe impl aya::Pod for Nat4Entry {}
// SAFETY: as above.
unsafe impl aya::Pod for Nat6Key {}
// SAFETY: as above.
unsafe impl aya::Pod for Nat6Entry {}

/// Every IPv4 translation the datapath holds now.
pub fn entries(root: &BpfRoot) -> Result<Vec<(Nat4Key, Nat4Entry)>, DatapathError> {
    dump(root, NAT_MAP)
}

/// Every IPv6 translation the datapath holds now.
pub fn entries6(root: &BpfRoot) -> Result<Vec<(Nat6Key, Nat6Entry)>, DatapathError> {
    dump(root, NAT6_MAP)
}

fn dump<K: aya::Pod, V: aya::Pod>(
    root: &BpfRoot,
    name: &str,
) -> Result<Vec<(K, V)>, DatapathError> {
    let fd: OwnedFd = match super::open_pinned(root, name)? {
        Map::LruHashMap(data) | Map::HashMap(data) => fd_of(&data, name)?,
        _ => return Err(DatapathError::Syscall(format!("{name} is not a hash map"))),
    };
    super::batch::dump(fd.as_fd())
        .map_err(|e| DatapathError::Syscall(format!("reading {name}: {e}")))
}

fn fd_of(data: &MapData, name: &str) -> Result<OwnedFd, DatapathError> {
    data.fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| DatapathError::Syscall(format!("{name}: {e}")))
}

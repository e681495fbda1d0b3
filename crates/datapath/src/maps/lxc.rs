//! `cilium_lxc` and `cilium_lxc6`: local endpoints by address (`struct endpoint_key` /
//! `struct endpoint_info` in bpf/lib/maps.h).

use std::net::{Ipv4Addr, Ipv6Addr};

use aya::maps::{HashMap, Map, MapData};

use super::ops::{counted, CountedMap::Lxc, MapOp};
use crate::DatapathError;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointKey {
    /// Network byte order.
    pub ip4: [u8; 4],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointInfo {
    pub ifindex: u32,
    pub lxc_id: u16,
    pub flags: u16,
    pub mac: [u8; 6],
    pub node_mac: [u8; 6],
    pub sec_id: u32,
}

// SAFETY: plain #[repr(C)] data without padding holes or pointers.
unsafe impl aya::Pod for EndpointKey {}
unsafe impl aya::Pod for EndpointInfo {}

/// One family's endpoints, by their `N`-byte address: the C key is that
/// address alone, so both maps are this.
struct Endpoints<const N: usize> {
    map: HashMap<MapData, [u8; N], EndpointInfo>,
    name: &'static str,
}

impl<const N: usize> Endpoints<N> {
    fn new(map: Map, name: &'static str) -> Result<Self, DatapathError> {
        let map = HashMap::try_from(map).map_err(|e| DatapathError::map(name, e))?;
        Ok(Endpoints { map, name })
    }

    fn upsert(&mut self, ip: [u8; N], info: &EndpointInfo) -> Result<(), DatapathError> {
        counted(Lxc, MapOp::Update, self.map.insert(ip, *info, 0))
            .map_err(|e| DatapathError::map(self.name, e))
    }

    fn remove(&mut self, ip: [u8; N]) -> Result<(), DatapathError> {
        match counted(Lxc, MapOp::Delete, self.map.remove(&ip)) {
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => Ok(()),
            Err(e) => Err(DatapathError::map(self.name, e)),
        }
    }

    fn entries(&self) -> Result<Vec<([u8; N], EndpointInfo)>, DatapathError> {
        let all: Result<Vec<_>, DatapathError> = self
            .map
            .iter()
            .map(|r| r.map_err(|e| DatapathError::map(self.name, e)))
            .collect();
        super::ops::record(Lxc, MapOp::Dump, all.is_ok());
        all
    }
}

const _: () = assert!(std::mem::size_of::<EndpointKey>() == 4);

pub struct LxcMap(Endpoints<4>);

impl LxcMap {
    pub(crate) fn new(map: Map) -> Result<Self, DatapathError> {
        Ok(LxcMap(Endpoints::new(map, super::LXC_MAP)?))
    }

    pub fn upsert(&mut self, ip: Ipv4Addr, info: &EndpointInfo) -> Result<(), DatapathError> {
        self.0.upsert(ip.octets(), info)
    }

    pub fn remove(&mut self, ip: Ipv4Addr) -> Result<(), DatapathError> {
        self.0.remove(ip.octets())
    }

    pub fn entries(&self) -> Result<Vec<(Ipv4Addr, EndpointInfo)>, DatapathError> {
        let entries = self.0.entries()?;
        Ok(entries.into_iter().map(|(ip, v)| (ip.into(), v)).collect())
    }
}

/// `cilium_lxc6`: local endpoints by IPv6 address (`struct endpoint6_key`,
/// the same `struct endpoint_info`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint6Key {
    pub ip6: [u8; 16],
}

// SAFETY: plain #[repr(C)] data without padding.
unsafe impl aya::Pod for Endpoint6Key {}

const _: () = assert!(std::mem::size_of::<Endpoint6Key>() == 16);

pub struct Lxc6Map(Endpoints<16>);

impl Lxc6Map {
    pub(crate) fn new(map: Map) -> Result<Self, DatapathError> {
        Ok(Lxc6Map(Endpoints::new(map, super::LXC6_MAP)?))
    }

    pub fn upsert(&mut self, ip: Ipv6Addr, info: &EndpointInfo) -> Result<(), DatapathError> {
        self.0.upsert(ip.octets(), info)
    }

    pub fn remove(&mut self, ip: Ipv6Addr) -> Result<(), DatapathError> {
        self.0.remove(ip.octets())
    }

    pub fn entries(&self) -> Result<Vec<(Ipv6Addr, EndpointInfo)>, DatapathError> {
        let entries = self.0.entries()?;
        Ok(entries.into_iter().map(|(ip, v)| (ip.into(), v)).collect())
    }
}

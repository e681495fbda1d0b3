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

pub struct LxcMap(HashMap<MapData, EndpointKey, EndpointInfo>);

impl LxcMap {
    pub(crate) fn new(map: Map) -> Result<Self, DatapathError> {
        let map = HashMap::try_from(map).map_err(|e| DatapathError::map(super::LXC_MAP, e))?;
        Ok(LxcMap(map))
    }

    pub fn upsert(&mut self, ip: Ipv4Addr, info: &EndpointInfo) -> Result<(), DatapathError> {
        let key = EndpointKey { ip4: ip.octets() };
        counted(Lxc, MapOp::Update, self.0.insert(key, *info, 0))
            .map_err(|e| DatapathError::map(super::LXC_MAP, e))
    }

    pub fn remove(&mut self, ip: Ipv4Addr) -> Result<(), DatapathError> {
        let key = EndpointKey { ip4: ip.octets() };
        match counted(Lxc, MapOp::Delete, self.0.remove(&key)) {
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => Ok(()),
            Err(e) => Err(DatapathError::map(super::LXC_MAP, e)),
        }
    }

    pub fn entries(&self) -> Result<Vec<(Ipv4Addr, EndpointInfo)>, DatapathError> {
        let all: Result<Vec<_>, DatapathError> = self
            .0
            .iter()
            .map(|r| {
                r.map(|(k, v)| (Ipv4Addr::from(k.ip4), v))
                    .map_err(|e| DatapathError::map(super::LXC_MAP, e))
            })
            .collect();
        super::ops::record(Lxc, MapOp::Dump, all.is_ok());
        all
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

pub struct Lxc6Map(HashMap<MapData, Endpoint6Key, EndpointInfo>);

impl Lxc6Map {
    pub(crate) fn new(map: Map) -> Result<Self, DatapathError> {
        let map = HashMap::try_from(map).map_err(|e| DatapathError::map(super::LXC6_MAP, e))?;
        Ok(Lxc6Map(map))
    }

    pub fn upsert(&mut self, ip: Ipv6Addr, info: &EndpointInfo) -> Result<(), DatapathError> {
        let key = Endpoint6Key { ip6: ip.octets() };
        counted(Lxc, MapOp::Update, self.0.insert(key, *info, 0))
            .map_err(|e| DatapathError::map(super::LXC6_MAP, e))
    }

    pub fn remove(&mut self, ip: Ipv6Addr) -> Result<(), DatapathError> {
        let key = Endpoint6Key { ip6: ip.octets() };
        match counted(Lxc, MapOp::Delete, self.0.remove(&key)) {
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => Ok(()),
            Err(e) => Err(DatapathError::map(super::LXC6_MAP, e)),
        }
    }

    pub fn entries(&self) -> Result<Vec<(Ipv6Addr, EndpointInfo)>, DatapathError> {
        let all: Result<Vec<_>, DatapathError> = self
            .0
            .iter()
            .map(|r| {
                r.map(|(k, v)| (Ipv6Addr::from(k.ip6), v))
                    .map_err(|e| DatapathError::map(super::LXC6_MAP, e))
            })
            .collect();
        super::ops::record(Lxc, MapOp::Dump, all.is_ok());
        all
    }
}

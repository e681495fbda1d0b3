//! Service load-balancing maps (`struct lb4_*` in bpf/lib/maps.h):
//! `cilium_lb4_services_v2`, `cilium_lb4_backends_v3`,
//! `cilium_lb4_reverse_nat` and the socket LB's `cilium_lb4_reverse_sk`.

use std::net::Ipv4Addr;

use aya::maps::{HashMap, Map, MapData};

use super::ops::{counted, CountedMap, MapOp};
use crate::DatapathError;

pub const SERVICES_MAP: &str = "cilium_lb4_services_v2";
pub const BACKENDS_MAP: &str = "cilium_lb4_backends_v3";
pub const REVERSE_NAT_MAP: &str = "cilium_lb4_reverse_nat";

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lb4Key {
    pub address: [u8; 4],
    /// Network byte order.
    pub dport: u16,
    pub backend_slot: u16,
    pub proto: u8,
    pub scope: u8,
    pub pad: [u8; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lb4Service {
    pub backend_id: u32,
    pub count: u16,
    pub rev_nat_index: u16,
    pub flags: u8,
    pub flags2: u8,
    pub pad: [u8; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lb4Backend {
    pub address: [u8; 4],
    /// Network byte order.
    pub port: u16,
    pub proto: u8,
    pub flags: u8,
    pub cluster_id: u16,
    pub zone: u8,
    pub pad: u8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lb4ReverseNat {
    pub address: [u8; 4],
    /// Network byte order.
    pub port: u16,
    pub pad: u16,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Lb4ReverseSkKey {
    pub cookie: u64,
    pub address: [u8; 4],
    pub port: u16,
    pub pad: u16,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Lb4ReverseSk {
    pub address: [u8; 4],
    pub port: u16,
    pub rev_nat_index: u16,
}

// SAFETY: plain #[repr(C)] data.
unsafe impl aya::Pod for Lb4Key {}
unsafe impl aya::Pod for Lb4Service {}
unsafe impl aya::Pod for Lb4Backend {}
unsafe impl aya::Pod for Lb4ReverseNat {}

/// A service frontend: VIP, port (host order) and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    pub address: Ipv4Addr,
    pub port: u16,
    pub proto: u8,
}

impl Frontend {
    fn key(&self, slot: u16) -> Lb4Key {
        Lb4Key {
            address: self.address.octets(),
            dport: self.port.to_be(),
            backend_slot: slot,
            proto: self.proto,
            scope: 0,
            pad: [0; 2],
        }
    }
}

impl Lb4Backend {
    pub fn new(address: Ipv4Addr, port: u16, proto: u8) -> Self {
        Lb4Backend {
            address: address.octets(),
            port: port.to_be(),
            proto,
            ..Default::default()
        }
    }
}

/// `lb4_service.flags` bits (Cilium's): what kind of frontend a service is.
/// The kinds bpf_host serves to clients outside the cluster.
pub const SVC_FLAG_EXTERNAL_IP: u8 = 1 << 0;
pub const SVC_FLAG_NODEPORT: u8 = 1 << 1;
pub const SVC_FLAG_HOSTPORT: u8 = 1 << 3;
pub const SVC_FLAG_LOADBALANCER: u8 = 1 << 5;

/// The flags of a service of kind `kind` (Cilium's names: `ClusterIP`,
/// `NodePort`, `ExternalIPs`, `LoadBalancer`, `HostPort`, ...).
pub fn service_flags(kind: &str) -> u8 {
    match kind {
        "NodePort" => SVC_FLAG_NODEPORT,
        "ExternalIPs" => SVC_FLAG_EXTERNAL_IP,
        "LoadBalancer" => SVC_FLAG_LOADBALANCER,
        "HostPort" => SVC_FLAG_HOSTPORT,
        _ => 0,
    }
}

/// One service as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub frontend: Frontend,
    pub rev_nat_index: u16,
    /// `SVC_FLAG_*` bits.
    pub flags: u8,
    /// Backend id per slot, slot 1 first.
    pub slots: Vec<u32>,
}

pub struct LbMaps {
    services: HashMap<MapData, Lb4Key, Lb4Service>,
    backends: HashMap<MapData, u32, Lb4Backend>,
    reverse_nat: HashMap<MapData, u16, Lb4ReverseNat>,
}

fn err(map: &str) -> impl Fn(aya::maps::MapError) -> DatapathError + '_ {
    move |e| DatapathError::map(map, e)
}

fn ignore_missing(r: Result<(), aya::maps::MapError>, map: &str) -> Result<(), DatapathError> {
    match r {
        Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
        Err(e) => Err(DatapathError::map(map, e)),
    }
}

impl LbMaps {
    pub(crate) fn new(
        services: Map,
        backends: Map,
        reverse_nat: Map,
    ) -> Result<Self, DatapathError> {
        Ok(LbMaps {
            services: HashMap::try_from(services).map_err(err(SERVICES_MAP))?,
            backends: HashMap::try_from(backends).map_err(err(BACKENDS_MAP))?,
            reverse_nat: HashMap::try_from(reverse_nat).map_err(err(REVERSE_NAT_MAP))?,
        })
    }

    pub fn upsert_backend(&mut self, id: u32, backend: &Lb4Backend) -> Result<(), DatapathError> {
        counted(
            CountedMap::LbBackends,
            MapOp::Update,
            self.backends.insert(id, *backend, 0),
        )
        .map_err(err(BACKENDS_MAP))
    }

    /// Removes a backend no slot names any more; flows still pinned to it
    /// by conntrack pick another backend on their next packet.
    pub fn remove_backend(&mut self, id: u32) -> Result<(), DatapathError> {
        let removed = self.backends.remove(&id);
        ignore_missing(
            counted(CountedMap::LbBackends, MapOp::Delete, removed),
            BACKENDS_MAP,
        )
    }

    /// Writes a service whose backends are already in place. Slots are
    /// written before the count that exposes them, and slots beyond the new
    /// count are removed only after it shrank, so a lookup never lands on a
    /// missing slot.
    pub fn upsert_service(
        &mut self,
        service: &ServiceEntry,
        old_slot_count: usize,
    ) -> Result<(), DatapathError> {
        let f = service.frontend;
        for (i, backend_id) in service.slots.iter().enumerate() {
            let slot = Lb4Service {
                backend_id: *backend_id,
                ..Default::default()
            };
            let written = self.services.insert(f.key(i as u16 + 1), slot, 0);
            counted(CountedMap::LbServices, MapOp::Update, written).map_err(err(SERVICES_MAP))?;
        }
        let nat = Lb4ReverseNat {
            address: f.address.octets(),
            port: f.port.to_be(),
            pad: 0,
        };
        let written = self.reverse_nat.insert(service.rev_nat_index, nat, 0);
        counted(CountedMap::LbReverseNat, MapOp::Update, written).map_err(err(REVERSE_NAT_MAP))?;
        let master = Lb4Service {
            count: service.slots.len() as u16,
            rev_nat_index: service.rev_nat_index,
            flags: service.flags,
            ..Default::default()
        };
        let written = self.services.insert(f.key(0), master, 0);
        counted(CountedMap::LbServices, MapOp::Update, written).map_err(err(SERVICES_MAP))?;
        for slot in service.slots.len() + 1..=old_slot_count {
            self.remove_service_key(&f.key(slot as u16))?;
        }
        Ok(())
    }

    /// Removes a service: its frontend first, so no new flow starts.
    pub fn remove_service(
        &mut self,
        frontend: Frontend,
        rev_nat_index: u16,
        slot_count: usize,
    ) -> Result<(), DatapathError> {
        for slot in 0..=slot_count {
            self.remove_service_key(&frontend.key(slot as u16))?;
        }
        let removed = self.reverse_nat.remove(&rev_nat_index);
        ignore_missing(
            counted(CountedMap::LbReverseNat, MapOp::Delete, removed),
            REVERSE_NAT_MAP,
        )
    }

    fn remove_service_key(&mut self, key: &Lb4Key) -> Result<(), DatapathError> {
        let removed = self.services.remove(key);
        ignore_missing(
            counted(CountedMap::LbServices, MapOp::Delete, removed),
            SERVICES_MAP,
        )
    }

    /// Every service with its slots, as the kernel holds them.
    pub fn services(&self) -> Result<Vec<ServiceEntry>, DatapathError> {
        let mut masters = Vec::new();
        let mut slots = std::collections::HashMap::new();
        for item in self.services.iter() {
            let (key, value) = item
                .inspect_err(|_| super::ops::record(CountedMap::LbServices, MapOp::Dump, false))
                .map_err(err(SERVICES_MAP))?;
            let frontend = Frontend {
                address: Ipv4Addr::from(key.address),
                port: u16::from_be(key.dport),
                proto: key.proto,
            };
            if key.backend_slot == 0 {
                masters.push((frontend, value));
            } else {
                slots.insert((frontend, key.backend_slot), value.backend_id);
            }
        }
        super::ops::record(CountedMap::LbServices, MapOp::Dump, true);
        masters.sort_by_key(|(f, _)| *f);
        Ok(masters
            .into_iter()
            .map(|(frontend, master)| ServiceEntry {
                frontend,
                rev_nat_index: master.rev_nat_index,
                flags: master.flags,
                slots: (1..=master.count)
                    .filter_map(|s| slots.get(&(frontend, s)).copied())
                    .collect(),
            })
            .collect())
    }

    pub fn backend(&self, id: u32) -> Result<Option<Lb4Backend>, DatapathError> {
        match counted(
            CountedMap::LbBackends,
            MapOp::Lookup,
            self.backends.get(&id, 0),
        ) {
            Ok(b) => Ok(Some(b)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(DatapathError::map(BACKENDS_MAP, e)),
        }
    }
}

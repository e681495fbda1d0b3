//! Service load-balancing maps (`struct lb4_*` and `struct lb6_*` in
//! bpf/lib/maps.h): `cilium_lb{4,6}_services_v2`, `cilium_lb{4,6}_backends_v3`,
//! `cilium_lb{4,6}_reverse_nat` and the socket LB's `cilium_lb{4,6}_reverse_sk`.
//! One design for both families (`Family`); a frontend's address picks
//! the maps.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::maps::{HashMap, Map, MapData};

use super::ops::{counted, CountedMap, MapOp};
use crate::DatapathError;

pub const SERVICES_MAP: &str = "cilium_lb4_services_v2";
pub const BACKENDS_MAP: &str = "cilium_lb4_backends_v3";
pub const REVERSE_NAT_MAP: &str = "cilium_lb4_reverse_nat";
pub const SERVICES6_MAP: &str = "cilium_lb6_services_v2";
pub const BACKENDS6_MAP: &str = "cilium_lb6_backends_v3";
pub const REVERSE_NAT6_MAP: &str = "cilium_lb6_reverse_nat";
/// The socket LB's reverse map for IPv6 (IPv4's is `sizes::REVERSE_SK_MAP`).
pub const REVERSE_SK6_MAP: &str = "cilium_lb6_reverse_sk";

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

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lb6Key {
    pub address: [u8; 16],
    /// Network byte order.
    pub dport: u16,
    pub backend_slot: u16,
    pub proto: u8,
    pub scope: u8,
    pub pad: [u8; 2],
}

/// `struct lb6_service`: the IPv4 value's layout.
pub type Lb6Service = Lb4Service;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lb6Backend {
    pub address: [u8; 16],
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
pub struct Lb6ReverseNat {
    pub address: [u8; 16],
    /// Network byte order.
    pub port: u16,
    pub pad: u16,
    pub pad2: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Lb6ReverseSkKey {
    pub cookie: u64,
    pub address: [u8; 16],
    pub port: u16,
    pub pad: u16,
    pub pad2: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Lb6ReverseSk {
    pub address: [u8; 16],
    pub port: u16,
    pub rev_nat_index: u16,
    pub pad: u32,
}

// SAFETY: plain #[repr(C)] data without padding.
unsafe impl aya::Pod for Lb4Key {}
unsafe impl aya::Pod for Lb4Service {}
unsafe impl aya::Pod for Lb4Backend {}
unsafe impl aya::Pod for Lb4ReverseNat {}
unsafe impl aya::Pod for Lb6Key {}
unsafe impl aya::Pod for Lb6Backend {}
unsafe impl aya::Pod for Lb6ReverseNat {}

/// A service frontend: VIP (either family), port (host order) and
/// protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    pub address: IpAddr,
    pub port: u16,
    pub proto: u8,
}

/// A backend as the kernel holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    pub address: IpAddr,
    /// Host order.
    pub port: u16,
    pub proto: u8,
}

impl Lb4Backend {
    pub fn new(address: Ipv4Addr, port: u16, proto: u8) -> Self {
        V4::backend(address, port, proto)
    }
}

/// One address family's map layouts: what differs between the
/// `cilium_lb4_*` and `cilium_lb6_*` maps.
trait Family {
    type Ip: Copy + Into<IpAddr>;
    type Key: aya::Pod + Eq + std::hash::Hash;
    type Backend: aya::Pod;
    type ReverseNat: aya::Pod;
    /// Services, backends and reverse-NAT map names.
    const NAMES: [&'static str; 3];

    fn key(ip: Self::Ip, port: u16, proto: u8, slot: u16) -> Self::Key;
    /// (frontend, slot) of a key.
    fn frontend_of(key: &Self::Key) -> (Frontend, u16);
    fn backend(ip: Self::Ip, port: u16, proto: u8) -> Self::Backend;
    fn backend_of(b: &Self::Backend) -> Backend;
    fn reverse_nat(ip: Self::Ip, port: u16) -> Self::ReverseNat;
}

struct V4;
struct V6;

/// One `impl Family` per address family: the two families' structs have
/// the same fields, their addresses as wide as the family's.
macro_rules! family {
    ($family:ident, $ip:ty, $key:ident, $backend:ident, $reverse_nat:ident, $names:expr) => {
        impl Family for $family {
            type Ip = $ip;
            type Key = $key;
            type Backend = $backend;
            type ReverseNat = $reverse_nat;
            const NAMES: [&'static str; 3] = $names;

            fn key(ip: $ip, port: u16, proto: u8, slot: u16) -> $key {
                $key {
                    address: ip.octets(),
                    dport: port.to_be(),
                    backend_slot: slot,
                    proto,
                    scope: 0,
                    pad: [0; 2],
                }
            }

            fn frontend_of(key: &$key) -> (Frontend, u16) {
                let address = <$ip>::from(key.address).into();
                let (port, proto) = (u16::from_be(key.dport), key.proto);
                (
                    Frontend {
                        address,
                        port,
                        proto,
                    },
                    key.backend_slot,
                )
            }

            fn backend(ip: $ip, port: u16, proto: u8) -> $backend {
                $backend {
                    address: ip.octets(),
                    port: port.to_be(),
                    proto,
                    ..Default::default()
                }
            }

            fn backend_of(b: &$backend) -> Backend {
                let address = <$ip>::from(b.address).into();
                let (port, proto) = (u16::from_be(b.port), b.proto);
                Backend {
                    address,
                    port,
                    proto,
                }
            }

            fn reverse_nat(ip: $ip, port: u16) -> $reverse_nat {
                $reverse_nat {
                    address: ip.octets(),
                    port: port.to_be(),
                    ..Default::default()
                }
            }
        }
    };
}

family!(
    V4,
    Ipv4Addr,
    Lb4Key,
    Lb4Backend,
    Lb4ReverseNat,
    [SERVICES_MAP, BACKENDS_MAP, REVERSE_NAT_MAP]
);
family!(
    V6,
    Ipv6Addr,
    Lb6Key,
    Lb6Backend,
    Lb6ReverseNat,
    [SERVICES6_MAP, BACKENDS6_MAP, REVERSE_NAT6_MAP]
);

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

/// Both families' maps. Backend ids and reverse-NAT indexes are one space:
/// an id lives in the maps of its address's family.
pub struct LbMaps {
    v4: FamilyMaps<V4>,
    v6: FamilyMaps<V6>,
}

struct FamilyMaps<F: Family> {
    services: HashMap<MapData, F::Key, Lb4Service>,
    backends: HashMap<MapData, u32, F::Backend>,
    reverse_nat: HashMap<MapData, u16, F::ReverseNat>,
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
    /// The services, backends and reverse-NAT maps of IPv4, then IPv6.
    pub(crate) fn new(v4: [Map; 3], v6: [Map; 3]) -> Result<Self, DatapathError> {
        Ok(LbMaps {
            v4: FamilyMaps::new(v4)?,
            v6: FamilyMaps::new(v6)?,
        })
    }

    pub fn upsert_backend(
        &mut self,
        id: u32,
        address: IpAddr,
        port: u16,
        proto: u8,
    ) -> Result<(), DatapathError> {
        match address {
            IpAddr::V4(ip) => self.v4.upsert_backend(id, V4::backend(ip, port, proto)),
            IpAddr::V6(ip) => self.v6.upsert_backend(id, V6::backend(ip, port, proto)),
        }
    }

    /// Removes a backend no slot names any more (from whichever family
    /// holds it); flows still pinned to it by conntrack pick another
    /// backend on their next packet.
    pub fn remove_backend(&mut self, id: u32) -> Result<(), DatapathError> {
        if self.v4.backend(id)?.is_some() {
            self.v4.remove_backend(id)
        } else {
            self.v6.remove_backend(id)
        }
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
        match f.address {
            IpAddr::V4(ip) => self.v4.upsert_service(ip, service, old_slot_count),
            IpAddr::V6(ip) => self.v6.upsert_service(ip, service, old_slot_count),
        }
    }

    /// Removes a service: its frontend first, so no new flow starts.
    pub fn remove_service(
        &mut self,
        frontend: Frontend,
        rev_nat_index: u16,
        slot_count: usize,
    ) -> Result<(), DatapathError> {
        match frontend.address {
            IpAddr::V4(ip) => self
                .v4
                .remove_service(ip, frontend, rev_nat_index, slot_count),
            IpAddr::V6(ip) => self
                .v6
                .remove_service(ip, frontend, rev_nat_index, slot_count),
        }
    }

    /// Every service of both families with its slots, as the kernel holds
    /// them; IPv4 first.
    pub fn services(&self) -> Result<Vec<ServiceEntry>, DatapathError> {
        let mut all = self.v4.services()?;
        all.extend(self.v6.services()?);
        Ok(all)
    }

    /// The backend `id`, whichever its family.
    pub fn backend(&self, id: u32) -> Result<Option<Backend>, DatapathError> {
        match self.v4.backend(id)? {
            Some(b) => Ok(Some(b)),
            None => self.v6.backend(id),
        }
    }
}

impl<F: Family> FamilyMaps<F> {
    fn new([services, backends, reverse_nat]: [Map; 3]) -> Result<Self, DatapathError> {
        let [s, b, r] = F::NAMES;
        Ok(FamilyMaps {
            services: HashMap::try_from(services).map_err(err(s))?,
            backends: HashMap::try_from(backends).map_err(err(b))?,
            reverse_nat: HashMap::try_from(reverse_nat).map_err(err(r))?,
        })
    }

    fn upsert_backend(&mut self, id: u32, backend: F::Backend) -> Result<(), DatapathError> {
        counted(
            CountedMap::LbBackends,
            MapOp::Update,
            self.backends.insert(id, backend, 0),
        )
        .map_err(err(F::NAMES[1]))
    }

    fn remove_backend(&mut self, id: u32) -> Result<(), DatapathError> {
        let removed = self.backends.remove(&id);
        ignore_missing(
            counted(CountedMap::LbBackends, MapOp::Delete, removed),
            F::NAMES[1],
        )
    }

    fn upsert_service(
        &mut self,
        ip: F::Ip,
        service: &ServiceEntry,
        old_slot_count: usize,
    ) -> Result<(), DatapathError> {
        let (port, proto) = (service.frontend.port, service.frontend.proto);
        let key = |slot: usize| F::key(ip, port, proto, slot as u16);
        for (i, backend_id) in service.slots.iter().enumerate() {
            let slot = Lb4Service {
                backend_id: *backend_id,
                ..Default::default()
            };
            let written = self.services.insert(key(i + 1), slot, 0);
            counted(CountedMap::LbServices, MapOp::Update, written).map_err(err(F::NAMES[0]))?;
        }
        let nat = F::reverse_nat(ip, port);
        let written = self.reverse_nat.insert(service.rev_nat_index, nat, 0);
        counted(CountedMap::LbReverseNat, MapOp::Update, written).map_err(err(F::NAMES[2]))?;
        let master = Lb4Service {
            count: service.slots.len() as u16,
            rev_nat_index: service.rev_nat_index,
            flags: service.flags,
            ..Default::default()
        };
        let written = self.services.insert(key(0), master, 0);
        counted(CountedMap::LbServices, MapOp::Update, written).map_err(err(F::NAMES[0]))?;
        for slot in service.slots.len() + 1..=old_slot_count {
            self.remove_service_key(&key(slot))?;
        }
        Ok(())
    }

    /// Removes `frontend` (at `ip`, its address) with its slots up to
    /// `slot_count`, then its reverse-NAT entry.
    fn remove_service(
        &mut self,
        ip: F::Ip,
        frontend: Frontend,
        rev_nat_index: u16,
        slot_count: usize,
    ) -> Result<(), DatapathError> {
        let (port, proto) = (frontend.port, frontend.proto);
        for slot in 0..=slot_count {
            self.remove_service_key(&F::key(ip, port, proto, slot as u16))?;
        }
        let removed = self.reverse_nat.remove(&rev_nat_index);
        ignore_missing(
            counted(CountedMap::LbReverseNat, MapOp::Delete, removed),
            F::NAMES[2],
        )
    }

    fn remove_service_key(&mut self, key: &F::Key) -> Result<(), DatapathError> {
        let removed = self.services.remove(key);
        ignore_missing(
            counted(CountedMap::LbServices, MapOp::Delete, removed),
            F::NAMES[0],
        )
    }

    fn services(&self) -> Result<Vec<ServiceEntry>, DatapathError> {
        let mut masters = Vec::new();
        let mut slots = std::collections::HashMap::new();
        for item in self.services.iter() {
            let (key, value) = item
                .inspect_err(|_| super::ops::record(CountedMap::LbServices, MapOp::Dump, false))
                .map_err(err(F::NAMES[0]))?;
            let (frontend, slot) = F::frontend_of(&key);
            if slot == 0 {
                masters.push((frontend, value));
            } else {
                slots.insert((frontend, slot), value.backend_id);
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

    fn backend(&self, id: u32) -> Result<Option<Backend>, DatapathError> {
        match counted(
            CountedMap::LbBackends,
            MapOp::Lookup,
            self.backends.get(&id, 0),
        ) {
            Ok(b) => Ok(Some(F::backend_of(&b))),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(DatapathError::map(F::NAMES[1], e)),
        }
    }
}

//! The node's services: validation of service specs, backend ids shared
//! between services, and each service's slot table (a backend appears in as
//! many slots as its weight; maintenance backends in none). Pure: the
//! daemon writes the result into the datapath.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
};

use serde::{Deserialize, Serialize};

/// Protocol numbers as the datapath keys services.
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// Slots one service may have: the datapath draws among them.
const MAX_SLOTS: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Addr {
    pub ip: IpAddr,
    pub port: u16,
    pub proto: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackendState {
    Active,
    /// Finishes its connections, gets no new ones.
    Maintenance,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    pub addr: Addr,
    pub weight: u16,
    pub state: BackendState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub id: u16,
    pub frontend: Addr,
    pub backends: Vec<Backend>,
    pub kind: String,
    /// The Service's name and namespace, when it has them (flows name it).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

/// What one change means for the kernel.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Backends to write before the service (id, address).
    pub new_backends: Vec<(u32, Addr)>,
    /// Backend ids to remove after the service no longer names them.
    pub removed_backends: Vec<u32>,
    /// Slot count before the change (0 = new service).
    pub old_slot_count: usize,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ServiceTable {
    services: BTreeMap<u16, ServiceRecord>,
    /// Frontend -> service id: uniqueness without a scan.
    #[serde(default)]
    by_frontend: BTreeMap<Addr, u16>,
    /// Backend address -> (id, services using it).
    backend_ids: BTreeMap<Addr, (u32, u32)>,
    next_backend_id: u32,
}

pub fn parse_proto(text: &str) -> Result<u8, String> {
    match text.to_ascii_uppercase().as_str() {
        "" | "TCP" => Ok(TCP),
        "UDP" => Ok(UDP),
        other => Err(format!("unknown protocol {other:?} (expected TCP or UDP)")),
    }
}

pub fn proto_name(proto: u8) -> &'static str {
    if proto == UDP {
        "UDP"
    } else {
        "TCP"
    }
}

/// An address and port as Cilium prints them: `10.96.0.1:80`,
/// `[f00d::1]:80`.
pub fn host_port(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Checks a spec from the API; `path_id` is the id in the URL. A frontend
/// is balanced over backends of its own family: Cilium refuses a mix
/// unless NAT46/64 is on, which this datapath does not do.
pub fn validate(path_id: &str, spec: &api::models::ServiceSpec) -> Result<ServiceRecord, String> {
    let id: u16 = path_id
        .parse()
        .ok()
        .filter(|id| *id != 0)
        .ok_or_else(|| format!("service id {path_id:?} must be a number from 1 to 65535"))?;
    if spec.id != 0 && spec.id != id as u32 {
        return Err(format!(
            "id: {} in the body differs from {id} in the path",
            spec.id
        ));
    }
    let f = &spec.frontend_address;
    let proto = parse_proto(&f.protocol).map_err(|e| format!("frontend-address.protocol: {e}"))?;
    let ip: IpAddr =
        f.ip.parse()
            .map_err(|_| format!("frontend-address.ip: {:?} is not an IP address", f.ip))?;
    if f.port == 0 {
        return Err("frontend-address.port: must be 1-65535".into());
    }
    if spec.backend_addresses.is_empty() {
        return Err("backend-addresses: a service needs at least one backend".into());
    }
    let mut backends = Vec::new();
    for (i, b) in spec.backend_addresses.iter().enumerate() {
        let at = format!("backend-addresses[{i}]");
        let bip: IpAddr =
            b.ip.parse()
                .map_err(|_| format!("{at}.ip: {:?} is not an IP address", b.ip))?;
        if bip.is_ipv4() != ip.is_ipv4() {
            return Err(format!(
                "{at}.ip: {bip} is an {} backend for the {} frontend {ip}: a service's \
                 backends are of its frontend's family (NAT46/64 is not supported)",
                family(bip),
                family(ip),
            ));
        }
        if b.port == 0 {
            return Err(format!("{at}.port: must be 1-65535"));
        }
        let state = match b.state.as_str() {
            "" | "active" => BackendState::Active,
            "maintenance" => BackendState::Maintenance,
            other => {
                return Err(format!(
                    "{at}.state: {other:?} (expected active or maintenance)"
                ))
            }
        };
        let addr = Addr {
            ip: bip,
            port: b.port,
            proto,
        };
        if backends.iter().any(|x: &Backend| x.addr == addr) {
            return Err(format!("{at}: {} is listed twice", host_port(bip, b.port)));
        }
        backends.push(Backend {
            addr,
            weight: b.weight.max(1),
            state,
        });
    }
    Ok(ServiceRecord {
        id,
        frontend: Addr {
            ip,
            port: f.port,
            proto,
        },
        backends,
        kind: if spec.flags.kind.is_empty() {
            "ClusterIP".into()
        } else {
            spec.flags.kind.clone()
        },
        name: spec.flags.name.clone(),
        namespace: spec.flags.namespace.clone(),
    })
}

/// Each active backend with its number of slots: its weight divided by the
/// weights' common divisor.
fn slot_counts(svc: &ServiceRecord) -> impl Iterator<Item = (&Backend, usize)> {
    let active = || {
        svc.backends
            .iter()
            .filter(|b| b.state == BackendState::Active)
    };
    let divisor = active().fold(0, |g, b| gcd(g, b.weight as u32)).max(1);
    active().map(move |b| (b, (b.weight as u32 / divisor) as usize))
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl ServiceTable {
    pub fn get(&self, id: u16) -> Option<&ServiceRecord> {
        self.services.get(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ServiceRecord> {
        self.services.values()
    }

    pub fn backend_id(&self, addr: &Addr) -> Option<u32> {
        self.backend_ids.get(addr).map(|(id, _)| *id)
    }

    /// Backend ids of active backends, each repeated by its weight (reduced
    /// by the weights' common divisor so slot tables stay small).
    pub fn slots(&self, svc: &ServiceRecord) -> Vec<u32> {
        let mut slots = Vec::new();
        for (b, count) in slot_counts(svc) {
            let id = self
                .backend_id(&b.addr)
                .expect("backends of a stored service have ids");
            slots.extend(std::iter::repeat_n(id, count));
        }
        slots.truncate(MAX_SLOTS);
        slots
    }

    /// Adds or updates a service. An id keeps its frontend for life, and a
    /// frontend belongs to one id.
    pub fn upsert(&mut self, svc: ServiceRecord) -> Result<Plan, String> {
        if let Some(old) = self.services.get(&svc.id) {
            if old.frontend != svc.frontend {
                return Err(format!(
                    "service id {} is already registered to frontend {}/{}",
                    svc.id,
                    host_port(old.frontend.ip, old.frontend.port),
                    proto_name(old.frontend.proto)
                ));
            }
        }
        if let Some(other) = self
            .by_frontend
            .get(&svc.frontend)
            .filter(|other| **other != svc.id)
        {
            return Err(format!(
                "frontend {}/{} already belongs to service {other}",
                host_port(svc.frontend.ip, svc.frontend.port),
                proto_name(svc.frontend.proto),
            ));
        }
        // New references first: a backend the update keeps keeps its id, and
        // with it the flows conntrack pinned to it.
        let mut plan = Plan::default();
        for b in &svc.backends {
            match self.backend_ids.get_mut(&b.addr) {
                Some((_, users)) => *users += 1,
                None => {
                    self.next_backend_id += 1;
                    self.backend_ids.insert(b.addr, (self.next_backend_id, 1));
                    plan.new_backends.push((self.next_backend_id, b.addr));
                }
            }
        }
        if let Some(old) = self.services.remove(&svc.id) {
            plan.old_slot_count = self.slots_len_of(&old);
            plan.removed_backends = self.release_backends(&old);
        }
        self.by_frontend.insert(svc.frontend, svc.id);
        self.services.insert(svc.id, svc);
        Ok(plan)
    }

    pub fn delete(&mut self, id: u16) -> Option<(ServiceRecord, Plan)> {
        let old = self.services.remove(&id)?;
        self.by_frontend.remove(&old.frontend);
        let plan = Plan {
            old_slot_count: self.slots_len_of(&old),
            removed_backends: self.release_backends(&old),
            new_backends: Vec::new(),
        };
        Some((old, plan))
    }

    fn slots_len_of(&self, svc: &ServiceRecord) -> usize {
        slot_counts(svc)
            .map(|(_, n)| n)
            .sum::<usize>()
            .min(MAX_SLOTS)
    }

    fn release_backends(&mut self, svc: &ServiceRecord) -> Vec<u32> {
        let mut freed = Vec::new();
        for b in &svc.backends {
            if let Some((id, users)) = self.backend_ids.get_mut(&b.addr) {
                *users -= 1;
                if *users == 0 {
                    freed.push(*id);
                    self.backend_ids.remove(&b.addr);
                }
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::models::{BackendAddress, FrontendAddress, ServiceSpec};

    /// `10.96.0.1:80` or `[f00d::1]:80`; a bad address is kept as text.
    fn split(addr: &str) -> (String, u16) {
        let (ip, port) = addr.rsplit_once(':').unwrap();
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        (ip.into(), port.parse().unwrap())
    }

    fn spec(frontend: &str, backends: &[(&str, u16)]) -> ServiceSpec {
        let (ip, port) = split(frontend);
        ServiceSpec {
            frontend_address: FrontendAddress {
                ip,
                port,
                protocol: "TCP".into(),
            },
            backend_addresses: backends
                .iter()
                .map(|(a, w)| {
                    let (ip, port) = split(a);
                    BackendAddress {
                        ip,
                        port,
                        weight: *w,
                        state: String::new(),
                    }
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn bad_specs_name_the_field() {
        let ok = spec("10.96.0.1:80", &[("10.200.0.5:8080", 0)]);
        assert!(validate("1", &ok).is_ok());
        let cases: Vec<(&str, ServiceSpec, &str)> = vec![
            ("0", ok.clone(), "service id"),
            ("x", ok.clone(), "service id"),
            (
                "1",
                ServiceSpec {
                    frontend_address: FrontendAddress {
                        protocol: "SCTPX".into(),
                        ..ok.frontend_address.clone()
                    },
                    ..ok.clone()
                },
                "protocol",
            ),
            ("1", spec("10.96.0.1:80", &[]), "at least one backend"),
            (
                "1",
                spec("10.96.0:80", &[("10.200.0.5:8080", 0)]),
                "frontend-address.ip",
            ),
            (
                "1",
                spec("10.96.0.1:80", &[("10.200.0.500:8080", 0)]),
                "backend-addresses[0].ip",
            ),
            (
                "1",
                spec(
                    "10.96.0.1:80",
                    &[("10.200.0.5:8080", 0), ("10.200.0.5:8080", 0)],
                ),
                "listed twice",
            ),
        ];
        for (id, s, want) in cases {
            let err = validate(id, &s).unwrap_err();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }

    #[test]
    fn ipv6_frontends_take_ipv6_backends_only() {
        let v6 = validate("3", &spec("[f00d::1]:80", &[("[f00d::a0a:0:0:5]:8080", 0)])).unwrap();
        assert_eq!(v6.frontend.ip, "f00d::1".parse::<IpAddr>().unwrap());
        let mixed = validate("3", &spec("[f00d::1]:80", &[("10.0.0.5:8080", 0)])).unwrap_err();
        assert!(
            mixed.contains("backend-addresses[0].ip: 10.0.0.5 is an IPv4 backend for the IPv6 frontend f00d::1")
                && mixed.contains("NAT46/64"),
            "{mixed}"
        );
        let mixed = validate("4", &spec("10.96.0.1:80", &[("[f00d::5]:80", 0)])).unwrap_err();
        assert!(
            mixed.contains("IPv6 backend for the IPv4 frontend"),
            "{mixed}"
        );
        let twice = validate(
            "5",
            &spec("[f00d::1]:80", &[("[f00d::5]:80", 0), ("[f00d::5]:80", 0)]),
        )
        .unwrap_err();
        assert!(twice.contains("[f00d::5]:80 is listed twice"), "{twice}");
        let mut table = ServiceTable::default();
        table.upsert(v6).unwrap();
        let taken = table
            .upsert(validate("9", &spec("[f00d::1]:80", &[("[f00d::6]:80", 0)])).unwrap())
            .unwrap_err();
        assert!(
            taken.contains("frontend [f00d::1]:80/TCP already belongs to service 3"),
            "{taken}"
        );
    }

    #[test]
    fn weights_become_slots_and_maintenance_gets_none() {
        let mut table = ServiceTable::default();
        let mut s = spec(
            "10.96.0.1:80",
            &[("10.0.0.1:80", 2), ("10.0.0.2:80", 4), ("10.0.0.3:80", 0)],
        );
        s.backend_addresses[2].state = "maintenance".into();
        let svc = validate("7", &s).unwrap();
        let plan = table.upsert(svc.clone()).unwrap();
        assert_eq!(
            plan.new_backends.len(),
            3,
            "maintenance backends keep their entry"
        );
        let slots = table.slots(table.get(7).unwrap());
        assert_eq!(slots.len(), 3, "weights 2:4 reduce to 1:2");
        assert_eq!(
            slots
                .iter()
                .filter(|id| **id == plan.new_backends[1].0)
                .count(),
            2
        );
    }

    #[test]
    fn ids_keep_their_frontend_and_frontends_their_id() {
        let mut table = ServiceTable::default();
        table
            .upsert(validate("1", &spec("10.96.0.1:80", &[("10.0.0.1:80", 1)])).unwrap())
            .unwrap();
        let moved =
            table.upsert(validate("1", &spec("10.96.0.2:80", &[("10.0.0.1:80", 1)])).unwrap());
        assert!(moved.unwrap_err().contains("already registered"));
        let twice =
            table.upsert(validate("2", &spec("10.96.0.1:80", &[("10.0.0.1:80", 1)])).unwrap());
        assert!(twice.unwrap_err().contains("already belongs to service 1"));
        assert_eq!(table.iter().count(), 1, "nothing changed");
    }

    #[test]
    fn shared_backends_live_until_their_last_service_goes() {
        let mut table = ServiceTable::default();
        let a = table
            .upsert(validate("1", &spec("10.96.0.1:80", &[("10.0.0.1:80", 1)])).unwrap())
            .unwrap();
        let b = table
            .upsert(validate("2", &spec("10.96.0.2:80", &[("10.0.0.1:80", 1)])).unwrap())
            .unwrap();
        assert_eq!(a.new_backends.len(), 1);
        assert!(b.new_backends.is_empty(), "the backend is shared");
        assert!(table.delete(1).unwrap().1.removed_backends.is_empty());
        assert_eq!(
            table.delete(2).unwrap().1.removed_backends,
            vec![a.new_backends[0].0]
        );
        // Updating a service to drop one backend frees it.
        table
            .upsert(
                validate(
                    "3",
                    &spec("10.96.0.3:80", &[("10.0.0.1:80", 1), ("10.0.0.2:80", 1)]),
                )
                .unwrap(),
            )
            .unwrap();
        let plan = table
            .upsert(validate("3", &spec("10.96.0.3:80", &[("10.0.0.1:80", 1)])).unwrap())
            .unwrap();
        assert_eq!(plan.old_slot_count, 2);
        assert_eq!(plan.removed_backends.len(), 1);
        assert!(
            plan.new_backends.is_empty(),
            "the kept backend keeps its id"
        );
    }
}

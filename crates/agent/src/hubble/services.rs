//! Service names on flows (Hubble's `source_service` / `destination_service`).
//! A side whose address and port are a service's frontend names it, as
//! Cilium's flows do (a reply after reverse NAT comes from the frontend);
//! a destination that is a backend names the service the connection was
//! load-balanced for, read from its conntrack entry's reverse-NAT index
//! (the service id), so a pod reaching a backend directly names none.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use datapath::maps::{ct::CT_DIR_EGRESS, Ct6Key, CtKey, CtMap};
use hubble::proto::flow::{layer4, Flow, Service};

use crate::daemon::Daemon;

/// How long the view of services is trusted.
const TTL: Duration = Duration::from_secs(2);

/// (address of either family, port, IP protocol).
type Addr = (IpAddr, u16, u8);

#[derive(Default)]
struct Snapshot {
    by_frontend: HashMap<Addr, Service>,
    by_id: HashMap<u16, Service>,
    backends: HashSet<Addr>,
}

pub struct ServiceNamer {
    daemon: std::sync::Arc<Daemon>,
    ct: Option<CtMap>,
    services: Snapshot,
    taken: Option<Instant>,
}

impl ServiceNamer {
    pub fn new(daemon: std::sync::Arc<Daemon>) -> Self {
        let ct = CtMap::open(daemon.bpf_root())
            .map_err(|e| {
                eprintln!("level=warning msg=\"hubble: no conntrack map for service names: {e}\"")
            })
            .ok();
        ServiceNamer {
            daemon,
            ct,
            services: Snapshot::default(),
            taken: None,
        }
    }

    /// Names the services of the flow's sides, where it has any.
    pub fn annotate(&mut self, flow: &mut Flow) {
        if self.taken.is_none_or(|t| t.elapsed() >= TTL) {
            self.services = snapshot(&self.daemon);
            self.taken = Some(Instant::now());
        }
        if self.services.by_id.is_empty() {
            return;
        }
        let Some((src, dst)) = sides(flow) else {
            return;
        };
        flow.source_service = self.services.by_frontend.get(&src).cloned();
        flow.destination_service = match self.services.by_frontend.get(&dst) {
            Some(svc) => Some(svc.clone()),
            None if flow.is_reply != Some(true) && self.services.backends.contains(&dst) => {
                self.balanced_for(src, dst)
            }
            None => None,
        };
    }

    /// The service the connection `src -> dst` (translated) was balanced for.
    fn balanced_for(&self, src: Addr, dst: Addr) -> Option<Service> {
        let (sport, dport, protocol) = (src.1.to_be(), dst.1.to_be(), src.2);
        let ct = self.ct.as_ref()?;
        // Both families' keys have the same fields; only the address width differs.
        macro_rules! egress_key {
            ($key:ident, $s:expr, $d:expr) => {
                $key {
                    saddr: $s.octets(),
                    daddr: $d.octets(),
                    sport,
                    dport,
                    protocol,
                    dir: CT_DIR_EGRESS,
                    pad: 0,
                }
            };
        }
        let entry = match (src.0, dst.0) {
            (IpAddr::V4(s), IpAddr::V4(d)) => ct.get(&egress_key!(CtKey, s, d)),
            (IpAddr::V6(s), IpAddr::V6(d)) => ct.get6(&egress_key!(Ct6Key, s, d)),
            _ => return None,
        }
        .ok()??;
        self.services.by_id.get(&entry.rev_nat_index).cloned()
    }
}

/// The flow's source and destination as (address, port, protocol).
fn sides(flow: &Flow) -> Option<(Addr, Addr)> {
    let ip = flow.ip.as_ref()?;
    let (proto, sport, dport) = match flow.l4.as_ref()?.protocol.as_ref()? {
        layer4::Protocol::Tcp(t) => (6, t.source_port, t.destination_port),
        layer4::Protocol::Udp(u) => (17, u.source_port, u.destination_port),
        _ => return None,
    };
    let port = |p: u32| u16::try_from(p).ok();
    Some((
        (ip.source.parse().ok()?, port(sport)?, proto),
        (ip.destination.parse().ok()?, port(dport)?, proto),
    ))
}

fn ip_protocol(name: &str) -> u8 {
    if name.eq_ignore_ascii_case("UDP") {
        17
    } else {
        6
    }
}

/// Named services only: an unnamed one has nothing to show.
fn snapshot(daemon: &Daemon) -> Snapshot {
    let mut out = Snapshot::default();
    for svc in daemon.service_list() {
        let spec = svc.spec;
        if spec.flags.name.is_empty() {
            continue;
        }
        let named = Service {
            name: spec.flags.name,
            namespace: spec.flags.namespace,
        };
        let proto = ip_protocol(&spec.frontend_address.protocol);
        if let Ok(ip) = spec.frontend_address.ip.parse() {
            out.by_frontend
                .insert((ip, spec.frontend_address.port, proto), named.clone());
        }
        for b in &spec.backend_addresses {
            if let Ok(ip) = b.ip.parse() {
                out.backends.insert((ip, b.port, proto));
            }
        }
        if let Ok(id) = u16::try_from(spec.id) {
            out.by_id.insert(id, named);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubble::proto::flow::{Ip, Layer4, Tcp};

    #[test]
    fn sides_are_address_port_and_protocol_of_tcp_and_udp_flows() {
        let mut flow = Flow {
            ip: Some(Ip {
                source: "10.0.0.5".into(),
                destination: "10.96.0.10".into(),
                ..Default::default()
            }),
            l4: Some(Layer4 {
                protocol: Some(layer4::Protocol::Tcp(Tcp {
                    source_port: 40000,
                    destination_port: 80,
                    flags: None,
                })),
            }),
            ..Default::default()
        };
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(
            sides(&flow),
            Some(((ip("10.0.0.5"), 40000, 6), (ip("10.96.0.10"), 80, 6)))
        );
        flow.ip = Some(Ip {
            source: "f00d::5".into(),
            destination: "fd00:96::1".into(),
            ..Default::default()
        });
        assert_eq!(
            sides(&flow),
            Some(((ip("f00d::5"), 40000, 6), (ip("fd00:96::1"), 80, 6))),
            "IPv6 frontends are named too"
        );
        flow.l4 = Some(Layer4 {
            protocol: Some(layer4::Protocol::IcmPv4(Default::default())),
        });
        assert_eq!(sides(&flow), None);
        assert_eq!((ip_protocol("udp"), ip_protocol("TCP")), (17, 6));
    }
}

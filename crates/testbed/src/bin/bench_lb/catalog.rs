//! The S services both load balancers get: service `id` has VIP
//! 10.96.0.0 + id, port 80, and two backends. The measured service (the
//! last one, id = S) points at the real server's two ports; the others at
//! addresses nobody uses.

use std::net::{Ipv4Addr, SocketAddrV4};

pub const SERVICE_PORT: u16 = 80;
pub const SERVER_PORTS: [u16; 2] = [8080, 8081];
const VIP_BASE: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 0);
/// VIPs of the "add one more" services, away from the S services.
const EXTRA_VIP_BASE: Ipv4Addr = Ipv4Addr::new(10, 127, 0, 0);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDef {
    pub id: u16,
    pub vip: Ipv4Addr,
    pub port: u16,
    pub backends: Vec<SocketAddrV4>,
}

fn offset(base: Ipv4Addr, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + n)
}

/// Service `id` when `last` is the measured one.
pub fn service(id: u16, last: u16, server: Ipv4Addr) -> ServiceDef {
    let backends = if id == last {
        SERVER_PORTS
            .iter()
            .map(|p| SocketAddrV4::new(server, *p))
            .collect()
    } else {
        let k = id as u32 % 4096 + 1;
        let ip = Ipv4Addr::new(10, 195, (k >> 8) as u8, k as u8);
        SERVER_PORTS
            .iter()
            .map(|p| SocketAddrV4::new(ip, *p))
            .collect()
    };
    ServiceDef {
        id,
        vip: offset(VIP_BASE, id as u32),
        port: SERVICE_PORT,
        backends,
    }
}

/// The `n`-th extra service added at size `size` (id size + 1 + n).
pub fn extra(size: u16, n: u16) -> ServiceDef {
    let id = size + 1 + n;
    ServiceDef {
        id,
        vip: offset(EXTRA_VIP_BASE, id as u32),
        port: SERVICE_PORT,
        backends: vec![SocketAddrV4::new(Ipv4Addr::new(10, 195, 255, 1), 8080)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_service_points_at_the_server() {
        let server = Ipv4Addr::new(10, 193, 0, 20);
        let s = service(10_000, 10_000, server);
        assert_eq!(s.vip, Ipv4Addr::new(10, 96, 39, 16));
        assert!(s.backends.iter().all(|b| *b.ip() == server));
        assert!(service(9_999, 10_000, server)
            .backends
            .iter()
            .all(|b| *b.ip() != server));
        assert_ne!(extra(10, 0).vip, service(11, 11, server).vip);
    }
}

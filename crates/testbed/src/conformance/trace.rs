//! `cilium policy trace` for every probe of a case: the agent's explanation
//! must reach the verdict the real packet met. Peers are named as the
//! datapath sees them: pods by endpoint, the node by `reserved:host`'s
//! identity, outside addresses by the identity their family's ipcache gives
//! them (longest prefix match; `reserved:world`, or `reserved:world-ipv6`
//! for IPv6, when none).

use std::net::IpAddr;

use anyhow::{Context, Result};
use api::{BpfMapEntry, Client, TraceFrom, TracePort, TraceSelector, TraceTo};

use super::probe::{Peer, Probe, Proto};

/// Cilium's reserved identities of the node and of the outside world (the
/// IPv6 outside is world-ipv6 in a dual-stack cluster).
const IDENTITY_HOST: u32 = 1;
const IDENTITY_WORLD: u32 = 2;
const IDENTITY_WORLD_IPV6: u32 = 10;
/// ICMP probes are echo requests: the trace's port is the message type.
const ICMP_ECHO_REQUEST: u16 = 8;
const ICMPV6_ECHO_REQUEST: u16 = 128;

/// One side of a traced flow: an endpoint or an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TracePeer {
    Endpoint(u16),
    Identity(u32),
}

/// `(prefix, prefix length, identity)` rows of `cilium_ipcache` and
/// `cilium_ipcache6`.
pub struct Ipcache(Vec<(IpAddr, u8, u32)>);

impl Ipcache {
    pub fn read(client: &Client) -> Result<Ipcache> {
        let mut rows = Vec::new();
        for name in ["cilium_ipcache", "cilium_ipcache6"] {
            let map = client
                .map_get(name)
                .with_context(|| format!("reading {name} for policy trace"))?;
            rows.extend(map.entries.iter().filter_map(|e| match e {
                BpfMapEntry::Ipcache {
                    prefix, identity, ..
                } => {
                    let (addr, len) = prefix.split_once('/')?;
                    Some((addr.parse().ok()?, len.parse().ok()?, *identity))
                }
                _ => None,
            }));
        }
        Ok(Ipcache(rows))
    }

    /// The identity the datapath gives `addr`.
    pub fn identity_of(&self, addr: IpAddr) -> u32 {
        let world = match addr {
            IpAddr::V4(_) => IDENTITY_WORLD,
            IpAddr::V6(_) => IDENTITY_WORLD_IPV6,
        };
        self.0
            .iter()
            .filter(|(prefix, len, _)| contains(*prefix, *len, addr))
            .max_by_key(|(_, len, _)| *len)
            .map_or(world, |(_, _, id)| *id)
    }
}

fn contains(prefix: IpAddr, len: u8, addr: IpAddr) -> bool {
    let (prefix, addr, bits) = match (prefix, addr) {
        (IpAddr::V4(p), IpAddr::V4(a)) => (u128::from(u32::from(p)), u128::from(u32::from(a)), 32),
        (IpAddr::V6(p), IpAddr::V6(a)) => (u128::from(p), u128::from(a), 128),
        _ => return false,
    };
    let len = u32::from(len).min(bits);
    let shift = bits - len;
    let high = |v: u128| v.checked_shr(shift).unwrap_or(0);
    len == 0 || high(prefix) == high(addr)
}

/// Names a peer for the trace: `endpoint` gives a pod's endpoint id,
/// `address` a peer's address.
pub fn peer(
    p: &Peer,
    ipcache: &Ipcache,
    endpoint: impl Fn(&str) -> u16,
    address: impl Fn(&Peer) -> IpAddr,
) -> TracePeer {
    match p {
        Peer::Pod(name) => TracePeer::Endpoint(endpoint(name)),
        Peer::Host => TracePeer::Identity(IDENTITY_HOST),
        Peer::External(_) => TracePeer::Identity(ipcache.identity_of(address(p))),
    }
}

/// The trace's verdict for a probe (sent over IPv6 when `ipv6`):
/// `Ok(true)` when allowed, with the trace's log for the failure message.
pub fn allowed(
    client: &Client,
    from: TracePeer,
    to: TracePeer,
    probe: &Probe,
    port: u16,
    ipv6: bool,
) -> Result<(bool, String)> {
    let (protocol, port) = match (probe.proto, ipv6) {
        (Proto::Tcp, _) => ("TCP", port),
        (Proto::Udp, _) => ("UDP", port),
        (Proto::Icmp, false) => ("ICMP", ICMP_ECHO_REQUEST),
        (Proto::Icmp, true) => ("ICMPV6", ICMPV6_ECHO_REQUEST),
    };
    let (from_identity, from_endpoint) = split(from);
    let (to_identity, to_endpoint) = split(to);
    let selector = TraceSelector {
        from: TraceFrom {
            labels: Vec::new(),
            identity: from_identity,
            endpoint: from_endpoint,
        },
        to: TraceTo {
            labels: Vec::new(),
            identity: to_identity,
            endpoint: to_endpoint,
            dports: vec![TracePort {
                port,
                protocol: protocol.into(),
            }],
        },
        verbose: false,
    };
    let result = client
        .policy_resolve(&selector)
        .with_context(|| format!("policy trace of `{probe}` ({selector:?})"))?;
    Ok((result.verdict == "allowed", result.log))
}

fn split(peer: TracePeer) -> (Option<u32>, Option<u16>) {
    match peer {
        TracePeer::Endpoint(id) => (None, Some(id)),
        TracePeer::Identity(id) => (Some(id), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_unknown_is_world() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let ipcache = Ipcache(vec![
            (ip("192.0.2.0"), 24, 16_777_217),
            (ip("192.0.2.7"), 32, 16_777_218),
            (ip("0.0.0.0"), 0, 2),
            (ip("2001:db8::"), 32, 16_777_219),
            (ip("2001:db8::7"), 128, 16_777_220),
        ]);
        assert_eq!(
            ipcache.identity_of("192.0.2.7".parse().unwrap()),
            16_777_218
        );
        assert_eq!(
            ipcache.identity_of("192.0.2.8".parse().unwrap()),
            16_777_217
        );
        assert_eq!(ipcache.identity_of("198.51.100.1".parse().unwrap()), 2);
        assert_eq!(
            Ipcache(Vec::new()).identity_of("198.51.100.1".parse().unwrap()),
            IDENTITY_WORLD
        );
        // Families never match each other's prefixes; ::/0 is world-ipv6.
        assert_eq!(ipcache.identity_of(ip("2001:db8::7")), 16_777_220);
        assert_eq!(ipcache.identity_of(ip("2001:db8::8")), 16_777_219);
        assert_eq!(ipcache.identity_of(ip("2001:db9::1")), IDENTITY_WORLD_IPV6);
        assert_eq!(
            ipcache.identity_of(ip("::ffff:192.0.2.7")),
            IDENTITY_WORLD_IPV6
        );
    }
}

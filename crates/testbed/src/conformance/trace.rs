//! `cilium policy trace` for every probe of a case: the agent's explanation
//! must reach the verdict the real packet met. Peers are named as the
//! datapath sees them: pods by endpoint, the node by `reserved:host`'s
//! identity, outside addresses by the identity the ipcache gives them
//! (longest prefix match, `reserved:world` when none).

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use api::{BpfMapEntry, Client, TraceFrom, TracePort, TraceSelector, TraceTo};

use super::probe::{Peer, Probe, Proto};

/// Cilium's reserved identities of the node and of the outside world.
const IDENTITY_HOST: u32 = 1;
const IDENTITY_WORLD: u32 = 2;
/// ICMP probes are echo requests: the trace's port is the message type.
const ICMP_ECHO_REQUEST: u16 = 8;

/// One side of a traced flow: an endpoint or an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TracePeer {
    Endpoint(u16),
    Identity(u32),
}

/// `(prefix, prefix length, identity)` rows of `cilium_ipcache`.
pub struct Ipcache(Vec<(Ipv4Addr, u8, u32)>);

impl Ipcache {
    pub fn read(client: &Client) -> Result<Ipcache> {
        let map = client
            .map_get("cilium_ipcache")
            .context("reading cilium_ipcache for policy trace")?;
        let rows = map
            .entries
            .iter()
            .filter_map(|e| match e {
                BpfMapEntry::Ipcache {
                    prefix, identity, ..
                } => {
                    let (addr, len) = prefix.split_once('/')?;
                    Some((addr.parse().ok()?, len.parse().ok()?, *identity))
                }
                _ => None,
            })
            .collect();
        Ok(Ipcache(rows))
    }

    /// The identity the datapath gives `addr`.
    pub fn identity_of(&self, addr: Ipv4Addr) -> u32 {
        self.0
            .iter()
            .filter(|(prefix, len, _)| contains(*prefix, *len, addr))
            .max_by_key(|(_, len, _)| *len)
            .map_or(IDENTITY_WORLD, |(_, _, id)| *id)
    }
}

fn contains(prefix: Ipv4Addr, len: u8, addr: Ipv4Addr) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    };
    u32::from(prefix) & mask == u32::from(addr) & mask
}

/// Names a peer for the trace: `endpoint` gives a pod's endpoint id,
/// `address` a peer's address.
pub fn peer(
    p: &Peer,
    ipcache: &Ipcache,
    endpoint: impl Fn(&str) -> u16,
    address: impl Fn(&Peer) -> Ipv4Addr,
) -> TracePeer {
    match p {
        Peer::Pod(name) => TracePeer::Endpoint(endpoint(name)),
        Peer::Host => TracePeer::Identity(IDENTITY_HOST),
        Peer::External(_) => TracePeer::Identity(ipcache.identity_of(address(p))),
    }
}

/// The trace's verdict for a probe: `Ok(true)` when allowed, with the
/// trace's log for the failure message.
pub fn allowed(
    client: &Client,
    from: TracePeer,
    to: TracePeer,
    probe: &Probe,
    port: u16,
) -> Result<(bool, String)> {
    let (protocol, port) = match probe.proto {
        Proto::Tcp => ("TCP", port),
        Proto::Udp => ("UDP", port),
        Proto::Icmp => ("ICMP", ICMP_ECHO_REQUEST),
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
        let ipcache = Ipcache(vec![
            (Ipv4Addr::new(192, 0, 2, 0), 24, 16_777_217),
            (Ipv4Addr::new(192, 0, 2, 7), 32, 16_777_218),
            (Ipv4Addr::new(0, 0, 0, 0), 0, 2),
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
    }
}

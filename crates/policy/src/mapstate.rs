//! The desired contents of one endpoint's policy map, and the difference to
//! what is installed. Keys mirror the datapath's policy key: peer identity, L4
//! protocol, destination port and direction, with 0 meaning "any".

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_SCTP: u8 = 132;

/// Traffic direction, seen from the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Direction {
    Ingress,
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        })
    }
}

/// One policy map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MapKey {
    /// Peer security identity; 0 = any.
    pub identity: u32,
    /// IANA protocol number; 0 = any.
    pub protocol: u8,
    /// Destination port in host byte order; 0 = any.
    pub dport: u16,
    pub direction: Direction,
}

/// What a matching packet gets: allowed (possibly redirected to a proxy) or denied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MapEntry {
    pub deny: bool,
    /// L7 proxy port to redirect to; 0 = no redirect.
    pub proxy_port: u16,
}

impl MapKey {
    pub fn new(identity: u32, protocol: u8, dport: u16, direction: Direction) -> Self {
        MapKey {
            identity,
            protocol,
            dport,
            direction,
        }
    }
}

impl MapEntry {
    /// Plain allow, no proxy.
    pub fn allow() -> Self {
        MapEntry::default()
    }
}

pub type MapState = BTreeMap<MapKey, MapEntry>;

/// What to write so that `current` becomes `desired`: entries to insert or
/// overwrite, and keys to delete. Both lists are in key order.
pub fn diff(current: &MapState, desired: &MapState) -> (Vec<(MapKey, MapEntry)>, Vec<MapKey>) {
    let upserts = desired
        .iter()
        .filter(|(key, entry)| current.get(key) != Some(entry))
        .map(|(key, entry)| (*key, *entry))
        .collect();
    let deletes = current
        .keys()
        .filter(|key| !desired.contains_key(key))
        .copied()
        .collect();
    (upserts, deletes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_reports_new_changed_and_gone_entries() {
        let kept = MapKey::new(1, 0, 0, Direction::Ingress);
        let changed = MapKey::new(100, PROTO_TCP, 80, Direction::Ingress);
        let gone = MapKey::new(101, PROTO_UDP, 53, Direction::Egress);
        let added = MapKey::new(0, 0, 0, Direction::Egress);
        let redirect = MapEntry {
            deny: false,
            proxy_port: 15001,
        };
        let current: MapState = [
            (kept, MapEntry::allow()),
            (changed, MapEntry::allow()),
            (gone, MapEntry::allow()),
        ]
        .into();
        let desired: MapState = [
            (kept, MapEntry::allow()),
            (changed, redirect),
            (added, MapEntry::allow()),
        ]
        .into();
        let (upserts, deletes) = diff(&current, &desired);
        assert_eq!(
            upserts,
            vec![(added, MapEntry::allow()), (changed, redirect)]
        );
        assert_eq!(deletes, vec![gone]);
        assert_eq!(diff(&desired, &desired), (vec![], vec![]));
    }

    #[test]
    fn keys_order_by_identity_then_protocol_port_direction() {
        let a = MapKey::new(1, 6, 80, Direction::Egress);
        let b = MapKey::new(2, 0, 0, Direction::Ingress);
        assert!(a < b);
        assert!(MapKey::new(1, 6, 80, Direction::Ingress) < a);
    }
}

//! The desired contents of one endpoint's policy map, and the difference to
//! what is installed.
//!
//! The datapath looks keys up in an LPM trie: per peer identity and direction,
//! the protocol, then the leading `port_prefix_len` bits of the destination
//! port. A port range is therefore stored as the minimal set of aligned
//! power-of-two blocks, and deny precedence must survive a longest-prefix
//! lookup: an allow that is as specific as or more specific than a deny of the
//! same identity and direction would be found first, so it is removed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_SCTP: u8 = 132;

/// Bits of a port; a prefix of this length names exactly one port.
pub const PORT_BITS: u8 = 16;

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

/// One policy map key. Canonical form (all constructors keep it): port bits
/// past the prefix are zero, and protocol 0 ("any") has port prefix 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MapKey {
    /// Peer security identity; 0 = any.
    pub identity: u32,
    pub direction: Direction,
    /// IANA protocol number; 0 = any (then the port is any too).
    pub protocol: u8,
    /// Destination port in host byte order (for ICMP: the ICMP type).
    pub dport: u16,
    /// How many leading bits of `dport` matter: 0 = any port, 16 = exactly `dport`.
    pub port_prefix_len: u8,
}

/// What a matching packet gets: allowed (possibly redirected to a proxy) or denied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MapEntry {
    pub deny: bool,
    /// L7 proxy port to redirect to; 0 = no redirect.
    pub proxy_port: u16,
}

fn port_mask(prefix_len: u8) -> u16 {
    match prefix_len {
        0 => 0,
        len => u16::MAX << (PORT_BITS - len.min(PORT_BITS)),
    }
}

impl MapKey {
    /// A key for the leading `prefix_len` bits of `dport`, normalized.
    pub fn with_prefix(
        identity: u32,
        protocol: u8,
        dport: u16,
        prefix_len: u8,
        direction: Direction,
    ) -> Self {
        let prefix_len = if protocol == 0 {
            0
        } else {
            prefix_len.min(PORT_BITS)
        };
        MapKey {
            identity,
            direction,
            protocol,
            dport: dport & port_mask(prefix_len),
            port_prefix_len: prefix_len,
        }
    }

    /// Exactly `port` of `protocol`.
    pub fn port(identity: u32, protocol: u8, port: u16, direction: Direction) -> Self {
        MapKey::with_prefix(identity, protocol, port, PORT_BITS, direction)
    }

    /// Every port of `protocol` (0 = every protocol).
    pub fn any_port(identity: u32, protocol: u8, direction: Direction) -> Self {
        MapKey::with_prefix(identity, protocol, 0, 0, direction)
    }

    /// The pre-LPM form where 0 means "any": `dport` 0 is every port, any other
    /// value exactly that port.
    pub fn new(identity: u32, protocol: u8, dport: u16, direction: Direction) -> Self {
        if dport == 0 {
            MapKey::any_port(identity, protocol, direction)
        } else {
            MapKey::port(identity, protocol, dport, direction)
        }
    }

    /// True when every packet this key matches is also matched by `other`'s
    /// L4 part (identity and direction are not compared).
    pub fn l4_within(&self, other: &MapKey) -> bool {
        if other.protocol == 0 {
            return true;
        }
        self.protocol == other.protocol
            && self.port_prefix_len >= other.port_prefix_len
            && self.dport & port_mask(other.port_prefix_len) == other.dport
    }

    /// True when a packet with this protocol and port matches the key's L4 part.
    pub fn matches_l4(&self, protocol: u8, dport: u16) -> bool {
        self.protocol == 0
            || (self.protocol == protocol && dport & port_mask(self.port_prefix_len) == self.dport)
    }
}

impl MapEntry {
    /// Plain allow, no proxy.
    pub fn allow() -> Self {
        MapEntry::default()
    }

    pub fn deny() -> Self {
        MapEntry {
            deny: true,
            proxy_port: 0,
        }
    }
}

pub type MapState = BTreeMap<MapKey, MapEntry>;

/// The minimal aligned power-of-two blocks covering `first..=last`, as
/// `(start, prefix_len)`; `0..=65535` is the single block `(0, 0)`.
pub fn port_range_prefixes(first: u16, last: u16) -> Vec<(u16, u8)> {
    let mut blocks = Vec::new();
    let (mut start, end) = (u32::from(first), u32::from(last));
    while start <= end {
        // The largest block aligned at `start` that does not run past `end`.
        let mut size: u32 = if start == 0 {
            1 << PORT_BITS
        } else {
            1 << start.trailing_zeros()
        };
        while start + size - 1 > end {
            size >>= 1;
        }
        let prefix_len = PORT_BITS - size.trailing_zeros() as u8;
        blocks.push((start as u16, prefix_len));
        start += size;
    }
    blocks
}

/// Adds an entry; deny wins over allow on the same key, and of two allows the
/// one redirecting to a proxy wins (it is the stricter, L7-enforced one).
pub fn insert(map_state: &mut MapState, key: MapKey, entry: MapEntry) {
    let slot = map_state.entry(key).or_insert(entry);
    if entry.deny || (!slot.deny && slot.proxy_port == 0) {
        *slot = entry;
    }
}

/// Removes every allow that a deny of the same identity and direction covers,
/// so that a longest-prefix lookup cannot find the allow first. Allows of other
/// identities are left alone: the datapath consults the wildcard identity's
/// deny on its own.
pub fn enforce_deny_precedence(map_state: &mut MapState) {
    let denies: Vec<MapKey> = map_state
        .iter()
        .filter(|(_, entry)| entry.deny)
        .map(|(key, _)| *key)
        .collect();
    map_state.retain(|key, entry| {
        entry.deny
            || !denies.iter().any(|deny| {
                deny.identity == key.identity
                    && deny.direction == key.direction
                    && key.l4_within(deny)
            })
    });
}

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
    use super::Direction::*;
    use super::*;

    #[test]
    fn diff_reports_new_changed_and_gone_entries() {
        let kept = MapKey::any_port(1, 0, Ingress);
        let changed = MapKey::port(100, PROTO_TCP, 80, Ingress);
        let gone = MapKey::port(101, PROTO_UDP, 53, Egress);
        let added = MapKey::any_port(0, 0, Egress);
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
    fn constructors_normalize() {
        let key = MapKey::with_prefix(5, PROTO_TCP, 0x1234, 8, Egress);
        assert_eq!((key.dport, key.port_prefix_len), (0x1200, 8));
        let key = MapKey::with_prefix(5, 0, 80, 16, Egress);
        assert_eq!((key.protocol, key.dport, key.port_prefix_len), (0, 0, 0));
        assert_eq!(MapKey::new(5, PROTO_TCP, 0, Egress).port_prefix_len, 0);
        assert_eq!(
            MapKey::new(5, PROTO_TCP, 80, Egress),
            MapKey::port(5, 6, 80, Egress)
        );
        // ICMP echo reply is type 0: an exact key, not "any type".
        assert_eq!(MapKey::port(5, PROTO_ICMP, 0, Egress).port_prefix_len, 16);
    }

    #[test]
    fn port_ranges_become_minimal_aligned_blocks() {
        assert_eq!(port_range_prefixes(80, 80), vec![(80, 16)]);
        assert_eq!(port_range_prefixes(0, 65535), vec![(0, 0)]);
        assert_eq!(port_range_prefixes(8080, 8083), vec![(8080, 14)]);
        assert_eq!(
            port_range_prefixes(80, 90),
            vec![(80, 13), (88, 15), (90, 16)]
        );
        assert_eq!(port_range_prefixes(1, 65535).len(), 16);
        assert_eq!(port_range_prefixes(65535, 65535), vec![(65535, 16)]);
        // Every port of a range is covered exactly once, and nothing else.
        for (first, last) in [(1, 1000), (1023, 1025), (30000, 32767), (5, 65535)] {
            let blocks = port_range_prefixes(first, last);
            for port in 0..=u16::MAX {
                let hits = blocks
                    .iter()
                    .filter(|(start, len)| port & port_mask(*len) == *start)
                    .count();
                let inside = (first..=last).contains(&port);
                assert_eq!(hits, usize::from(inside), "{first}-{last}: {port}");
            }
        }
    }

    #[test]
    fn deny_removes_covered_allows_of_the_same_identity_only() {
        let mut state = MapState::new();
        let allow_80 = MapKey::port(7, PROTO_TCP, 80, Ingress);
        let allow_tcp = MapKey::any_port(7, PROTO_TCP, Ingress);
        let allow_udp = MapKey::port(7, PROTO_UDP, 80, Ingress);
        let other_identity = MapKey::port(8, PROTO_TCP, 80, Ingress);
        let other_direction = MapKey::port(7, PROTO_TCP, 80, Egress);
        for key in [
            allow_80,
            allow_tcp,
            allow_udp,
            other_identity,
            other_direction,
        ] {
            insert(&mut state, key, MapEntry::allow());
        }
        let deny_range = MapKey::with_prefix(7, PROTO_TCP, 64, 10, Ingress);
        insert(&mut state, deny_range, MapEntry::deny());
        insert(
            &mut state,
            MapKey::any_port(0, 0, Ingress),
            MapEntry::deny(),
        );
        enforce_deny_precedence(&mut state);
        assert!(!state.contains_key(&allow_80), "inside the denied block");
        for key in [allow_tcp, allow_udp, other_identity, other_direction] {
            assert!(state.contains_key(&key), "{key:?}");
        }
        // Deny any protocol covers every allow of the identity.
        insert(
            &mut state,
            MapKey::any_port(7, 0, Ingress),
            MapEntry::deny(),
        );
        enforce_deny_precedence(&mut state);
        assert!(!state.contains_key(&allow_tcp) && !state.contains_key(&allow_udp));
    }

    #[test]
    fn deny_wins_on_the_same_key() {
        let key = MapKey::port(7, PROTO_TCP, 80, Ingress);
        let mut state = MapState::new();
        insert(&mut state, key, MapEntry::deny());
        insert(&mut state, key, MapEntry::allow());
        assert_eq!(state[&key], MapEntry::deny());
        let redirect = MapEntry {
            deny: false,
            proxy_port: 4000,
        };
        let other = MapKey::port(8, PROTO_TCP, 80, Ingress);
        insert(&mut state, other, MapEntry::allow());
        insert(&mut state, other, redirect);
        insert(&mut state, other, MapEntry::allow());
        assert_eq!(state[&other], redirect);
    }
}

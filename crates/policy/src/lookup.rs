//! The verdict the datapath reaches for one packet, computed from a map state
//! exactly the way the kernel's LPM lookup does it. Tests use it to assert what
//! happens to concrete packets rather than which keys exist.
//!
//! For the peer's identity, then for the wildcard identity (0): the longest
//! match among that identity's keys (protocol-exact keys by longest port prefix
//! first, then the protocol-any key). A deny from either lookup drops the
//! packet; otherwise an allow from either passes it, the specific identity's
//! entry taking precedence (its proxy port is used).

use crate::mapstate::{Direction, MapEntry, MapKey, MapState, PORT_BITS};

/// Which kind of key decided a verdict (Cilium's policy match types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchType {
    /// Specific identity, protocol and port(s).
    L3L4,
    /// Specific identity, any protocol.
    L3Only,
    /// Any identity, specific protocol and port(s).
    L4Only,
    /// Any identity, any protocol.
    All,
    /// No key matched: default deny.
    None,
}

/// What happens to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verdict {
    pub allowed: bool,
    /// Dropped by a deny entry (rather than by absence of an allow).
    pub denied_by_rule: bool,
    pub match_type: MatchType,
    /// Proxy port of the deciding allow entry; 0 = none.
    pub proxy_port: u16,
}

impl MatchType {
    fn of(key: &MapKey) -> MatchType {
        match (key.identity != 0, key.protocol != 0) {
            (true, true) => MatchType::L3L4,
            (true, false) => MatchType::L3Only,
            (false, true) => MatchType::L4Only,
            (false, false) => MatchType::All,
        }
    }
}

/// The longest-prefix match among the keys of one identity.
fn longest_match(
    state: &MapState,
    identity: u32,
    protocol: u8,
    dport: u16,
    direction: Direction,
) -> Option<(MapKey, MapEntry)> {
    let exact_protocol = (protocol != 0)
        .then(|| {
            (0..=PORT_BITS).rev().find_map(|prefix_len| {
                let key = MapKey::with_prefix(identity, protocol, dport, prefix_len, direction);
                state.get(&key).map(|entry| (key, *entry))
            })
        })
        .flatten();
    exact_protocol.or_else(|| {
        let key = MapKey::any_port(identity, 0, direction);
        state.get(&key).map(|entry| (key, *entry))
    })
}

/// The datapath's verdict for a packet from/to `identity` with this protocol and
/// destination port (for ICMP: the ICMP type) in `direction`.
pub fn lookup(
    state: &MapState,
    identity: u32,
    protocol: u8,
    dport: u16,
    direction: Direction,
) -> Verdict {
    let specific = (identity != 0)
        .then(|| longest_match(state, identity, protocol, dport, direction))
        .flatten();
    let wildcard = longest_match(state, 0, protocol, dport, direction);
    if let Some((key, _)) = [specific, wildcard]
        .into_iter()
        .flatten()
        .find(|(_, entry)| entry.deny)
    {
        return Verdict {
            allowed: false,
            denied_by_rule: true,
            match_type: MatchType::of(&key),
            proxy_port: 0,
        };
    }
    match specific.or(wildcard) {
        Some((key, entry)) => Verdict {
            allowed: true,
            denied_by_rule: false,
            match_type: MatchType::of(&key),
            proxy_port: entry.proxy_port,
        },
        None => Verdict {
            allowed: false,
            denied_by_rule: false,
            match_type: MatchType::None,
            proxy_port: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapstate::{insert, PROTO_TCP, PROTO_UDP};
    use Direction::*;

    fn state(entries: &[(MapKey, MapEntry)]) -> MapState {
        let mut state = MapState::new();
        for (key, entry) in entries {
            insert(&mut state, *key, *entry);
        }
        state
    }

    #[test]
    fn longest_prefix_wins_within_an_identity() {
        let state = state(&[
            (MapKey::any_port(9, 0, Ingress), MapEntry::allow()),
            (
                MapKey::with_prefix(9, PROTO_TCP, 64, 10, Ingress),
                MapEntry::deny(),
            ),
            (
                MapKey::port(9, PROTO_TCP, 80, Ingress),
                MapEntry {
                    deny: false,
                    proxy_port: 1500,
                },
            ),
        ]);
        let verdict = lookup(&state, 9, PROTO_TCP, 80, Ingress);
        assert!(verdict.allowed, "the /16 allow is longer than the /10 deny");
        assert_eq!(
            (verdict.match_type, verdict.proxy_port),
            (MatchType::L3L4, 1500)
        );
        let verdict = lookup(&state, 9, PROTO_TCP, 81, Ingress);
        assert!(!verdict.allowed && verdict.denied_by_rule);
        let verdict = lookup(&state, 9, PROTO_UDP, 81, Ingress);
        assert!(verdict.allowed);
        assert_eq!(verdict.match_type, MatchType::L3Only);
        assert_eq!(
            lookup(&state, 9, PROTO_UDP, 81, Egress).match_type,
            MatchType::None
        );
    }

    #[test]
    fn wildcard_identity_deny_beats_specific_allow() {
        let state = state(&[
            (MapKey::port(9, PROTO_TCP, 80, Egress), MapEntry::allow()),
            (MapKey::any_port(0, PROTO_TCP, Egress), MapEntry::deny()),
            (MapKey::any_port(0, PROTO_UDP, Egress), MapEntry::allow()),
        ]);
        let verdict = lookup(&state, 9, PROTO_TCP, 80, Egress);
        assert!(!verdict.allowed && verdict.denied_by_rule);
        assert_eq!(verdict.match_type, MatchType::L4Only);
        let verdict = lookup(&state, 10, PROTO_UDP, 53, Egress);
        assert!(verdict.allowed);
        assert_eq!(verdict.match_type, MatchType::L4Only);
        let verdict = lookup(&state, 10, 132, 53, Egress);
        assert_eq!(
            verdict,
            Verdict {
                allowed: false,
                denied_by_rule: false,
                match_type: MatchType::None,
                proxy_port: 0
            }
        );
    }

    #[test]
    fn specific_entry_is_preferred_among_allows() {
        let state = state(&[
            (MapKey::any_port(0, 0, Ingress), MapEntry::allow()),
            (
                MapKey::any_port(9, 0, Ingress),
                MapEntry {
                    deny: false,
                    proxy_port: 7,
                },
            ),
        ]);
        let verdict = lookup(&state, 9, PROTO_TCP, 1, Ingress);
        assert_eq!(
            (verdict.match_type, verdict.proxy_port),
            (MatchType::L3Only, 7)
        );
        assert_eq!(
            lookup(&state, 8, PROTO_TCP, 1, Ingress).match_type,
            MatchType::All
        );
    }
}

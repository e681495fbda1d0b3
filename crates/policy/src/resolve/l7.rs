//! L7 redirects of a compiled endpoint policy (Cilium's proxy redirects).
//!
//! A port that some allow element of a direction gives L7 rules becomes a
//! *listener*: every allow key of exactly that port and direction, for the
//! protocols its parser takes (TCP; TCP and UDP for DNS), carries the
//! listener's proxy port, so the datapath hands those connections to the
//! proxy. The proxy then needs, per remote identity, what the union of the
//! allow elements covering the port says: the L7 rules of elements that have
//! them, "everything" for an element without rules (an L4 allow on the same
//! port voids the L7 restriction, as allows are a union).
//!
//! DNS (`rules.dns`) works the same way: the DNS proxy answers a query only
//! when some rule for the querying pod's destination (the DNS server's
//! identity) selects the name, and learns the IPs of the answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::l7::L7Rules;
use crate::labels::Labels;
use crate::mapstate::{Direction, PROTO_TCP, PROTO_UDP};
use crate::ports::PortSpan;
use crate::reserved::IDENTITY_ANY;
use crate::rule::PeerRule;

use super::peers::Peers;
use super::Element;

/// Which L7 protocol the proxy parses on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L7Parser {
    Http,
    Kafka,
    Dns,
}

impl L7Parser {
    /// The parser a rule set asks for; `None` when it names no protocol.
    pub fn of(rules: &L7Rules) -> Option<L7Parser> {
        if rules.http.is_some() {
            Some(L7Parser::Http)
        } else if rules.kafka.is_some() {
            Some(L7Parser::Kafka)
        } else if rules.dns.is_some() {
            Some(L7Parser::Dns)
        } else {
            None
        }
    }

    /// The IP protocols (IANA numbers) a listener of this parser takes on
    /// its port, all on the one proxy port: DNS comes over UDP and TCP.
    pub fn protocols(self) -> &'static [u8] {
        match self {
            L7Parser::Http | L7Parser::Kafka => &[PROTO_TCP],
            L7Parser::Dns => &[PROTO_TCP, PROTO_UDP],
        }
    }
}

/// A port of an endpoint whose allowed connections go through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Listener {
    pub direction: Direction,
    pub port: u16,
    pub parser: L7Parser,
}

/// What one remote identity (0 = every peer) may do on a listener: the rules
/// of one allow element, or everything (`None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedirectPeer {
    pub identity: u32,
    pub rules: Option<L7Rules>,
}

/// A listener with its proxy port and the peers' rules: what the proxy needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    pub listener: Listener,
    pub proxy_port: u16,
    pub peers: Vec<RedirectPeer>,
}

/// The `(port, rules)` an element gives to single ports of a protocol its
/// parser takes (validation refuses L7 rules anywhere else).
pub(super) fn l7_parts(element: &impl PeerRule) -> Vec<(u16, L7Rules)> {
    let mut parts = Vec::new();
    for rule in element.port_rules().into_iter().flatten() {
        let Some(rules) = &rule.rules else { continue };
        let Some(parser) = L7Parser::of(rules) else {
            continue;
        };
        for port in &rule.ports {
            let proxied = port
                .protocol
                .iana_numbers()
                .iter()
                .any(|protocol| parser.protocols().contains(protocol));
            if let (true, Ok(PortSpan::Range(first, last))) = (proxied, port.span()) {
                if first == last {
                    parts.push((first, rules.clone()));
                }
            }
        }
    }
    parts
}

impl Element {
    /// Whether some L4 part allows `port` over one of `protocols`.
    fn covers_port(&self, protocols: &[u8], port: u16) -> bool {
        self.l4.iter().any(|&(protocol, start, prefix_len)| {
            protocols.iter().any(|&wanted| {
                (protocol == 0 || protocol == wanted)
                    && crate::mapstate::MapKey::with_prefix(
                        0,
                        protocol,
                        start,
                        prefix_len,
                        Direction::Ingress,
                    )
                    .matches_l4(wanted, port)
            })
        })
    }

    fn rules_for(&self, port: u16) -> Option<&L7Rules> {
        self.l7
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, rules)| rules)
    }
}

/// Listeners of one direction's elements. When rules disagree on the parser
/// of a port, DNS wins, else the first; `peers` leaves the others out (fail
/// closed: DNS winning keeps their TCP connections at the proxy, which
/// refuses them, and never leaves DNS over UDP unproxied).
pub(super) fn listeners(elements: &[Arc<Element>], direction: Direction) -> Vec<Listener> {
    let mut found: BTreeMap<u16, L7Parser> = BTreeMap::new();
    for element in elements.iter().filter(|e| !e.deny) {
        for (port, rules) in &element.l7 {
            if let Some(parser) = L7Parser::of(rules) {
                let chosen = found.entry(*port).or_insert(parser);
                if parser == L7Parser::Dns {
                    *chosen = parser;
                }
            }
        }
    }
    found
        .into_iter()
        .map(|(port, parser)| Listener {
            direction,
            port,
            parser,
        })
        .collect()
}

/// Who may do what on `listener`, given the known identities.
pub(super) fn peers(
    elements: &[Arc<Element>],
    listener: &Listener,
    identities: &BTreeMap<u32, Labels>,
) -> Vec<RedirectPeer> {
    let mut out = Vec::new();
    for element in elements.iter().filter(|e| !e.deny) {
        if !element.covers_port(listener.parser.protocols(), listener.port) {
            continue;
        }
        let rules = element.rules_for(listener.port);
        if rules.is_some_and(|r| L7Parser::of(r) != Some(listener.parser)) {
            continue;
        }
        let peer = |identity| RedirectPeer {
            identity,
            rules: rules.cloned(),
        };
        match &element.peers {
            Peers::Any => out.push(peer(IDENTITY_ANY)),
            selected => out.extend(
                identities
                    .iter()
                    .filter(|(id, labels)| **id != IDENTITY_ANY && selected.selects(labels))
                    .map(|(id, _)| peer(*id)),
            ),
        }
    }
    out
}

/// The proxy port of every redirected `(direction, protocol, port)`: the
/// caller's proxy port of each listener, for each protocol its parser takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RedirectPorts(BTreeMap<(Direction, u8, u16), u16>);

impl RedirectPorts {
    pub(super) fn new(listeners: &[Listener], ports: &BTreeMap<(Direction, u16), u16>) -> Self {
        let mut redirected = BTreeMap::new();
        for listener in listeners {
            let Some(&proxy_port) = ports.get(&(listener.direction, listener.port)) else {
                continue;
            };
            for &protocol in listener.parser.protocols() {
                redirected.insert((listener.direction, protocol, listener.port), proxy_port);
            }
        }
        RedirectPorts(redirected)
    }

    /// The proxy port of allows of exactly this port, if redirected.
    pub(super) fn get(&self, direction: Direction, protocol: u8, port: u16) -> Option<u16> {
        self.0.get(&(direction, protocol, port)).copied()
    }
}

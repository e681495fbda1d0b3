//! Which rules decided a packet. The datapath reports a verdict and how its
//! key matched (identity, port, match type), never which rule put the key
//! there: map state keys merge every rule's contribution. So the rules are
//! asked one by one: a rule allows (or denies) a packet when its own
//! elements, resolved for the packet's peer identity, give a key the
//! datapath's lookup would match. Several rules may claim the same packet;
//! all of them are named.
//!
//! A packet dropped because no rule allows it (default deny) has no
//! deciding rule: `denied_by` is then empty.

use crate::labels::Labels;
use crate::lookup::lookup;
use crate::mapstate::Direction;
use crate::ports::NamedPorts;
use crate::resolve::{EndpointPolicy, PeerPorts};
use crate::rule::Rule;

/// One packet, as the endpoint's policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// The peer's security identity and its labels.
    pub identity: u32,
    pub labels: &'a Labels,
    pub protocol: u8,
    /// Destination port (for ICMP: the type).
    pub dport: u16,
    pub direction: Direction,
}

/// Positions, among the rules given, of those that decide the packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    /// Rules that on their own allow the packet.
    pub allowed_by: Vec<usize>,
    /// Rules that on their own deny it (deny sections).
    pub denied_by: Vec<usize>,
}

/// Asks each rule of `selecting` (the rules selecting the endpoint, with
/// its container ports `named_ports` and its peers' `peer_ports`) whether
/// it allows or denies `packet`.
pub fn attribute(
    selecting: &[&Rule],
    named_ports: &NamedPorts,
    peer_ports: &PeerPorts,
    packet: &Packet<'_>,
) -> Attribution {
    let mut out = Attribution::default();
    for (position, rule) in selecting.iter().enumerate() {
        let keys = EndpointPolicy::compile_selected(&[rule])
            .with_named_ports(named_ports)
            .with_peer_named_ports(peer_ports)
            .element_keys(packet.identity, packet.labels);
        let verdict = lookup(
            &keys,
            packet.identity,
            packet.protocol,
            packet.dport,
            packet.direction,
        );
        if verdict.denied_by_rule {
            out.denied_by.push(position);
        } else if verdict.allowed {
            out.allowed_by.push(position);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapstate::{PROTO_TCP, PROTO_UDP};
    use crate::parse::parse_rules;

    const RULES: &str = r#"[
      {"endpointSelector": {"matchLabels": {"app": "server"}},
       "labels": ["k8s:policy=web"],
       "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}],
                    "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}]}]},
      {"endpointSelector": {"matchLabels": {"app": "server"}},
       "labels": ["k8s:policy=dns"],
       "ingress": [{"toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}]}]}]},
      {"endpointSelector": {"matchLabels": {"app": "server"}},
       "labels": ["k8s:policy=trusted"],
       "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}]},
      {"endpointSelector": {"matchLabels": {"app": "server"}},
       "labels": ["k8s:policy=no-intruders"],
       "ingressDeny": [{"fromEndpoints": [{"matchLabels": {"app": "intruder"}}]}]}
    ]"#;

    fn labels(text: &str) -> Labels {
        Labels::parse_all(&[text]).unwrap()
    }

    fn who(identity: u32, peer: &Labels, protocol: u8, dport: u16) -> Attribution {
        let rules = parse_rules(RULES).unwrap();
        let refs: Vec<&Rule> = rules.iter().collect();
        attribute(
            &refs,
            &NamedPorts::new(),
            &PeerPorts::default(),
            &Packet {
                identity,
                labels: peer,
                protocol,
                dport,
                direction: Direction::Ingress,
            },
        )
    }

    #[test]
    fn every_rule_that_allows_a_packet_is_named() {
        let client = labels("k8s:app=client");
        // web (L3-L4) and trusted (L3-only) both allow client -> 80.
        assert_eq!(who(1000, &client, PROTO_TCP, 80).allowed_by, [0, 2]);
        // dns allows every peer on UDP 53, trusted the client on anything.
        assert_eq!(who(1000, &client, PROTO_UDP, 53).allowed_by, [1, 2]);
        assert_eq!(who(1000, &client, PROTO_TCP, 443).allowed_by, [2]);
    }

    #[test]
    fn deny_rules_are_named_and_default_deny_names_none() {
        let intruder = labels("k8s:app=intruder");
        let verdict = who(2000, &intruder, PROTO_TCP, 80);
        assert_eq!(verdict.denied_by, [3]);
        assert!(verdict.allowed_by.is_empty());
        // UDP 53 is allowed to any peer by one rule, denied to the intruder
        // by another: both claim it, the datapath drops it.
        let verdict = who(2000, &intruder, PROTO_UDP, 53);
        assert_eq!((verdict.allowed_by, verdict.denied_by), (vec![1], vec![3]));
        let other = labels("k8s:app=other");
        assert_eq!(who(3000, &other, PROTO_TCP, 80), Attribution::default());
    }

    #[test]
    fn egress_is_not_ingress() {
        let rules = parse_rules(RULES).unwrap();
        let refs: Vec<&Rule> = rules.iter().collect();
        let client = labels("k8s:app=client");
        let packet = Packet {
            identity: 1000,
            labels: &client,
            protocol: PROTO_TCP,
            dport: 80,
            direction: Direction::Egress,
        };
        let got = attribute(&refs, &NamedPorts::new(), &PeerPorts::default(), &packet);
        assert_eq!(got, Attribution::default());
    }
}

//! The L4 part of one rule element as policy map key parts: protocol, port
//! block start and port prefix length. ANY expands to TCP, UDP and SCTP (on a
//! port with L7 rules: the protocols its parser takes); port ranges become
//! aligned blocks; ICMP types travel in the port field.

use std::collections::BTreeSet;

use crate::mapstate::{port_range_prefixes, PORT_BITS};
use crate::ports::PortSpan;
use crate::rule::PeerRule;

use super::l7::L7Parser;

/// `(protocol, port, port_prefix_len)`; `(0, 0, 0)` = every protocol and port.
pub(crate) type L4Part = (u8, u16, u8);

/// The L4 parts of an element; every protocol and port when it has neither
/// `toPorts` nor `icmps`.
pub(crate) fn l4_parts(element: &impl PeerRule) -> BTreeSet<L4Part> {
    if !element.has_l4() {
        return BTreeSet::from([(0, 0, 0)]);
    }
    let mut parts = BTreeSet::new();
    for (port, parser) in element.port_rules().into_iter().flatten().flat_map(|rule| {
        let parser = rule.rules.as_ref().and_then(L7Parser::of);
        rule.ports.iter().map(move |port| (port, parser))
    }) {
        // Validation rejects unusable ports before rules get here; skipping keeps
        // a hand-built bad rule from widening the policy.
        let Ok(span) = port.span() else {
            continue;
        };
        // A port with L7 rules is allowed only through the proxy, so only
        // over what its parser takes: ANY with DNS rules is TCP and UDP.
        let proxied = |protocol: &&u8| parser.is_none_or(|p| p.protocols().contains(protocol));
        for &protocol in port.protocol.iana_numbers().iter().filter(proxied) {
            match span {
                PortSpan::Any => {
                    parts.insert((protocol, 0, 0));
                }
                PortSpan::Range(first, last) => {
                    parts.extend(
                        port_range_prefixes(first, last)
                            .into_iter()
                            .map(|(start, len)| (protocol, start, len)),
                    );
                }
            }
        }
    }
    for field in element
        .icmp_rules()
        .into_iter()
        .flatten()
        .flat_map(|rule| &rule.fields)
    {
        if let (Ok(protocol), Ok(icmp_type)) = (field.protocol(), field.type_number()) {
            parts.insert((protocol, u16::from(icmp_type), PORT_BITS));
        }
    }
    parts
}

/// The named ports of an element: `(name, protocol)`, resolved per endpoint
/// (see `EndpointPolicy::with_named_ports`).
pub(crate) fn named_parts(element: &impl PeerRule) -> Vec<(String, crate::ports::Protocol)> {
    element
        .port_rules()
        .into_iter()
        .flatten()
        .flat_map(|rule| &rule.ports)
        .filter_map(|port| Some((port.port_name()?.to_string(), port.protocol)))
        .collect()
}

/// A named port's key part on an endpoint with `ports`: the container port
/// of that name, when its protocol is one the rule names (ANY: any).
pub(crate) fn resolve_named(
    name: &str,
    protocol: crate::ports::Protocol,
    ports: &crate::ports::NamedPorts,
) -> Option<L4Part> {
    let &(container_protocol, port) = ports.get(name)?;
    protocol
        .iana_numbers()
        .contains(&container_protocol)
        .then_some((container_protocol, port, PORT_BITS))
}

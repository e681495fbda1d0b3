//! Resolution: the rules that select an endpoint, turned into that endpoint's
//! policy map state (Cilium's "default" enforcement mode).
//!
//! Per direction:
//! - Enforced iff some selecting rule has a non-empty section for it; otherwise a
//!   single allow-all key (identity 0, any protocol, any port).
//! - Each section element allows peers × ports. Rules are a union of allows.
//! - Ingress always allows the local host (`allow-localhost=always`), so health
//!   checks and probes work under default deny.
//!
//! Peers of an element:
//! - `fromEndpoints`/`toEndpoints` absent: with `toPorts` the element is L4-only and
//!   allows every peer (identity 0); with no `toPorts` either (`ingress: [{}]`) it
//!   allows nothing but still enforces the direction.
//! - An explicit empty list selects no peer (Cilium ≥ 1.15, cilium/cilium#29608).
//! - The empty selector `{}` becomes identity 0 ("any identity"), exactly as Cilium
//!   maps wildcard selectors to the ANY key. That includes reserved identities such
//!   as world and host: outside Kubernetes `fromEndpoints: [{}]` really allows
//!   everything (cilium/cilium#3847). In a namespaced CiliumNetworkPolicy Cilium
//!   first adds a namespace term to the selector, so it is no longer a wildcard —
//!   that translation belongs to the CNP reader, not here.
//! - Other selectors are evaluated against every known identity, including the
//!   reserved ones (`reserved:world`, ...), which are always known.
//!
//! Ports: `toPorts` absent = all ports and protocols (L3-only: protocol 0, port 0);
//! `port: "0"` = every port of that protocol; protocol ANY = TCP, UDP and SCTP.

use std::collections::{BTreeMap, BTreeSet};

use crate::labels::Labels;
use crate::mapstate::{Direction, MapEntry, MapKey, MapState};
use crate::reserved::{reserved_identities, IDENTITY_ANY, IDENTITY_HOST};
use crate::rule::{PeerRule, PortRule, Rule};
use crate::selector::EndpointSelector;

/// An endpoint's resolved policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub map_state: MapState,
    pub ingress_enforced: bool,
    pub egress_enforced: bool,
}

/// Resolves the policy of an endpoint with labels `endpoint`. `rules` may be
/// every rule of the repository (only those selecting the endpoint count);
/// `identities` are the known peer identities and their labels (reserved ones
/// are added when missing).
pub fn resolve(rules: &[&Rule], endpoint: &Labels, identities: &BTreeMap<u32, Labels>) -> Resolved {
    let selecting: Vec<&Rule> = rules
        .iter()
        .copied()
        .filter(|rule| rule.selects(endpoint))
        .collect();
    let mut known = reserved_identities();
    known.extend(
        identities
            .iter()
            .filter(|(id, _)| **id != IDENTITY_ANY)
            .map(|(id, labels)| (*id, labels.clone())),
    );

    let mut map_state = MapState::new();
    let ingress: Vec<_> = selecting
        .iter()
        .filter_map(|rule| rule.ingress.as_deref())
        .flatten()
        .collect();
    let egress: Vec<_> = selecting
        .iter()
        .filter_map(|rule| rule.egress.as_deref())
        .flatten()
        .collect();
    let ingress_enforced = !ingress.is_empty();
    let egress_enforced = !egress.is_empty();

    resolve_direction(&mut map_state, Direction::Ingress, &ingress, &known);
    resolve_direction(&mut map_state, Direction::Egress, &egress, &known);
    if ingress_enforced {
        allow(
            &mut map_state,
            MapKey::new(IDENTITY_HOST, 0, 0, Direction::Ingress),
        );
    }

    Resolved {
        map_state,
        ingress_enforced,
        egress_enforced,
    }
}

/// Adds one direction's keys; an empty element list means "not enforced".
fn resolve_direction<R: PeerRule>(
    map_state: &mut MapState,
    direction: Direction,
    elements: &[&R],
    known: &BTreeMap<u32, Labels>,
) {
    if elements.is_empty() {
        allow(map_state, MapKey::new(IDENTITY_ANY, 0, 0, direction));
        return;
    }
    for element in elements {
        let ports = port_protocols(element.port_rules());
        for identity in peers(*element, known) {
            for &(protocol, dport) in &ports {
                allow(map_state, MapKey::new(identity, protocol, dport, direction));
            }
        }
    }
}

/// Allow keys never overwrite an existing entry, so a deny (coming with deny
/// policies) keeps precedence over any allow.
fn allow(map_state: &mut MapState, key: MapKey) {
    map_state.entry(key).or_insert_with(MapEntry::allow);
}

/// The peer identities an element allows (`IDENTITY_ANY` for every peer).
fn peers(element: &impl PeerRule, known: &BTreeMap<u32, Labels>) -> BTreeSet<u32> {
    let has_ports = element.port_rules().is_some_and(|ports| !ports.is_empty());
    match element.endpoint_selectors() {
        None if has_ports => BTreeSet::from([IDENTITY_ANY]),
        None => BTreeSet::new(),
        Some(selectors) if selectors.iter().any(EndpointSelector::is_wildcard) => {
            BTreeSet::from([IDENTITY_ANY])
        }
        Some(selectors) => known
            .iter()
            .filter(|(_, labels)| selectors.iter().any(|selector| selector.matches(labels)))
            .map(|(id, _)| *id)
            .collect(),
    }
}

/// `(protocol, port)` pairs of an element; `(0, 0)` when it has no L4 part.
fn port_protocols(port_rules: Option<&[PortRule]>) -> BTreeSet<(u8, u16)> {
    let Some(port_rules) = port_rules.filter(|rules| !rules.is_empty()) else {
        return BTreeSet::from([(0, 0)]);
    };
    let mut pairs = BTreeSet::new();
    for port in port_rules.iter().flat_map(|rule| &rule.ports) {
        // Validation rejects unusable ports before rules get here; skipping keeps
        // a hand-built bad rule from widening the policy.
        let Ok(number) = port.port_number() else {
            continue;
        };
        for &protocol in port.protocol.iana_numbers() {
            pairs.insert((protocol, number));
        }
    }
    pairs
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;

//! Resolution: the rules that select an endpoint, turned into that endpoint's
//! policy map state (Cilium's "default" enforcement mode).
//!
//! Per direction:
//! - Enforced iff some selecting rule has a non-empty allow or deny section for
//!   it and does not opt out with `enableDefaultDeny: {<direction>: false}`;
//!   otherwise the direction gets an allow-all key (identity 0, any protocol).
//! - Each element allows (or denies) its peers × its ports. Allows are a union;
//!   deny wins over any allow (see `mapstate::enforce_deny_precedence`).
//! - Ingress always allows the local host (`allow-localhost=always`), so health
//!   checks and probes work under default deny — unless a deny names the host.
//!
//! Peers (see `peers.rs`): no peer field with ports = every peer (identity 0);
//! no peer field and no ports (`ingress: [{}]`) = nobody; an explicit empty
//! list = nobody (Cilium ≥ 1.15, cilium/cilium#29608); `{}` and entity `all` =
//! identity 0, which includes world and host (cilium/cilium#3847; namespaced
//! CiliumNetworkPolicies scope `{}` to their namespace before it gets here).
//! Other selectors are evaluated against every known identity, the reserved
//! ones included. A `toFQDNs` selector selects the identities labelled
//! `fqdn:<selector>`: the IPs learned for names it matches (see `fqdn`).
//!
//! Keys of one identity depend only on that identity's labels, which is what
//! makes incremental updates exact: `EndpointPolicy::identity_keys` is both how
//! `resolve` builds the map state and how `identity_delta` computes a change.

mod l7;
mod peers;
mod ports;
mod selector_cache;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::labels::Labels;
use crate::mapstate::{
    enforce_deny_precedence, insert, Direction, MapEntry, MapKey, MapState, PORT_BITS,
};
use crate::reserved::{reserved_identities, IDENTITY_ANY, IDENTITY_HOST};
use crate::rule::{PeerRule, Rule};

use l7::RedirectPorts;
use peers::Peers;
use ports::{l4_parts, L4Part};

pub use l7::{L7Parser, Listener, Redirect, RedirectPeer};
pub use selector_cache::{CompiledRules, SelectorCache};

/// An endpoint's resolved policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub map_state: MapState,
    pub ingress_enforced: bool,
    pub egress_enforced: bool,
}

/// One rule element, compiled: who × what, allow or deny.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Element {
    peers: Peers,
    l4: Vec<L4Part>,
    /// Single ports with L7 rules (allow elements only).
    l7: Vec<(u16, crate::l7::L7Rules)>,
    /// Port names, until resolved against the endpoint's container ports.
    named: Vec<(String, crate::ports::Protocol)>,
    deny: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct DirectionPolicy {
    enforced: bool,
    /// Shared between the endpoints a rule selects (see `CompiledRules`).
    elements: Vec<Arc<Element>>,
}

/// One rule compiled on its own. An endpoint's policy is the union of those
/// of the rules selecting it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CompiledRule {
    ingress: DirectionPolicy,
    egress: DirectionPolicy,
}

impl CompiledRule {
    fn of(rule: &Rule) -> Self {
        let opt_in = rule.enable_default_deny.unwrap_or_default();
        let mut compiled = CompiledRule::default();
        compiled.ingress.add(
            rule.ingress.as_deref(),
            rule.ingress_deny.as_deref(),
            opt_in.ingress.unwrap_or(true),
        );
        compiled.egress.add(
            rule.egress.as_deref(),
            rule.egress_deny.as_deref(),
            opt_in.egress.unwrap_or(true),
        );
        compiled
    }
}

/// The rules selecting one endpoint, compiled once so that map state keys can
/// be computed per identity (the agent's selector cache: keep one per
/// endpoint, rebuild it when the rules or the endpoint's labels change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointPolicy {
    ingress: DirectionPolicy,
    egress: DirectionPolicy,
    /// Proxy port of each listener, assigned by the caller (see `listeners`).
    proxy_ports: BTreeMap<(Direction, u16), u16>,
    /// The same per redirected protocol (DNS listeners take UDP too).
    redirect_ports: RedirectPorts,
    /// Named ports of the identities egress port names may resolve to
    /// (empty unless an egress element names a port).
    peer_ports: PeerPorts,
}

/// Container port names of each identity's endpoints, for egress rules that
/// name ports: `identity → name → (protocol, port)`.
pub type PeerPorts = Arc<BTreeMap<u32, crate::ports::NamedPorts>>;

impl DirectionPolicy {
    fn add<R: PeerRule>(&mut self, allow: Option<&[R]>, deny: Option<&[R]>, default_deny: bool) {
        let allow = allow.unwrap_or_default();
        let deny = deny.unwrap_or_default();
        if default_deny && !(allow.is_empty() && deny.is_empty()) {
            self.enforced = true;
        }
        let compiled = allow
            .iter()
            .map(|element| (element, false))
            .chain(deny.iter().map(|element| (element, true)))
            .map(|(element, deny)| {
                Arc::new(Element {
                    peers: Peers::of(element),
                    l4: l4_parts(element).into_iter().collect(),
                    named: ports::named_parts(element),
                    l7: if deny {
                        Vec::new()
                    } else {
                        l7::l7_parts(element)
                    },
                    deny,
                })
            });
        self.elements.extend(compiled);
    }

    /// Inserts the element's keys for `identity`. Allows of exactly a
    /// listener's port, over a protocol its parser takes, carry its proxy
    /// port when this element has L7 rules there: as in Cilium, the
    /// redirect is per selector, so an L4-only allow of another peer on
    /// the same port is not proxied (a peer both select is: a redirect
    /// wins the key, and the proxy lets the L4-only peer do anything).
    fn insert_element(
        map_state: &mut MapState,
        element: &Element,
        identity: u32,
        direction: Direction,
        redirect_ports: &RedirectPorts,
        peer_ports: &PeerPorts,
    ) {
        // Egress port names resolve per destination; identity 0 (any
        // peer) takes every number the name has anywhere.
        let named: Vec<L4Part> = match direction {
            Direction::Egress if !element.named.is_empty() => {
                let resolve = |ports: &crate::ports::NamedPorts| -> Vec<L4Part> {
                    element
                        .named
                        .iter()
                        .filter_map(|(name, protocol)| ports::resolve_named(name, *protocol, ports))
                        .collect()
                };
                if identity == IDENTITY_ANY {
                    peer_ports.values().flat_map(resolve).collect()
                } else {
                    peer_ports.get(&identity).map(resolve).unwrap_or_default()
                }
            }
            _ => Vec::new(),
        };
        for &(protocol, port, prefix_len) in element.l4.iter().chain(&named) {
            let key = MapKey::with_prefix(identity, protocol, port, prefix_len, direction);
            let entry = if element.deny {
                MapEntry::deny()
            } else if prefix_len == PORT_BITS && element.l7.iter().any(|(p, _)| *p == port) {
                MapEntry {
                    deny: false,
                    proxy_port: redirect_ports.get(direction, protocol, port).unwrap_or(0),
                }
            } else {
                MapEntry::allow()
            };
            insert(map_state, key, entry);
        }
    }
}

impl EndpointPolicy {
    /// Compiles the rules among `rules` that select `endpoint`.
    pub fn compile(rules: &[&Rule], endpoint: &Labels) -> Self {
        let selecting: Vec<&Rule> = rules
            .iter()
            .copied()
            .filter(|rule| rule.selects(endpoint))
            .collect();
        EndpointPolicy::compile_selected(&selecting)
    }

    /// Compiles rules already known to select the endpoint.
    pub fn compile_selected(rules: &[&Rule]) -> Self {
        let mut policy = EndpointPolicy::default();
        for rule in rules {
            policy.absorb(&CompiledRule::of(rule));
        }
        policy
    }

    /// Adds a selecting rule, sharing its compiled elements.
    fn absorb(&mut self, rule: &CompiledRule) {
        for (mine, theirs) in [
            (&mut self.ingress, &rule.ingress),
            (&mut self.egress, &rule.egress),
        ] {
            mine.enforced |= theirs.enforced;
            mine.elements.extend(theirs.elements.iter().cloned());
        }
    }

    /// This policy on an endpoint with container ports `ports`: ingress
    /// port names become the numbers they name there; a name the endpoint
    /// lacks allows (or denies) nothing. Elements without names stay
    /// shared.
    pub fn with_named_ports(mut self, ports: &crate::ports::NamedPorts) -> Self {
        for element in &mut self.ingress.elements {
            if element.named.is_empty() {
                continue;
            }
            let mut resolved = Element::clone(element);
            resolved.l4.extend(
                element
                    .named
                    .iter()
                    .filter_map(|(name, protocol)| ports::resolve_named(name, *protocol, ports)),
            );
            resolved.l4.sort_unstable();
            resolved.l4.dedup();
            resolved.named.clear();
            *element = Arc::new(resolved);
        }
        self
    }

    /// This policy with the named ports of its possible destinations, for
    /// egress rules that name ports. A policy without such a rule ignores
    /// them (and so compares equal whatever they are).
    pub fn with_peer_named_ports(mut self, ports: &PeerPorts) -> Self {
        if self.egress.elements.iter().any(|e| !e.named.is_empty()) {
            self.peer_ports = ports.clone();
        }
        self
    }

    pub fn ingress_enforced(&self) -> bool {
        self.ingress.enforced
    }

    pub fn egress_enforced(&self) -> bool {
        self.egress.enforced
    }

    fn directions(&self) -> [(&DirectionPolicy, Direction); 2] {
        [
            (&self.ingress, Direction::Ingress),
            (&self.egress, Direction::Egress),
        ]
    }

    /// Keys with identity 0: allow-all of unenforced directions and the
    /// elements that apply to every peer. They do not depend on which
    /// identities exist.
    pub fn wildcard_keys(&self) -> MapState {
        let mut map_state = MapState::new();
        for (policy, direction) in self.directions() {
            if !policy.enforced {
                insert(
                    &mut map_state,
                    MapKey::any_port(IDENTITY_ANY, 0, direction),
                    MapEntry::allow(),
                );
            }
            for element in policy.elements.iter().filter(|e| e.peers == Peers::Any) {
                DirectionPolicy::insert_element(
                    &mut map_state,
                    element,
                    IDENTITY_ANY,
                    direction,
                    &self.redirect_ports,
                    &self.peer_ports,
                );
            }
        }
        enforce_deny_precedence(&mut map_state);
        map_state
    }

    /// Every key of one (non-zero) identity: a pure function of its labels.
    pub fn identity_keys(&self, identity: u32, labels: &Labels) -> MapState {
        let mut map_state = MapState::new();
        if identity == IDENTITY_ANY {
            return map_state;
        }
        for (policy, direction) in self.directions() {
            for element in policy.elements.iter().filter(|e| e.peers.selects(labels)) {
                DirectionPolicy::insert_element(
                    &mut map_state,
                    element,
                    identity,
                    direction,
                    &self.redirect_ports,
                    &self.peer_ports,
                );
            }
        }
        if identity == IDENTITY_HOST && self.ingress.enforced {
            insert(
                &mut map_state,
                MapKey::any_port(IDENTITY_HOST, 0, Direction::Ingress),
                MapEntry::allow(),
            );
        }
        enforce_deny_precedence(&mut map_state);
        map_state
    }

    /// The keys the rules' own elements give one peer identity, both those
    /// naming it and those for every peer (identity 0), without what
    /// resolution adds on its own (allow-all of unenforced directions, the
    /// local host's ingress). With the rules of one rule, this is what that
    /// rule alone allows or denies: see `attribution`.
    pub fn element_keys(&self, identity: u32, labels: &Labels) -> MapState {
        let mut map_state = MapState::new();
        for (policy, direction) in self.directions() {
            for element in &policy.elements {
                let peer = match &element.peers {
                    Peers::Any => IDENTITY_ANY,
                    peers if identity != IDENTITY_ANY && peers.selects(labels) => identity,
                    _ => continue,
                };
                DirectionPolicy::insert_element(
                    &mut map_state,
                    element,
                    peer,
                    direction,
                    &self.redirect_ports,
                    &self.peer_ports,
                );
            }
        }
        enforce_deny_precedence(&mut map_state);
        map_state
    }

    /// The ports whose allowed connections must go through the proxy. The
    /// caller gives each a proxy port with `set_proxy_ports`.
    pub fn listeners(&self) -> Vec<Listener> {
        let mut out = l7::listeners(&self.ingress.elements, Direction::Ingress);
        out.extend(l7::listeners(&self.egress.elements, Direction::Egress));
        out
    }

    /// Proxy ports by listener (direction, port); keys of listeners without
    /// one are not redirected.
    pub fn set_proxy_ports(&mut self, ports: BTreeMap<(Direction, u16), u16>) {
        self.redirect_ports = RedirectPorts::new(&self.listeners(), &ports);
        self.proxy_ports = ports;
    }

    /// Every listener that has a proxy port, with what each known identity
    /// may do on it (reserved identities are added when missing).
    pub fn redirects(&self, identities: &BTreeMap<u32, Labels>) -> Vec<Redirect> {
        let known = with_reserved(identities.clone());
        self.listeners()
            .into_iter()
            .filter_map(|listener| {
                let proxy_port = *self.proxy_ports.get(&(listener.direction, listener.port))?;
                let elements = match listener.direction {
                    Direction::Ingress => &self.ingress.elements,
                    Direction::Egress => &self.egress.elements,
                };
                Some(Redirect {
                    peers: l7::peers(elements, &listener, &known),
                    listener,
                    proxy_port,
                })
            })
            .collect()
    }

    /// The full map state given the known identities (reserved ones are added
    /// when missing; identity 0 is ignored).
    pub fn resolve(&self, identities: &BTreeMap<u32, Labels>) -> Resolved {
        self.resolve_cached(&mut SelectorCache::new(identities.clone()))
    }

    /// `resolve` with selectors evaluated through a cache shared by a batch
    /// of endpoints. Same result as the union of `identity_keys` over the
    /// cache's identities: elements are walked once, each inserting its keys
    /// for the identities its selectors select.
    pub fn resolve_cached(&self, cache: &mut SelectorCache) -> Resolved {
        let mut map_state = self.wildcard_keys();
        for (policy, direction) in self.directions() {
            for element in &policy.elements {
                let Peers::Selected(selectors) = &element.peers else {
                    continue;
                };
                let mut ids: Vec<u32> = Vec::new();
                for selector in selectors {
                    ids.extend_from_slice(cache.select(selector));
                }
                if selectors.len() > 1 {
                    ids.sort_unstable();
                    ids.dedup();
                }
                for identity in ids.into_iter().filter(|id| *id != IDENTITY_ANY) {
                    DirectionPolicy::insert_element(
                        &mut map_state,
                        element,
                        identity,
                        direction,
                        &self.redirect_ports,
                        &self.peer_ports,
                    );
                }
            }
        }
        if self.ingress.enforced && cache.identities().contains_key(&IDENTITY_HOST) {
            insert(
                &mut map_state,
                MapKey::any_port(IDENTITY_HOST, 0, Direction::Ingress),
                MapEntry::allow(),
            );
        }
        enforce_deny_precedence(&mut map_state);
        Resolved {
            map_state,
            ingress_enforced: self.ingress.enforced,
            egress_enforced: self.egress.enforced,
        }
    }

    /// The map change when `identity` (with `labels`) appears (`added`) or
    /// disappears: upserts, deletes. Applying it to the state resolved before
    /// gives the state resolved after. Reserved identities never disappear.
    pub fn identity_delta(
        &self,
        identity: u32,
        labels: &Labels,
        added: bool,
    ) -> (Vec<(MapKey, MapEntry)>, Vec<MapKey>) {
        let keys = self.identity_keys(identity, labels);
        if added {
            (keys.into_iter().collect(), Vec::new())
        } else {
            (Vec::new(), keys.into_keys().collect())
        }
    }
}

/// `identities` without identity 0, plus the reserved ones when missing.
pub(crate) fn with_reserved(mut identities: BTreeMap<u32, Labels>) -> BTreeMap<u32, Labels> {
    identities.remove(&IDENTITY_ANY);
    for (id, labels) in reserved_identities() {
        identities.entry(id).or_insert(labels);
    }
    identities
}

/// Resolves the policy of an endpoint with labels `endpoint`. `rules` may be
/// every rule of the repository (only those selecting the endpoint count);
/// `identities` are the known peer identities and their labels (reserved ones
/// are added when missing).
pub fn resolve(rules: &[&Rule], endpoint: &Labels, identities: &BTreeMap<u32, Labels>) -> Resolved {
    EndpointPolicy::compile(rules, endpoint).resolve(identities)
}

/// `EndpointPolicy::identity_delta` without keeping the compiled policy.
pub fn identity_delta(
    rules: &[&Rule],
    endpoint: &Labels,
    identity: u32,
    labels: &Labels,
    added: bool,
) -> (Vec<(MapKey, MapEntry)>, Vec<MapKey>) {
    EndpointPolicy::compile(rules, endpoint).identity_delta(identity, labels, added)
}

#[cfg(test)]
mod construct_tests;
#[cfg(test)]
mod delta_tests;
#[cfg(test)]
mod fqdn_tests;
#[cfg(test)]
mod ipv6_tests;
#[cfg(test)]
mod l7_tests;
#[cfg(test)]
mod tests;

//! The peers of one rule element: every peer kind (endpoints, entities, CIDRs,
//! CIDR sets, DNS names) becomes selectors over identities, or the any
//! identity. A DNS name selects the identities of the IPs learned for it,
//! which carry its `fqdn:` label.

use crate::cidr::cidr_selector;
use crate::rule::PeerRule;
use crate::selector::EndpointSelector;

/// Who an element applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peers {
    /// Every peer: keys with identity 0.
    Any,
    /// The identities matching any of these selectors (none when empty).
    Selected(Vec<EndpointSelector>),
}

impl Peers {
    pub(crate) fn of(element: &impl PeerRule) -> Peers {
        if !element.has_l3() {
            // No peer field at all: L4-only rules apply to every peer; an empty
            // element (`ingress: [{}]`) applies to nobody.
            return if element.has_l4() {
                Peers::Any
            } else {
                Peers::Selected(Vec::new())
            };
        }
        let selectors: Vec<EndpointSelector> = element
            .endpoint_selectors()
            .into_iter()
            .flatten()
            .cloned()
            .chain(
                element
                    .entities()
                    .into_iter()
                    .flatten()
                    .flat_map(|entity| entity.selectors()),
            )
            .chain(element.cidrs().into_iter().flatten().map(cidr_selector))
            .chain(
                element
                    .cidr_sets()
                    .into_iter()
                    .flatten()
                    .map(|set| set.selector()),
            )
            .chain(
                element
                    .fqdns()
                    .into_iter()
                    .flatten()
                    .map(|selector| selector.selector()),
            )
            .collect();
        // `{}` and the `all` entity select every identity, known or not yet.
        if selectors.iter().any(EndpointSelector::is_wildcard) {
            Peers::Any
        } else {
            Peers::Selected(selectors)
        }
    }

    /// Whether an identity with these labels is one of the selected peers
    /// (never true for `Any`, whose keys use identity 0 instead).
    pub(crate) fn selects(&self, labels: &crate::labels::Labels) -> bool {
        match self {
            Peers::Any => false,
            Peers::Selected(selectors) => selectors.iter().any(|selector| selector.matches(labels)),
        }
    }
}

//! DNS-aware policy's agent side: the names endpoints resolved (through
//! the DNS proxy) and which `toFQDNs` selectors claim the IPs they got.
//! An IP claimed by selectors gets a node-local identity labelled with them
//! (and with its CIDR labels), which the policy maps and the ipcache learn
//! before the DNS answer reaches the pod. Pure: the daemon does the IO.

pub mod cache;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use policy::fqdn::{FqdnMatcher, FqdnSelector};
use policy::{Ipv4Cidr, Labels};

pub use cache::{FqdnCache, Limits, Lookup, Stats};

/// The rules' `toFQDNs` selectors, compiled once per policy change.
#[derive(Debug, Default, Clone)]
pub struct Selectors(Vec<(FqdnSelector, FqdnMatcher)>);

impl Selectors {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn new(selectors: impl IntoIterator<Item = FqdnSelector>) -> Self {
        Selectors(
            selectors
                .into_iter()
                .map(|s| {
                    let matcher = s.matcher();
                    (s, matcher)
                })
                .collect(),
        )
    }

    /// The selectors matching any of `names`.
    fn claiming<'a>(&self, names: impl Iterator<Item = &'a str> + Clone) -> Vec<&FqdnSelector> {
        self.0
            .iter()
            .filter(|(_, m)| names.clone().any(|name| m.matches(name)))
            .map(|(s, _)| s)
            .collect()
    }
}

/// The labels each learned IP (of `only`, when given) should carry: only
/// IPs some selector claims. Besides the selectors' `fqdn:` labels, the IP
/// keeps the `cidr:` labels of every rule prefix containing it, so
/// `toCIDR` rules go on matching it once its /32 has an identity of its
/// own.
pub fn wanted_labels(
    cache: &FqdnCache,
    selectors: &Selectors,
    rule_prefixes: &BTreeSet<Ipv4Cidr>,
    only: Option<&BTreeSet<IpAddr>>,
) -> BTreeMap<IpAddr, Labels> {
    cache
        .names_by_ip(only)
        .into_iter()
        .filter_map(|(ip, names)| {
            let claiming = selectors.claiming(names.iter().copied());
            if claiming.is_empty() {
                return None;
            }
            let mut labels = policy::fqdn::fqdn_identity_labels(ip, claiming);
            // The rules' prefixes are IPv4 ones (IPv6 addresses learned
            // carry their own /128 labels only).
            if let IpAddr::V4(v4) = ip {
                for prefix in rule_prefixes.iter().filter(|p| p.contains_addr(v4)) {
                    labels.insert(prefix.label());
                }
            }
            Some((ip, labels))
        })
        .collect()
}

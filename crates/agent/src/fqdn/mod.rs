//! DNS-aware policy's agent side: the names endpoints resolved (through
//! the DNS proxy) and which `toFQDNs` selectors claim the IPs they got.
//! An IP claimed by selectors gets a node-local identity labelled with them
//! (and with its CIDR labels), which the policy maps and the ipcache learn
//! before the DNS answer reaches the pod. Pure: the daemon does the IO.

pub mod cache;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use policy::fqdn::{FqdnMatcher, FqdnSelector};
use policy::{Cidr, Labels};

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
    rule_prefixes: &BTreeSet<Cidr>,
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
            for prefix in rule_prefixes.iter().filter(|p| p.contains_ip(ip)) {
                labels.insert(prefix.label());
            }
            Some((ip, labels))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_ips_keep_the_labels_of_rule_prefixes_of_their_family() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mut cache = FqdnCache::default();
        let limits = Limits {
            min_ttl: 0,
            max_ips_per_name: 10,
        };
        cache.record(1, "a.test", &[v4, v6], 60, 100, limits);
        let selectors = Selectors::new([FqdnSelector {
            match_name: Some("a.test".into()),
            match_pattern: None,
        }]);
        let prefixes: BTreeSet<Cidr> = ["192.0.2.0/24", "2001:db8::/32", "10.0.0.0/8"]
            .iter()
            .map(|text| text.parse().unwrap())
            .collect();
        let wanted = wanted_labels(&cache, &selectors, &prefixes, None);
        let has = |ip: &IpAddr, prefix: &str| {
            let label = prefix.parse::<Cidr>().unwrap().label();
            wanted[ip].iter().any(|l| *l == label)
        };
        assert!(has(&v4, "192.0.2.0/24") && !has(&v4, "2001:db8::/32"));
        assert!(has(&v6, "2001:db8::/32") && !has(&v6, "192.0.2.0/24"));
        assert!(!has(&v4, "10.0.0.0/8") && !has(&v6, "10.0.0.0/8"));
    }
}

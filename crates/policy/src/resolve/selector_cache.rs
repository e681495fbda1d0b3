//! Cilium's selector cache, for one batch of resolutions: each distinct
//! selector is evaluated against the known identities once, however many
//! rule elements and endpoints use it (through an index on label key and
//! value); and rules are compiled once and grouped by `endpointSelector`, so
//! an endpoint's policy costs one evaluation per distinct selector and
//! shares its compiled elements with every other endpoint the rules select.

use std::collections::{BTreeMap, HashMap};

use crate::cidr::{Cidr, Ipv4Cidr, Ipv6Cidr, SOURCE_CIDR};
use crate::labels::Labels;
use crate::rule::Rule;
use crate::selector::{EndpointSelector, IndexHint};

use super::{CompiledRule, EndpointPolicy};

/// The identities each selector selects, computed on first use.
pub struct SelectorCache {
    identities: BTreeMap<u32, Labels>,
    /// (label key, value) -> identities holding such a label, any source
    /// (`cidr:` labels are in `prefixes` instead).
    by_label: HashMap<(String, String), Vec<u32>>,
    /// The prefix of every `cidr:` label and its identity, in address order:
    /// the identities inside a prefix are one run of it.
    prefixes: Vec<(Ipv4Cidr, u32)>,
    /// The same for IPv6 `cidr:` labels (none until the datapath has IPv6,
    /// so a plain list).
    prefixes_v6: Vec<(Ipv6Cidr, u32)>,
    selected: HashMap<EndpointSelector, Vec<u32>>,
}

impl SelectorCache {
    /// A cache over `identities` (reserved ones added when missing,
    /// identity 0 ignored).
    pub fn new(identities: BTreeMap<u32, Labels>) -> Self {
        let identities = super::with_reserved(identities);
        let mut by_label: HashMap<(String, String), Vec<u32>> = HashMap::new();
        let mut prefixes = Vec::new();
        let mut prefixes_v6 = Vec::new();
        for (id, labels) in &identities {
            for label in labels.iter() {
                if label.source == SOURCE_CIDR {
                    if let Ok(prefix) = label.key.parse::<Ipv4Cidr>() {
                        prefixes.push((prefix, *id));
                        continue;
                    }
                    if let Some(prefix) = Ipv6Cidr::from_label_key(&label.key) {
                        prefixes_v6.push((prefix, *id));
                        continue;
                    }
                }
                by_label
                    .entry((label.key.clone(), label.value.clone()))
                    .or_default()
                    .push(*id);
            }
        }
        prefixes.sort_unstable();
        SelectorCache {
            identities,
            by_label,
            prefixes,
            prefixes_v6,
            selected: HashMap::new(),
        }
    }

    /// Identities of prefixes inside `outer`, ascending.
    fn within(&self, outer: Ipv4Cidr) -> Vec<u32> {
        let start = self
            .prefixes
            .partition_point(|(p, _)| p.addr() < outer.addr());
        let mut ids: Vec<u32> = self.prefixes[start..]
            .iter()
            .take_while(|(p, _)| outer.contains_addr(p.addr()))
            .filter(|(p, _)| outer.contains(p))
            .map(|(_, id)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Identities of IPv6 prefixes inside `outer`, ascending.
    fn within_v6(&self, outer: Ipv6Cidr) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .prefixes_v6
            .iter()
            .filter(|(p, _)| outer.contains(p))
            .map(|(_, id)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The known identities and their labels.
    pub fn identities(&self) -> &BTreeMap<u32, Labels> {
        &self.identities
    }

    /// Identities matching `selector`, in ascending order.
    pub fn select(&mut self, selector: &EndpointSelector) -> &[u32] {
        if !self.selected.contains_key(selector) {
            let matches = |id: &u32| self.identities.get(id).is_some_and(|l| selector.matches(l));
            let mut ids: Vec<u32> = match selector.index_hint() {
                Some(IndexHint::Label(key, value)) => self
                    .by_label
                    .get(&(key.to_string(), value.to_string()))
                    .map(|candidates| candidates.iter().copied().filter(matches).collect())
                    .unwrap_or_default(),
                Some(IndexHint::Within(Cidr::V4(prefix))) => {
                    self.within(prefix).into_iter().filter(matches).collect()
                }
                Some(IndexHint::Within(Cidr::V6(prefix))) => {
                    self.within_v6(prefix).into_iter().filter(matches).collect()
                }
                None => self.identities.keys().copied().filter(matches).collect(),
            };
            ids.dedup();
            self.selected.insert(selector.clone(), ids);
        }
        &self.selected[selector]
    }
}

/// Every rule of a repository compiled once, grouped by `endpointSelector`.
/// Rebuild it when the rules change.
#[derive(Debug, Default)]
pub struct CompiledRules {
    groups: Vec<(EndpointSelector, Vec<usize>)>,
    rules: Vec<CompiledRule>,
}

impl CompiledRules {
    pub fn new(rules: &[Rule]) -> Self {
        let mut index: HashMap<&EndpointSelector, usize> = HashMap::new();
        let mut groups: Vec<(EndpointSelector, Vec<usize>)> = Vec::new();
        for (position, rule) in rules.iter().enumerate() {
            let group = *index.entry(&rule.endpoint_selector).or_insert_with(|| {
                groups.push((rule.endpoint_selector.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[group].1.push(position);
        }
        CompiledRules {
            groups,
            rules: rules.iter().map(CompiledRule::of).collect(),
        }
    }

    /// The policy of an endpoint with these labels: the rules selecting it,
    /// in import order.
    pub fn policy_for(&self, endpoint: &Labels) -> EndpointPolicy {
        let mut positions: Vec<usize> = self
            .groups
            .iter()
            .filter(|(selector, _)| selector.matches(endpoint))
            .flat_map(|(_, rules)| rules.iter().copied())
            .collect();
        positions.sort_unstable();
        let mut policy = EndpointPolicy::default();
        for position in positions {
            policy.absorb(&self.rules[position]);
        }
        policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cidr::{cidr_identity_labels, cidr_selector, CidrRule};

    fn prefix(text: &str) -> Ipv4Cidr {
        text.parse().unwrap()
    }

    fn any(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn cidr_selectors_select_the_identities_inside_their_prefix() {
        let identities: BTreeMap<u32, Labels> = [
            (16_777_217, "10.1.0.0/16"),
            (16_777_218, "10.1.2.3/32"),
            (16_777_219, "10.96.0.0/12"),
            (16_777_220, "11.0.0.1/32"),
            (16_777_221, "9.255.255.255/32"),
        ]
        .into_iter()
        .map(|(id, p)| (id, cidr_identity_labels(prefix(p))))
        .chain([(1_000, Labels::parse_all(&["k8s:app=web"]).unwrap())])
        .collect();
        let mut cache = SelectorCache::new(identities);
        assert_eq!(
            cache.select(&cidr_selector(&any("10.0.0.0/8"))),
            [16_777_217, 16_777_218, 16_777_219]
        );
        assert_eq!(
            cache.select(&cidr_selector(&any("10.1.0.0/16"))),
            [16_777_217, 16_777_218]
        );
        assert_eq!(
            cache.select(&cidr_selector(&any("10.1.2.0/24"))),
            [16_777_218]
        );
        let with_hole = CidrRule {
            cidr: any("10.0.0.0/8"),
            except: vec![any("10.96.0.0/12")],
        };
        assert_eq!(
            cache.select(&with_hole.selector()),
            [16_777_217, 16_777_218]
        );
        // 0.0.0.0/0 is the world: its identity and every CIDR identity.
        let world = cache.select(&cidr_selector(&any("0.0.0.0/0"))).to_vec();
        assert!(world.contains(&crate::reserved::IDENTITY_WORLD));
        assert!(world.contains(&16_777_220) && world.contains(&16_777_221));
        assert!(!world.contains(&1_000));
    }

    #[test]
    fn ipv6_selectors_use_their_own_index_and_never_select_ipv4() {
        // No IPv6 identity exists while the datapath is IPv4-only; this one
        // stands for what IPv6 CIDR identities will carry.
        let v6 = |text: &str| {
            let prefix: Ipv6Cidr = text.parse().unwrap();
            [prefix.label()].into_iter().collect::<Labels>()
        };
        let identities: BTreeMap<u32, Labels> = [
            (16_777_217, cidr_identity_labels(prefix("10.1.0.0/16"))),
            (16_777_218, v6("2001:db8:1::/48")),
            (16_777_219, v6("2001:db9::1")),
        ]
        .into_iter()
        .collect();
        let mut cache = SelectorCache::new(identities);
        assert_eq!(
            cache.select(&cidr_selector(&any("2001:db8::/32"))),
            [16_777_218]
        );
        assert_eq!(
            cache.select(&cidr_selector(&any("2001:db9::1"))),
            [16_777_219]
        );
        assert!(cache
            .select(&cidr_selector(&any("2001:db8:2::/48")))
            .is_empty());
        // ::/0 is reserved:world-ipv6: identity 10 (the identities above
        // have their prefix labels only).
        assert_eq!(
            cache.select(&cidr_selector(&any("::/0"))),
            [crate::reserved::IDENTITY_WORLD_IPV6]
        );
        let world = cache.select(&cidr_selector(&any("0.0.0.0/0"))).to_vec();
        assert!(world.contains(&16_777_217) && !world.contains(&16_777_218));
        assert_eq!(
            cache.select(&cidr_selector(&any("10.0.0.0/8"))),
            [16_777_217]
        );
    }
}

//! Cilium's selector cache, for one batch of resolutions: each distinct
//! selector is evaluated against the known identities once, however many
//! rule elements and endpoints use it (through an index on label key and
//! value); and rules are compiled once and grouped by `endpointSelector`, so
//! an endpoint's policy costs one evaluation per distinct selector and
//! shares its compiled elements with every other endpoint the rules select.

use std::collections::{BTreeMap, HashMap};

use crate::labels::Labels;
use crate::rule::Rule;
use crate::selector::EndpointSelector;

use super::{CompiledRule, EndpointPolicy};

/// The identities each selector selects, computed on first use.
pub struct SelectorCache {
    identities: BTreeMap<u32, Labels>,
    /// (label key, value) -> identities holding such a label, any source.
    by_label: HashMap<(String, String), Vec<u32>>,
    selected: HashMap<EndpointSelector, Vec<u32>>,
}

impl SelectorCache {
    /// A cache over `identities` (reserved ones added when missing,
    /// identity 0 ignored).
    pub fn new(identities: &BTreeMap<u32, Labels>) -> Self {
        let identities = super::with_reserved(identities);
        let mut by_label: HashMap<(String, String), Vec<u32>> = HashMap::new();
        for (id, labels) in &identities {
            for label in labels.iter() {
                by_label
                    .entry((label.key.clone(), label.value.clone()))
                    .or_default()
                    .push(*id);
            }
        }
        SelectorCache {
            identities,
            by_label,
            selected: HashMap::new(),
        }
    }

    /// The known identities and their labels.
    pub fn identities(&self) -> &BTreeMap<u32, Labels> {
        &self.identities
    }

    /// Identities matching `selector`, in ascending order.
    pub fn select(&mut self, selector: &EndpointSelector) -> &[u32] {
        if !self.selected.contains_key(selector) {
            let matches = |id: &u32| self.identities.get(id).is_some_and(|l| selector.matches(l));
            let ids: Vec<u32> = match selector.index_hint() {
                Some((key, value)) => self
                    .by_label
                    .get(&(key.to_string(), value.to_string()))
                    .map(|candidates| {
                        let mut ids: Vec<u32> =
                            candidates.iter().copied().filter(matches).collect();
                        ids.dedup();
                        ids
                    })
                    .unwrap_or_default(),
                None => self.identities.keys().copied().filter(matches).collect(),
            };
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

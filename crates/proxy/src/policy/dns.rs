//! `rules.dns` compiled for matching query names: Cilium's `matchName` and
//! `matchPattern` (see `policy::fqdn`).

use ::policy::fqdn::{FqdnMatcher, FqdnSelector};

#[derive(Debug)]
pub struct DnsMatcher {
    selectors: Vec<FqdnMatcher>,
}

impl DnsMatcher {
    /// Selectors must have been validated (an invalid one matches nothing).
    pub fn compile(selectors: &[FqdnSelector]) -> Self {
        DnsMatcher {
            selectors: selectors.iter().map(FqdnSelector::matcher).collect(),
        }
    }

    /// Whether some selector allows `name` (any case, trailing dot or not).
    pub fn allows(&self, name: &str) -> bool {
        self.selectors.iter().any(|m| m.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_patterns_allow_query_names() {
        let matcher = DnsMatcher::compile(&[
            FqdnSelector::name("allowed.test"),
            FqdnSelector::pattern("*.cilium.io"),
        ]);
        assert!(matcher.allows("Allowed.TEST."));
        assert!(matcher.allows("docs.cilium.io"));
        assert!(!matcher.allows("a.docs.cilium.io"));
        assert!(!matcher.allows("denied.test"));
        // An escaped dot is not a label boundary.
        assert!(!matcher.allows(r"docs\.x.cilium.io"));
    }
}

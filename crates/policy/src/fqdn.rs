//! DNS names in policy: `toFQDNs` peers and `rules.dns` entries, both
//! Cilium's FQDN selector (`matchName` or `matchPattern`).
//!
//! Semantics, as Cilium's: names compare case-insensitively and a trailing
//! dot is ignored. `matchName` is one exact name. In `matchPattern`, `*`
//! alone matches every name; elsewhere `*` matches zero or more DNS-name
//! characters but never a `.` (`part*ial.com` matches `partial.com`,
//! `*.example.com` matches `a.example.com` but neither `a.b.example.com` nor
//! `example.com`); a leading `**.` matches one or more subdomain levels
//! (`**.example.com` matches `a.example.com` and `a.b.example.com`, not
//! `example.com`).
//!
//! The IPs a pod learned for a name get identities labelled `fqdn:<selector>`
//! for every selector matching the name ([`FqdnSelector::label`]), which is
//! what a `toFQDNs` peer selects ([`FqdnSelector::selector`]). Such an
//! identity is otherwise the IP's /32 CIDR identity (`cidr:` and
//! `reserved:world`, see [`fqdn_identity_labels`]), so CIDR peers and the
//! `world` entity select it too, and it arrives and leaves through the same
//! selector cache and identity deltas as any CIDR identity.

use std::collections::BTreeSet;
use std::net::IpAddr;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::cidr::{cidr_identity_labels, Ipv4Cidr};
use crate::labels::{Label, Labels};
use crate::rule::{PeerRule, Rule};
use crate::selector::EndpointSelector;

/// The label source of the selectors' labels on learned IPs' identities.
pub const SOURCE_FQDN: &str = "fqdn";

/// `toFQDNs[]` and `rules.dns[]`: exactly one of the two fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FqdnSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
}

/// What is wrong with a selector; `field` is `matchName` or `matchPattern`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FqdnError {
    pub field: &'static str,
    pub message: String,
}

/// Characters of a DNS name as Cilium accepts them in selectors.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// Lowercase, without the trailing dot: the form names are compared in.
pub fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

impl FqdnSelector {
    pub fn name(name: &str) -> Self {
        FqdnSelector {
            match_name: Some(name.into()),
            match_pattern: None,
        }
    }

    pub fn pattern(pattern: &str) -> Self {
        FqdnSelector {
            match_name: None,
            match_pattern: Some(pattern.into()),
        }
    }

    pub fn validate(&self) -> Result<(), FqdnError> {
        match (&self.match_name, &self.match_pattern) {
            (Some(_), Some(_)) => Err(FqdnError {
                field: "matchName",
                message: "matchName and matchPattern exclude each other".into(),
            }),
            (None, None) => Err(FqdnError {
                field: "matchName",
                message: "one of matchName or matchPattern is required".into(),
            }),
            (Some(name), None) => check_text("matchName", name, false),
            (None, Some(pattern)) => check_text("matchPattern", pattern, true),
        }
    }

    /// The selector as one normalized text: the name, or the pattern.
    pub fn text(&self) -> String {
        normalize(
            self.match_name
                .as_deref()
                .or(self.match_pattern.as_deref())
                .unwrap_or(""),
        )
    }

    /// The label this selector puts on the identities of IPs learned for
    /// names it matches.
    pub fn label(&self) -> Label {
        Label::new(SOURCE_FQDN, self.text(), "")
    }

    /// This selector as a `toFQDNs` peer: the identities carrying its label.
    pub fn selector(&self) -> EndpointSelector {
        let label = self.label();
        EndpointSelector::from_match_labels([(format!("{}:{}", label.source, label.key), "")])
    }

    /// The selector compiled for matching names (validate first: an
    /// invalid selector matches nothing).
    pub fn matcher(&self) -> FqdnMatcher {
        let text = self.text();
        if self.match_name.is_some() {
            return FqdnMatcher::Exact(text);
        }
        if text == "*" {
            return FqdnMatcher::Any;
        }
        let (levels, rest) = match text.strip_prefix("**.") {
            Some(rest) => (r"(?:[-a-z0-9_]+\.)+", rest),
            None => ("", text.as_str()),
        };
        let body: Vec<String> = rest.split('*').map(regex::escape).collect();
        let expression = format!("^{levels}{}$", body.join("[-a-z0-9_]*"));
        match Regex::new(&expression) {
            Ok(regex) => FqdnMatcher::Pattern(regex),
            Err(_) => FqdnMatcher::Nothing,
        }
    }
}

fn check_text(field: &'static str, text: &str, pattern: bool) -> Result<(), FqdnError> {
    let fail = |message: String| Err(FqdnError { field, message });
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.is_empty() {
        return fail("must not be empty".into());
    }
    if name.len() > 253 {
        return fail(format!("{text:?} is longer than a DNS name (253)"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(is_name_char(*c) || (pattern && *c == '*')))
    {
        return fail(format!("{text:?}: {bad:?} is not allowed in a DNS name"));
    }
    if name.split('.').any(str::is_empty) {
        return fail(format!("{text:?} has an empty label"));
    }
    Ok(())
}

/// A compiled selector.
#[derive(Debug, Clone)]
pub enum FqdnMatcher {
    Any,
    Exact(String),
    Pattern(Regex),
    Nothing,
}

impl FqdnMatcher {
    /// Whether `name` (as it came off the wire, any case, maybe with the
    /// trailing dot) is selected.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            FqdnMatcher::Any => true,
            FqdnMatcher::Exact(exact) => normalize(name) == *exact,
            FqdnMatcher::Pattern(regex) => regex.is_match(&normalize(name)),
            FqdnMatcher::Nothing => false,
        }
    }
}

/// Every `toFQDNs` selector of the rules (egress only: validation refuses
/// them in `egressDeny`). The agent matches the names its DNS proxy sees
/// against these to label the IPs it learns.
pub fn fqdn_selectors(rules: &[Rule]) -> BTreeSet<FqdnSelector> {
    rules
        .iter()
        .flat_map(|rule| rule.egress.iter().flatten())
        .flat_map(|element| element.fqdns().into_iter().flatten())
        .cloned()
        .collect()
}

/// Labels of the identity of an IP learned for a name: its host CIDR
/// identity's labels (`cidr:<ip>/32` and `reserved:world`, or for an AAAA
/// answer `cidr:<ip>/128` and `reserved:world-ipv6`) plus the label of
/// every selector given (those matching the name).
pub fn fqdn_identity_labels<'a>(
    ip: IpAddr,
    selectors: impl IntoIterator<Item = &'a FqdnSelector>,
) -> Labels {
    let mut labels = match ip {
        IpAddr::V4(v4) => {
            cidr_identity_labels(Ipv4Cidr::new(v4, 32).expect("32 is a valid prefix length"))
        }
        IpAddr::V6(v6) => crate::cidr::cidr_identity_labels6(
            crate::Ipv6Cidr::new(v6, 128).expect("128 is a valid prefix length"),
        ),
    };
    for selector in selectors {
        labels.insert(selector.label());
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(p: &str) -> FqdnMatcher {
        let selector = FqdnSelector::pattern(p);
        selector.validate().unwrap();
        selector.matcher()
    }

    #[test]
    fn names_match_exactly_in_any_case_with_or_without_the_trailing_dot() {
        let m = FqdnSelector::name("API.github.com.").matcher();
        assert!(m.matches("api.github.com"));
        assert!(m.matches("Api.GitHub.com."));
        assert!(!m.matches("x.api.github.com"));
        assert!(!m.matches("api.github.co"));
    }

    #[test]
    fn a_star_alone_matches_every_name() {
        let m = pattern("*");
        assert!(m.matches("example.com"));
        assert!(m.matches("a.b.c.example.com."));
    }

    #[test]
    fn a_star_inside_matches_name_characters_but_never_a_dot() {
        let m = pattern("part*ial.com");
        assert!(m.matches("partial.com"));
        assert!(m.matches("part-of-ial.com"));
        assert!(!m.matches("part.x.ial.com"));
        let m = pattern("*.example.com");
        assert!(m.matches("a.example.com"));
        assert!(m.matches("A.Example.COM."));
        assert!(!m.matches("a.b.example.com"));
        assert!(!m.matches("example.com"));
        assert!(!m.matches("aexample.com"));
        let m = pattern("sub.*.example.com");
        assert!(m.matches("sub.x.example.com"));
        assert!(!m.matches("sub.x.y.example.com"));
    }

    #[test]
    fn a_leading_double_star_matches_one_or_more_levels() {
        let m = pattern("**.example.com");
        assert!(m.matches("a.example.com"));
        assert!(m.matches("a.b.example.com"));
        assert!(!m.matches("example.com"));
        assert!(!m.matches("badexample.com"));
    }

    #[test]
    fn dots_in_patterns_are_literal() {
        let m = pattern("a.b.com");
        assert!(m.matches("a.b.com"));
        assert!(!m.matches("axb.com"));
    }

    #[test]
    fn invalid_selectors_name_the_field() {
        let both = FqdnSelector {
            match_name: Some("a.com".into()),
            match_pattern: Some("*.a.com".into()),
        };
        assert!(both.validate().is_err());
        assert!(FqdnSelector::default().validate().is_err());
        let err = FqdnSelector::name("*.a.com").validate().unwrap_err();
        assert_eq!(err.field, "matchName");
        assert!(err.message.contains("'*'"), "{err}");
        let err = FqdnSelector::pattern("a..com").validate().unwrap_err();
        assert_eq!(err.field, "matchPattern");
        // Elsewhere than leading, `**` is two stars: one label's worth.
        let doubled = FqdnSelector::pattern("a.**.com");
        assert!(doubled.validate().is_ok());
        assert!(doubled.matcher().matches("a.b.com") && !doubled.matcher().matches("a.b.c.com"));
        assert!(FqdnSelector::pattern("a b.com").validate().is_err());
        assert!(FqdnSelector::pattern("**.a.com").validate().is_ok());
    }

    #[test]
    fn labels_carry_the_normalized_selector() {
        let label = FqdnSelector::pattern("*.Example.com.").label();
        assert_eq!(
            (label.source.as_str(), label.key.as_str()),
            ("fqdn", "*.example.com")
        );
    }

    #[test]
    fn learned_ips_carry_their_cidr_labels_world_and_each_selector() {
        let selectors = [
            FqdnSelector::name("API.github.com"),
            FqdnSelector::pattern("*.github.com"),
        ];
        let labels = fqdn_identity_labels([140, 82, 112, 6].into(), &selectors);
        assert_eq!(
            labels,
            Labels::parse_all(&[
                "cidr:140.82.112.6/32",
                "reserved:world",
                "fqdn:api.github.com",
                "fqdn:*.github.com",
            ])
            .unwrap()
        );
        // Each selector selects what carries its own label, nothing else.
        assert!(selectors[0].selector().matches(&labels));
        assert!(FqdnSelector::name("api.github.com.")
            .selector()
            .matches(&labels));
        assert!(!FqdnSelector::name("github.com").selector().matches(&labels));
        assert!(!FqdnSelector::pattern("*").selector().matches(&labels));
        let only_cidr = fqdn_identity_labels([140, 82, 112, 6].into(), []);
        assert!(!selectors[0].selector().matches(&only_cidr));
    }

    #[test]
    fn learned_ipv6_addresses_carry_their_128_and_world_ipv6() {
        let selector = FqdnSelector::name("api.github.com");
        let ip: IpAddr = "2606:50c0:8000::154".parse().unwrap();
        let labels = fqdn_identity_labels(ip, [&selector]);
        assert_eq!(
            labels,
            Labels::parse_all(&[
                "cidr:2606-50c0-8000--154/128",
                "reserved:world-ipv6",
                "fqdn:api.github.com",
            ])
            .unwrap()
        );
        assert!(selector.selector().matches(&labels));
    }

    #[test]
    fn every_to_fqdns_selector_of_the_rules() {
        let rules = crate::parse::parse_rules(
            r#"[{"endpointSelector": {}, "egress": [
                    {"toFQDNs": [{"matchName": "a.com"}, {"matchPattern": "*.b.com"}]},
                    {"toPorts": [{"ports": [{"port": "53"}], "rules": {"dns": [{"matchName": "dns-only.com"}]}}]}]},
                {"endpointSelector": {}, "egress": [{"toFQDNs": [{"matchName": "a.com"}]}]}]"#,
        )
        .unwrap();
        assert_eq!(
            fqdn_selectors(&rules),
            BTreeSet::from([
                FqdnSelector::name("a.com"),
                FqdnSelector::pattern("*.b.com")
            ])
        );
    }
}

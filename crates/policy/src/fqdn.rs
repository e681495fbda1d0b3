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
//! what a `toFQDNs` peer selects.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::labels::Label;

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
        .find(|c| !is_name_char(*c) && !(pattern && *c == '*'))
    {
        return fail(format!("{text:?}: {bad:?} is not allowed in a DNS name"));
    }
    if name.split('.').any(str::is_empty) {
        return fail(format!("{text:?} has an empty label"));
    }
    if pattern {
        let rest = name.strip_prefix("**.").unwrap_or(name);
        if rest.contains("**") {
            return fail(format!(
                "{text:?}: \"**\" is only allowed as a leading \"**.\""
            ));
        }
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
        assert!(FqdnSelector::pattern("a.**.com").validate().is_err());
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
}

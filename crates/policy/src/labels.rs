//! Cilium labels in their string form `source:key=value`.
//!
//! A label's source says where it came from (`k8s`, `container`, `reserved`, ...);
//! selectors can require a source or accept any. Parsing follows Cilium: the source
//! is the text before the first `:` unless an `=` comes earlier (then the `:` belongs
//! to the value), a leading `$` is shorthand for `reserved:`, and a missing source
//! becomes `unspec`.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Source given to labels written without one.
pub const SOURCE_UNSPEC: &str = "unspec";
/// Source of the labels of Cilium's reserved identities (`reserved:host`, ...).
pub const SOURCE_RESERVED: &str = "reserved";
/// Source of labels taken from Kubernetes objects.
pub const SOURCE_K8S: &str = "k8s";
/// Selector-only pseudo source: matches a key from every source.
pub const SOURCE_ANY: &str = "any";

/// One label: `source:key=value`. An empty value prints as `source:key`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub source: String,
    pub key: String,
    pub value: String,
}

/// Why a label string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("label {0:?} has an empty key")]
    EmptyKey(String),
}

impl Label {
    pub fn new(
        source: impl Into<String>,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        Label {
            source: source.into(),
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Splits `source:rest`; `None` when the text carries no source.
fn split_source(text: &str) -> (Option<&str>, &str) {
    if let Some(rest) = text.strip_prefix('$') {
        return (Some(SOURCE_RESERVED), rest);
    }
    match text.find(':') {
        // A ':' after the '=' is part of the value ("app=a:b"), not a source separator.
        Some(colon) if text.find('=').is_none_or(|equals| colon < equals) => {
            let source = &text[..colon];
            let source = (!source.is_empty()).then_some(source);
            (source, &text[colon + 1..])
        }
        _ => (None, text),
    }
}

impl FromStr for Label {
    type Err = LabelError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (source, rest) = split_source(text);
        let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
        if key.is_empty() {
            return Err(LabelError::EmptyKey(text.to_string()));
        }
        Ok(Label::new(source.unwrap_or(SOURCE_UNSPEC), key, value))
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.key)?;
        if !self.value.is_empty() {
            write!(f, "={}", self.value)?;
        }
        Ok(())
    }
}

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of labels, e.g. an endpoint's or an identity's. Serialized as a list of
/// label strings, like Cilium's API does.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Labels(BTreeSet<Label>);

impl Labels {
    pub fn new() -> Self {
        Labels::default()
    }

    /// Parses every string; the first bad one is the error.
    pub fn parse_all<S: AsRef<str>>(texts: &[S]) -> Result<Labels, LabelError> {
        texts.iter().map(|text| text.as_ref().parse()).collect()
    }

    /// The label set of a reserved identity: `Labels::reserved("host")` is `reserved:host`.
    pub fn reserved(name: &str) -> Labels {
        std::iter::once(Label::new(SOURCE_RESERVED, name, "")).collect()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(Label::to_string).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn insert(&mut self, label: Label) -> bool {
        self.0.insert(label)
    }

    pub fn contains(&self, label: &Label) -> bool {
        self.0.contains(label)
    }

    /// True when every label of `other` is in `self` (an empty `other` is always contained).
    pub fn contains_all(&self, other: &Labels) -> bool {
        other.0.is_subset(&self.0)
    }
}

impl FromIterator<Label> for Labels {
    fn from_iter<I: IntoIterator<Item = Label>>(iter: I) -> Self {
        Labels(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::collections::btree_set::Iter<'a, Label>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_strings().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Label {
        text.parse().unwrap()
    }

    #[test]
    fn parses_sourced_label() {
        assert_eq!(parse("k8s:app=web"), Label::new("k8s", "app", "web"));
    }

    #[test]
    fn missing_source_is_unspec() {
        assert_eq!(parse("app=web"), Label::new("unspec", "app", "web"));
    }

    #[test]
    fn reserved_label_has_empty_value() {
        assert_eq!(parse("reserved:host"), Label::new("reserved", "host", ""));
        assert_eq!(parse("$world"), Label::new("reserved", "world", ""));
    }

    #[test]
    fn keys_may_hold_dots_and_slashes() {
        assert_eq!(
            parse("k8s:io.kubernetes.pod.namespace=default"),
            Label::new("k8s", "io.kubernetes.pod.namespace", "default")
        );
        assert_eq!(
            parse("k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=prod"),
            Label::new(
                "k8s",
                "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name",
                "prod"
            )
        );
    }

    #[test]
    fn colon_after_equals_belongs_to_value() {
        assert_eq!(parse("app=a:b"), Label::new("unspec", "app", "a:b"));
        assert_eq!(
            parse("k8s:url=http://x"),
            Label::new("k8s", "url", "http://x")
        );
    }

    #[test]
    fn empty_key_is_an_error() {
        for bad in ["", "k8s:", "=web", "k8s:=web"] {
            assert_eq!(
                bad.parse::<Label>(),
                Err(LabelError::EmptyKey(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn prints_back_in_cilium_form() {
        for text in ["k8s:app=web", "reserved:host", "unspec:a=b:c"] {
            assert_eq!(parse(text).to_string(), text);
        }
        assert_eq!(parse("app=web").to_string(), "unspec:app=web");
    }

    #[test]
    fn label_set_parses_prints_and_serializes() {
        let texts = vec!["k8s:b=2".to_string(), "k8s:a=1".to_string()];
        let labels = Labels::parse_all(&texts).unwrap();
        assert_eq!(labels.to_strings(), vec!["k8s:a=1", "k8s:b=2"]);
        let json = serde_json::to_string(&labels).unwrap();
        assert_eq!(json, r#"["k8s:a=1","k8s:b=2"]"#);
        assert_eq!(serde_json::from_str::<Labels>(&json).unwrap(), labels);
        assert!(serde_json::from_str::<Labels>(r#"["k8s:=x"]"#).is_err());
        assert!(Labels::parse_all(&["ok=1", "=bad"]).is_err());
    }

    #[test]
    fn containment_and_reserved_constructor() {
        let endpoint = Labels::parse_all(&["k8s:app=web", "k8s:env=prod"]).unwrap();
        assert!(endpoint.contains_all(&Labels::parse_all(&["k8s:app=web"]).unwrap()));
        assert!(endpoint.contains_all(&Labels::new()));
        assert!(!endpoint.contains_all(&Labels::parse_all(&["k8s:app=db"]).unwrap()));
        assert_eq!(Labels::reserved("host").to_strings(), vec!["reserved:host"]);
    }
}

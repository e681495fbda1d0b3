//! Endpoint selectors: Kubernetes-style label selectors over Cilium labels.
//!
//! A selector key is written bare (`app`), as `any:app`, or with a source
//! (`k8s:app`, `reserved:host`). Bare and `any:` keys match the key from every
//! source; a sourced key matches only labels of that source. All `matchLabels`
//! and `matchExpressions` terms must hold (AND); the empty selector `{}` matches
//! everything.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize};

use crate::cidr::{Cidr, Ipv4Cidr, Ipv6Cidr, SOURCE_CIDR};
use crate::labels::{Labels, SOURCE_ANY};

/// `matchExpressions` operators (Kubernetes spelling, case-sensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// One `matchExpressions` term.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub values: Vec<String>,
}

/// Selects endpoints or identities by their labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointSelector {
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    match_labels: BTreeMap<String, String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    match_expressions: Vec<LabelSelectorRequirement>,
}

/// A selector that is not well formed; `field` is relative to the selector
/// (e.g. `matchExpressions[0].values`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SelectorError {
    pub field: String,
    pub message: String,
}

/// YAML writes an empty section as `matchLabels:` (null); Cilium reads that as empty.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A parsed selector key: `source` is `None` when any source matches.
struct SelectorKey<'a> {
    source: Option<&'a str>,
    key: &'a str,
}

impl<'a> SelectorKey<'a> {
    fn parse(raw: &'a str) -> Self {
        match raw.split_once(':') {
            Some((source, key)) if source.is_empty() || source == SOURCE_ANY => {
                SelectorKey { source: None, key }
            }
            Some((source, key)) => SelectorKey {
                source: Some(source),
                key,
            },
            None => SelectorKey {
                source: None,
                key: raw,
            },
        }
    }

    /// The prefix of a `cidr:` key: IPv4 as written, IPv6 in Cilium's label
    /// spelling (`2001-db8--0/32`, see `cidr_v6`).
    fn prefix(&self) -> Option<Cidr> {
        if self.source != Some(SOURCE_CIDR) {
            return None;
        }
        match self.key.parse::<Ipv4Cidr>() {
            Ok(prefix) => Some(Cidr::V4(prefix)),
            Err(_) => Ipv6Cidr::from_label_key(self.key).map(Cidr::V6),
        }
    }

    /// The values the label set holds for this key (several when sources
    /// differ). A `cidr:` key stands for its prefix, which a CIDR identity
    /// holds when its own prefix lies inside it (Cilium matches CIDR labels
    /// by containment: `cidr:10.0.0.0/8` selects the identity of
    /// `10.1.2.3/32`).
    fn values_in<'l>(&self, labels: &'l Labels) -> impl Iterator<Item = &'l str> + use<'l, '_> {
        let within = self.prefix();
        labels
            .iter()
            .filter(move |label| match within {
                Some(Cidr::V4(prefix)) => {
                    label.source == SOURCE_CIDR
                        && label
                            .key
                            .parse::<Ipv4Cidr>()
                            .is_ok_and(|own| prefix.contains(&own))
                }
                Some(Cidr::V6(prefix)) => {
                    label.source == SOURCE_CIDR
                        && Ipv6Cidr::from_label_key(&label.key)
                            .is_some_and(|own| prefix.contains(&own))
                }
                None => {
                    label.key == self.key && self.source.is_none_or(|source| label.source == source)
                }
            })
            .map(|label| label.value.as_str())
    }
}

/// What a selector's first `matchLabels` term says about the label sets it
/// can match, for an index to narrow the candidates.
pub(crate) enum IndexHint<'a> {
    /// A label with this key (any source) and value.
    Label(&'a str, &'a str),
    /// A CIDR identity of a prefix inside this one.
    Within(Cidr),
}

impl LabelSelectorRequirement {
    pub fn new(key: impl Into<String>, operator: SelectorOperator, values: &[&str]) -> Self {
        LabelSelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|value| value.to_string()).collect(),
        }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let key = SelectorKey::parse(&self.key);
        let wanted: BTreeSet<&str> = self.values.iter().map(String::as_str).collect();
        let mut present = key.values_in(labels);
        match self.operator {
            SelectorOperator::In => present.any(|value| wanted.contains(value)),
            // Kubernetes semantics: a label set without the key is "not in" any set.
            SelectorOperator::NotIn => !present.any(|value| wanted.contains(value)),
            SelectorOperator::Exists => present.next().is_some(),
            SelectorOperator::DoesNotExist => present.next().is_none(),
        }
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if SelectorKey::parse(&self.key).key.is_empty() {
            return Err(("key", format!("empty label key in {:?}", self.key)));
        }
        let needs_values = matches!(
            self.operator,
            SelectorOperator::In | SelectorOperator::NotIn
        );
        if needs_values && self.values.is_empty() {
            return Err((
                "values",
                format!("operator {:?} needs at least one value", self.operator),
            ));
        }
        if !needs_values && !self.values.is_empty() {
            return Err((
                "values",
                format!("operator {:?} takes no values", self.operator),
            ));
        }
        Ok(())
    }
}

impl EndpointSelector {
    /// The empty selector `{}`: matches every label set.
    pub fn wildcard() -> Self {
        EndpointSelector::default()
    }

    /// A selector with only `matchLabels`, e.g. `[("k8s:app", "web")]`.
    pub fn from_match_labels<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        EndpointSelector {
            match_labels: pairs
                .into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    pub fn with_expression(mut self, requirement: LabelSelectorRequirement) -> Self {
        self.match_expressions.push(requirement);
        self
    }

    pub fn match_labels(&self) -> &BTreeMap<String, String> {
        &self.match_labels
    }

    pub fn match_expressions(&self) -> &[LabelSelectorRequirement] {
        &self.match_expressions
    }

    /// True for `{}`, which selects everything (in resolution: identity 0, "any").
    pub fn is_wildcard(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let labels_match = self.match_labels.iter().all(|(key, wanted)| {
            SelectorKey::parse(key)
                .values_in(labels)
                .any(|value| value == wanted)
        });
        labels_match
            && self
                .match_expressions
                .iter()
                .all(|requirement| requirement.matches(labels))
    }

    /// A `matchLabels` term that every label set this selector matches
    /// satisfies, so an index on it narrows the candidates.
    pub(crate) fn index_hint(&self) -> Option<IndexHint<'_>> {
        self.match_labels.iter().next().map(|(key, value)| {
            let key = SelectorKey::parse(key);
            match key.prefix() {
                Some(prefix) => IndexHint::Within(prefix),
                None => IndexHint::Label(key.key, value.as_str()),
            }
        })
    }

    /// Adds (or overwrites) one `matchLabels` term.
    pub fn add_match_label(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.match_labels.insert(key.into(), value.into());
    }

    /// Every key the selector constrains, `matchLabels` and `matchExpressions`,
    /// as `(source, key)`; `source` is `None` for bare and `any:` keys.
    pub fn keys(&self) -> impl Iterator<Item = (Option<&str>, &str)> {
        self.match_labels
            .keys()
            .chain(self.match_expressions.iter().map(|req| &req.key))
            .map(|raw| {
                let parsed = SelectorKey::parse(raw);
                (parsed.source, parsed.key)
            })
    }

    /// The same selector with `prefix` written before every key (NetworkPolicy
    /// translation: `app` becomes `k8s:app`, a namespace label key becomes
    /// `k8s:io.cilium.k8s.namespace.labels.<key>`).
    pub fn with_key_prefix(&self, prefix: &str) -> EndpointSelector {
        EndpointSelector {
            match_labels: self
                .match_labels
                .iter()
                .map(|(key, value)| (format!("{prefix}{key}"), value.clone()))
                .collect(),
            match_expressions: self
                .match_expressions
                .iter()
                .map(|req| LabelSelectorRequirement {
                    key: format!("{prefix}{}", req.key),
                    ..req.clone()
                })
                .collect(),
        }
    }

    /// A selector requiring both this one and `other` (AND of all terms).
    pub fn and(mut self, other: &EndpointSelector) -> EndpointSelector {
        self.match_labels.extend(
            other
                .match_labels
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
        self.match_expressions
            .extend(other.match_expressions.iter().cloned());
        self
    }

    /// Checks what serde cannot: non-empty keys and operator/values agreement.
    pub fn validate(&self) -> Result<(), SelectorError> {
        for key in self.match_labels.keys() {
            if SelectorKey::parse(key).key.is_empty() {
                return Err(SelectorError {
                    field: "matchLabels".to_string(),
                    message: format!("empty label key in {key:?}"),
                });
            }
        }
        for (index, requirement) in self.match_expressions.iter().enumerate() {
            requirement
                .validate()
                .map_err(|(field, message)| SelectorError {
                    field: format!("matchExpressions[{index}].{field}"),
                    message,
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SelectorOperator::*;
    use super::*;

    fn labels(texts: &[&str]) -> Labels {
        Labels::parse_all(texts).unwrap()
    }

    fn selector(json: &str) -> EndpointSelector {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn empty_selector_matches_everything() {
        let wildcard = selector("{}");
        assert!(wildcard.is_wildcard());
        assert!(wildcard.matches(&Labels::new()));
        assert!(wildcard.matches(&labels(&["reserved:world"])));
        assert!(selector(r#"{"matchLabels": {}, "matchExpressions": []}"#).is_wildcard());
    }

    #[test]
    fn bare_and_any_keys_match_every_source() {
        let web_k8s = labels(&["k8s:app=web"]);
        let web_container = labels(&["container:app=web"]);
        for key in ["app", "any:app"] {
            let sel = EndpointSelector::from_match_labels([(key, "web")]);
            assert!(sel.matches(&web_k8s), "{key}");
            assert!(sel.matches(&web_container), "{key}");
            assert!(!sel.matches(&labels(&["k8s:app=db"])), "{key}");
        }
    }

    #[test]
    fn sourced_key_matches_only_that_source() {
        let sel = EndpointSelector::from_match_labels([("k8s:app", "web")]);
        assert!(sel.matches(&labels(&["k8s:app=web"])));
        assert!(!sel.matches(&labels(&["container:app=web"])));
        let host = EndpointSelector::from_match_labels([("reserved:host", "")]);
        assert!(host.matches(&Labels::reserved("host")));
        assert!(!host.matches(&Labels::reserved("world")));
    }

    #[test]
    fn match_labels_are_anded_with_dotted_keys() {
        let sel = EndpointSelector::from_match_labels([
            ("k8s:io.kubernetes.pod.namespace", "default"),
            ("app", "web"),
        ]);
        assert!(sel.matches(&labels(&[
            "k8s:io.kubernetes.pod.namespace=default",
            "k8s:app=web"
        ])));
        assert!(!sel.matches(&labels(&["k8s:app=web"])));
    }

    #[test]
    fn expressions() {
        let web = labels(&["k8s:app=web", "k8s:tier=front"]);
        let none = labels(&["k8s:other=x"]);
        let check = |op, values: &[&str], set: &Labels| {
            LabelSelectorRequirement::new("app", op, values).matches(set)
        };
        assert!(check(In, &["web", "db"], &web));
        assert!(!check(In, &["db"], &web));
        assert!(!check(In, &["web"], &none));
        assert!(check(NotIn, &["db"], &web));
        assert!(!check(NotIn, &["web"], &web));
        assert!(check(NotIn, &["web"], &none), "NotIn matches a missing key");
        assert!(check(Exists, &[], &web));
        assert!(!check(Exists, &[], &none));
        assert!(check(DoesNotExist, &[], &none));
        assert!(!check(DoesNotExist, &[], &web));
        let sourced = LabelSelectorRequirement::new("container:app", Exists, &[]);
        assert!(!sourced.matches(&web));
    }

    #[test]
    fn labels_and_expressions_are_anded() {
        let sel = selector(
            r#"{"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}"#,
        );
        assert!(sel.matches(&labels(&["k8s:app=web", "k8s:env=prod"])));
        assert!(!sel.matches(&labels(&["k8s:app=web", "k8s:env=dev"])));
    }

    #[test]
    fn yaml_null_sections_read_as_empty() {
        let sel: EndpointSelector = serde_yaml::from_str("matchLabels:\n").unwrap();
        assert!(sel.is_wildcard());
    }

    #[test]
    fn rejects_unknown_fields_and_operators() {
        assert!(serde_json::from_str::<EndpointSelector>(r#"{"matchLabel": {}}"#).is_err());
        let err = serde_json::from_str::<EndpointSelector>(
            r#"{"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown variant `in`"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        let err = EndpointSelector::wildcard()
            .with_expression(LabelSelectorRequirement::new("a", Exists, &[]))
            .with_expression(LabelSelectorRequirement::new("b", In, &[]))
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "matchExpressions[1].values: operator In needs at least one value"
        );
        let err = EndpointSelector::wildcard()
            .with_expression(LabelSelectorRequirement::new("a", DoesNotExist, &["x"]))
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "matchExpressions[0].values");
        let err = EndpointSelector::from_match_labels([("k8s:", "x")])
            .validate()
            .unwrap_err();
        assert_eq!(err.field, "matchLabels");
        assert!(selector(r#"{"matchLabels": {"app": "x"}}"#)
            .validate()
            .is_ok());
    }

    #[test]
    fn keys_prefixing_and_conjunction() {
        let sel = selector(
            r#"{"matchLabels": {"app": "web", "k8s:tier": "x"},
                "matchExpressions": [{"key": "any:env", "operator": "Exists"}]}"#,
        );
        let keys: Vec<_> = sel.keys().collect();
        assert_eq!(
            keys,
            vec![(None, "app"), (Some("k8s"), "tier"), (None, "env")]
        );
        let prefixed = selector(r#"{"matchLabels": {"app": "web"}}"#).with_key_prefix("k8s:");
        assert_eq!(
            prefixed.match_labels().keys().collect::<Vec<_>>(),
            vec!["k8s:app"]
        );
        let both = prefixed.and(&EndpointSelector::from_match_labels([("k8s:ns", "a")]));
        assert!(both.matches(&labels(&["k8s:app=web", "k8s:ns=a"])));
        assert!(!both.matches(&labels(&["k8s:app=web"])));
        let mut sel = EndpointSelector::wildcard();
        sel.add_match_label("k8s:a", "1");
        assert!(!sel.is_wildcard());
    }

    #[test]
    fn serializes_in_cilium_form() {
        let text = r#"{"matchLabels":{"k8s:app":"web"},"matchExpressions":[{"key":"env","operator":"NotIn","values":["dev"]},{"key":"x","operator":"Exists"}]}"#;
        assert_eq!(serde_json::to_string(&selector(text)).unwrap(), text);
        assert_eq!(serde_json::to_string(&selector("{}")).unwrap(), "{}");
    }
}

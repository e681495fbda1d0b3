//! `CiliumNetworkPolicy` and `CiliumClusterwideNetworkPolicy` objects: their
//! `spec`/`specs` rules, labelled with the object they came from and scoped the
//! way Cilium scopes them (pkg/k8s/apis/cilium.io/utils).
//!
//! Namespaced policies select endpoints of their namespace only, and each peer
//! endpoint selector is limited to the namespace too, unless it already names
//! `io.kubernetes.pod.namespace` (`k8s:` or any source), a namespace label
//! (`io.cilium.k8s.namespace.labels.*`), or a reserved label. Clusterwide
//! policies leave `endpointSelector` alone and limit peers to pods (namespace
//! label Exists), except when the rule selects initializing endpoints.

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::labels::{SOURCE_K8S, SOURCE_RESERVED};
use crate::parse::{deserialize_at, ObjectError, ObjectMeta};
use crate::policy_labels::{derived_rule_labels, NAMESPACE_LABELS_PREFIX, POD_NAMESPACE_LABEL};
use crate::rule::{PeerRule, Rule};
use crate::selector::{EndpointSelector, LabelSelectorRequirement, SelectorOperator};

pub const KIND_CNP: &str = "CiliumNetworkPolicy";
pub const KIND_CCNP: &str = "CiliumClusterwideNetworkPolicy";
const API_VERSION: &str = "cilium.io/v2";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CiliumPolicyObject {
    #[serde(default)]
    api_version: Option<String>,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<Rule>,
    #[serde(default)]
    specs: Option<Vec<Rule>>,
    #[allow(dead_code)]
    #[serde(default)]
    status: Option<IgnoredAny>,
}

/// The rules of one CNP (`clusterwide = false`) or CCNP object.
pub(crate) fn rules_from_object(
    value: serde_yaml::Value,
    clusterwide: bool,
) -> Result<Vec<Rule>, ObjectError> {
    let object: CiliumPolicyObject = deserialize_at(value)?;
    crate::parse::check_api_version(object.api_version.as_deref(), API_VERSION)?;
    let name = object.metadata.required_name()?;
    let uid = object.metadata.uid_label();
    let (kind, namespace) = if clusterwide {
        (KIND_CCNP, None)
    } else {
        (KIND_CNP, Some(object.metadata.namespace_or_default()))
    };
    if object.spec.is_none() && object.specs.is_none() {
        return Err(ObjectError::new("spec", "missing (expected spec or specs)"));
    }
    let specs = object
        .spec
        .map(|rule| ("spec".to_string(), rule))
        .into_iter()
        .chain(
            object
                .specs
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(index, rule)| (format!("specs[{index}]"), rule)),
        );
    let mut rules = Vec::new();
    for (path, mut rule) in specs {
        rule.validate()
            .map_err(|err| ObjectError::new(format!("{path}.{}", err.path), err.message))?;
        scope_rule(&mut rule, namespace);
        rule.labels = derived_rule_labels(kind, name, namespace, &rule.labels);
        rule.labels.extend(uid.clone());
        rules.push(rule);
    }
    Ok(rules)
}

fn pod_namespace_key() -> String {
    format!("{SOURCE_K8S}:{POD_NAMESPACE_LABEL}")
}

/// Applies Cilium's namespace scoping to a rule of a namespaced (`Some`) or
/// clusterwide (`None`) policy.
fn scope_rule(rule: &mut Rule, namespace: Option<&str>) {
    if let Some(namespace) = namespace {
        rule.endpoint_selector
            .add_match_label(pod_namespace_key(), namespace);
    }
    let selects_init = rule
        .endpoint_selector
        .keys()
        .any(|(source, key)| source == Some(SOURCE_RESERVED) && key == "init");
    let scope = |selectors: Option<&mut Vec<EndpointSelector>>| {
        for selector in selectors.into_iter().flatten() {
            scope_peer(selector, namespace, selects_init);
        }
    };
    for element in rule
        .ingress
        .iter_mut()
        .chain(&mut rule.ingress_deny)
        .flatten()
    {
        scope(element.endpoint_selectors_mut());
    }
    for element in rule
        .egress
        .iter_mut()
        .chain(&mut rule.egress_deny)
        .flatten()
    {
        scope(element.endpoint_selectors_mut());
    }
}

/// True for keys Cilium treats as the k8s label `key`: `k8s:key`, `any:key`, `key`.
fn is_k8s_key(source: Option<&str>, key: &str, wanted: impl Fn(&str) -> bool) -> bool {
    source.is_none_or(|source| source == SOURCE_K8S) && wanted(key)
}

fn scope_peer(selector: &mut EndpointSelector, namespace: Option<&str>, selects_init: bool) {
    if selector
        .keys()
        .any(|(source, _)| source == Some(SOURCE_RESERVED))
    {
        return;
    }
    if selector
        .keys()
        .any(|(source, key)| is_k8s_key(source, key, |key| key == POD_NAMESPACE_LABEL))
    {
        return;
    }
    match namespace {
        None if !selects_init => {
            *selector = std::mem::take(selector).with_expression(LabelSelectorRequirement::new(
                pod_namespace_key(),
                SelectorOperator::Exists,
                &[],
            ));
        }
        None => {}
        Some(namespace) => {
            let names_namespace_labels = selector.keys().any(|(source, key)| {
                is_k8s_key(source, key, |key| {
                    key.starts_with(NAMESPACE_LABELS_PREFIX.trim_end_matches('.'))
                })
            });
            if !names_namespace_labels {
                selector.add_match_label(pod_namespace_key(), namespace);
            }
        }
    }
}

#[cfg(test)]
#[path = "cnp_tests.rs"]
mod tests;

//! The labels Cilium gives rules derived from Kubernetes objects
//! (`io.cilium.k8s.policy.name`, `.namespace`, `.derived-from`, source `k8s`,
//! and `.uid` when the object has one), which name the object a rule came
//! from so that re-importing or deleting the object finds all of its rules.

use crate::labels::{Label, Labels, SOURCE_K8S};

pub const POLICY_LABEL_NAME: &str = "io.cilium.k8s.policy.name";
pub const POLICY_LABEL_NAMESPACE: &str = "io.cilium.k8s.policy.namespace";
pub const POLICY_LABEL_DERIVED_FROM: &str = "io.cilium.k8s.policy.derived-from";
pub const POLICY_LABEL_UID: &str = "io.cilium.k8s.policy.uid";

/// The pod label holding an endpoint's namespace.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Prefix of the labels that carry the pod's namespace's labels.
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";

/// The labels of every rule derived from object `kind`/`namespace`/`name`,
/// followed by the rule's own labels (duplicates dropped).
pub fn derived_rule_labels(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    own: &[String],
) -> Vec<String> {
    let mut labels = vec![
        Label::new(SOURCE_K8S, POLICY_LABEL_DERIVED_FROM, kind).to_string(),
        Label::new(SOURCE_K8S, POLICY_LABEL_NAME, name).to_string(),
    ];
    if let Some(namespace) = namespace {
        labels.push(Label::new(SOURCE_K8S, POLICY_LABEL_NAMESPACE, namespace).to_string());
    }
    for label in own {
        if !labels.contains(label) {
            labels.push(label.clone());
        }
    }
    labels
}

/// The `io.cilium.k8s.policy.uid` label of an object with `metadata.uid`
/// (not part of the replacement key: a re-created object replaces the old
/// one's rules).
pub fn uid_label(uid: Option<&str>) -> Option<String> {
    uid.filter(|uid| !uid.is_empty())
        .map(|uid| Label::new(SOURCE_K8S, POLICY_LABEL_UID, uid).to_string())
}

/// What `Repository::add(.., replace = true)` compares: for a rule derived from
/// a Kubernetes object, the object's identity (kind, namespace, name), so an
/// edited object replaces all its old rules; otherwise the whole label set.
pub fn replacement_key(labels: &Labels) -> Labels {
    let is_derived = labels
        .iter()
        .any(|label| label.source == SOURCE_K8S && label.key == POLICY_LABEL_DERIVED_FROM);
    if !is_derived {
        return labels.clone();
    }
    labels
        .iter()
        .filter(|label| {
            label.source == SOURCE_K8S
                && [
                    POLICY_LABEL_DERIVED_FROM,
                    POLICY_LABEL_NAME,
                    POLICY_LABEL_NAMESPACE,
                ]
                .contains(&label.key.as_str())
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_labels_and_replacement_key() {
        let labels = derived_rule_labels(
            "CiliumNetworkPolicy",
            "web",
            Some("prod"),
            &[
                "k8s:io.cilium.k8s.policy.name=web".into(),
                "unspec:team=a".into(),
            ],
        );
        assert_eq!(
            labels,
            vec![
                "k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy",
                "k8s:io.cilium.k8s.policy.name=web",
                "k8s:io.cilium.k8s.policy.namespace=prod",
                "unspec:team=a",
            ]
        );
        let parsed = Labels::parse_all(&labels).unwrap();
        assert_eq!(replacement_key(&parsed).len(), 3);
        let plain = Labels::parse_all(&["k8s:policy=a", "unspec:team=a"]).unwrap();
        assert_eq!(replacement_key(&plain), plain);
    }
}

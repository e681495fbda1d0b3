//! The labels Cilium derives a pod's security identity from: the pod's own
//! labels (minus the ones Kubernetes controllers stamp on every pod, which
//! would split one workload into many identities), its namespace, its
//! namespace's labels, its service account and the cluster's name.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use policy::policy_labels::{NAMESPACE_LABELS_PREFIX, POD_NAMESPACE_LABEL};
use policy::Label;

pub const SERVICE_ACCOUNT_LABEL: &str = "io.cilium.k8s.policy.serviceaccount";
pub const CLUSTER_LABEL: &str = "io.cilium.k8s.policy.cluster";
/// Set by the API server on every namespace.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Pod label keys that never take part in the identity (Cilium's default
/// label filter): controller bookkeeping, per-pod names and indexes.
const EXCLUDED_PREFIXES: &[&str] = &[
    "io.kubernetes",
    "kubernetes.io",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/job-completion-index",
    "batch.kubernetes.io/controller-uid",
    "k8s.io",
    "pod-template-generation",
    "pod-template-hash",
    "controller-revision-hash",
    "annotation",
    "etcd_node",
];
/// Kept although an exclusion above would match them.
const INCLUDED_PREFIXES: &[&str] = &["app.kubernetes.io"];

/// A pod by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn of(pod: &Pod) -> PodKey {
        PodKey {
            namespace: pod.namespace().unwrap_or_else(|| "default".into()),
            name: pod.name_any(),
        }
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

fn identity_relevant(key: &str) -> bool {
    INCLUDED_PREFIXES.iter().any(|p| key.starts_with(p))
        || !(EXCLUDED_PREFIXES.iter().any(|p| key.starts_with(p))
            || key.contains("beta.kubernetes.io"))
}

/// The `k8s:` labels of a pod's identity. `namespace_labels` is `None` while
/// the namespace is not known yet; its name label is implied anyway.
pub fn identity_labels(
    pod: &Pod,
    namespace_labels: Option<&BTreeMap<String, String>>,
    cluster: &str,
) -> Vec<Label> {
    let key = PodKey::of(pod);
    let k8s = |key: &str, value: &str| Label::new(policy::labels::SOURCE_K8S, key, value);
    let mut labels: Vec<Label> = pod
        .labels()
        .iter()
        .filter(|(key, _)| identity_relevant(key))
        .map(|(key, value)| k8s(key, value))
        .collect();
    labels.push(k8s(POD_NAMESPACE_LABEL, &key.namespace));
    let mut namespace: BTreeMap<&str, &str> = namespace_labels
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    namespace
        .entry(NAMESPACE_NAME_LABEL)
        .or_insert(key.namespace.as_str());
    for (ns_key, value) in namespace {
        labels.push(k8s(&format!("{NAMESPACE_LABELS_PREFIX}{ns_key}"), value));
    }
    let account = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.service_account_name.as_deref())
        .filter(|sa| !sa.is_empty());
    if let Some(account) = account {
        labels.push(k8s(SERVICE_ACCOUNT_LABEL, account));
    }
    labels.push(k8s(CLUSTER_LABEL, cluster));
    labels.sort();
    labels.dedup();
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "prod", "labels": labels},
            "spec": {"containers": [], "serviceAccountName": "web-sa"},
        }))
        .unwrap()
    }

    fn strings(labels: &[Label]) -> Vec<String> {
        labels.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn labels_as_cilium_derives_them() {
        let pod = pod(serde_json::json!({
            "app": "web",
            "pod-template-hash": "5d8f",
            "app.kubernetes.io/name": "shop",
            "statefulset.kubernetes.io/pod-name": "web-1",
            "topology.beta.kubernetes.io/zone": "a",
        }));
        let ns = BTreeMap::from([
            ("team".to_string(), "blue".to_string()),
            (NAMESPACE_NAME_LABEL.to_string(), "prod".to_string()),
        ]);
        assert_eq!(
            strings(&identity_labels(&pod, Some(&ns), "default")),
            vec![
                "k8s:app=web",
                "k8s:app.kubernetes.io/name=shop",
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=prod",
                "k8s:io.cilium.k8s.namespace.labels.team=blue",
                "k8s:io.cilium.k8s.policy.cluster=default",
                "k8s:io.cilium.k8s.policy.serviceaccount=web-sa",
                "k8s:io.kubernetes.pod.namespace=prod",
            ]
        );
    }

    #[test]
    fn an_unknown_namespace_still_names_itself() {
        let pod = pod(serde_json::json!({"app": "web"}));
        let labels = strings(&identity_labels(&pod, None, "c1"));
        assert!(labels.contains(
            &"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=prod".to_string()
        ));
        assert!(labels.contains(&"k8s:io.cilium.k8s.policy.cluster=c1".to_string()));
    }
}

//! The endpoint's labels, from what the runtime and the network
//! configuration tell about the container. Labels decide the security
//! identity, so nothing here may let a container claim a reserved one.

use std::collections::BTreeSet;

use crate::config::NetConf;
use crate::env::CniArgs;
use crate::error::CniError;

/// Source of labels that come from the container runtime or its network
/// configuration (Cilium's `container:` source).
pub const SOURCE_CONTAINER: &str = "container";
pub const SOURCE_K8S: &str = "k8s";
/// Sources a configuration must not set: they belong to the agent.
const FORBIDDEN_SOURCES: &[&str] = &["reserved", "cidr", "fqdn"];

/// The pod's Kubernetes namespace label.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// The namespace's automatic `kubernetes.io/metadata.name` label, as
/// Cilium exposes namespace labels on each pod. There is no API server to
/// read other namespace labels from.
pub const NAMESPACE_NAME_LABEL: &str = "io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name";

/// Labels as `source:key[=value]`, sorted and without duplicates:
/// the pod namespace from `CNI_ARGS`, the network's `args.cni.labels` and
/// the runtime's `runtimeConfig.labels`. A key without a source gets
/// `container:`.
pub fn endpoint_labels(conf: &NetConf, args: &CniArgs) -> Result<Vec<String>, CniError> {
    let mut out = BTreeSet::new();
    if let Some(ns) = &args.k8s_pod_namespace {
        out.insert(format!("{SOURCE_K8S}:{POD_NAMESPACE_LABEL}={ns}"));
        out.insert(format!("{SOURCE_K8S}:{NAMESPACE_NAME_LABEL}={ns}"));
    }
    for (i, (key, value)) in conf.labels.iter().enumerate() {
        out.insert(label(key, value, &format!("args.cni.labels[{i}]"))?);
    }
    for (key, value) in &conf.runtime.labels {
        out.insert(label(
            key,
            value,
            &format!("runtimeConfig.labels[{key:?}]"),
        )?);
    }
    Ok(out.into_iter().collect())
}

fn label(key: &str, value: &str, field: &str) -> Result<String, CniError> {
    let (source, bare) = match key.split_once(':') {
        Some((s, k)) if !s.is_empty() => (s, k),
        _ => (SOURCE_CONTAINER, key),
    };
    let bad = |why: &str| CniError::invalid_config(format!("{field}: label key {key:?} {why}"));
    if bare.is_empty() {
        return Err(bad("is empty"));
    }
    if bare.contains('=') || bare.chars().any(char::is_whitespace) {
        return Err(bad("contains '=' or whitespace"));
    }
    if FORBIDDEN_SOURCES.contains(&source) {
        return Err(bad("uses a source only cilium-agent may set"));
    }
    Ok(if value.is_empty() {
        format!("{source}:{bare}")
    } else {
        format!("{source}:{bare}={value}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::code;

    fn conf(labels: &[(&str, &str)]) -> NetConf {
        NetConf {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn pod_namespace_becomes_two_k8s_labels() {
        let args = CniArgs {
            k8s_pod_namespace: Some("shop".into()),
            k8s_pod_name: Some("web-0".into()),
            ..Default::default()
        };
        let l = endpoint_labels(&conf(&[]), &args).unwrap();
        assert_eq!(
            l,
            vec![
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
                "k8s:io.kubernetes.pod.namespace=shop",
            ]
        );
    }

    #[test]
    fn config_labels_default_to_container_source() {
        let mut c = conf(&[("app", "web"), ("k8s:tier", "front"), ("flag", "")]);
        c.runtime.labels.insert("team".into(), "a".into());
        let l = endpoint_labels(&c, &CniArgs::default()).unwrap();
        assert_eq!(
            l,
            vec![
                "container:app=web",
                "container:flag",
                "container:team=a",
                "k8s:tier=front"
            ]
        );
    }

    #[test]
    fn reserved_and_malformed_keys_are_rejected() {
        for key in ["reserved:host", "", "a=b", "a b", "k8s:"] {
            let e = endpoint_labels(&conf(&[(key, "x")]), &CniArgs::default()).unwrap_err();
            assert_eq!(e.code, code::INVALID_NETWORK_CONFIG, "{key:?}");
            assert!(e.msg.contains("args.cni.labels[0]"), "{e:?}");
        }
    }
}

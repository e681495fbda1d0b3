//! Policy objects from the API server — `networking.k8s.io/v1`
//! NetworkPolicy, `cilium.io/v2` CiliumNetworkPolicy and
//! CiliumClusterwideNetworkPolicy — turned into Cilium rules by the policy
//! crate, exactly as `cilium policy import` would read the same objects.

use std::fmt;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::ResourceExt;
use policy::policy_labels::derived_rule_labels;
use policy::Rule;

pub const CILIUM_GROUP: &str = "cilium.io";
pub const CILIUM_VERSION: &str = "v2";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    NetworkPolicy,
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::NetworkPolicy => "NetworkPolicy",
            PolicyKind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            PolicyKind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
        }
    }

    /// The API resource of a Cilium policy kind (`None` for NetworkPolicy,
    /// which has a generated type).
    pub fn cilium_resource(self) -> Option<ApiResource> {
        let plural = match self {
            PolicyKind::NetworkPolicy => return None,
            PolicyKind::CiliumNetworkPolicy => "ciliumnetworkpolicies",
            PolicyKind::CiliumClusterwideNetworkPolicy => "ciliumclusterwidenetworkpolicies",
        };
        let gvk = GroupVersionKind::gvk(CILIUM_GROUP, CILIUM_VERSION, self.as_str());
        Some(ApiResource::from_gvk_with_plural(&gvk, plural))
    }
}

/// Which object a set of rules came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyKey {
    pub kind: PolicyKind,
    /// `None` for the clusterwide kind.
    pub namespace: Option<String>,
    pub name: String,
}

impl PolicyKey {
    /// The labels every rule of this object carries, and nothing else's
    /// does: what deleting or replacing the object matches.
    pub fn labels(&self) -> Vec<String> {
        derived_rule_labels(
            self.kind.as_str(),
            &self.name,
            self.namespace.as_deref(),
            &[],
        )
    }
}

impl fmt::Display for PolicyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind.as_str(), self.name),
            None => write!(f, "{} {}", self.kind.as_str(), self.name),
        }
    }
}

/// One policy object as the agent needs it: where it came from, and its
/// rules or the reason it cannot be enforced (naming the field).
#[derive(Debug, Clone)]
pub struct PolicyObject {
    pub key: PolicyKey,
    pub generation: Option<i64>,
    pub rules: Result<Vec<Rule>, String>,
}

impl PolicyObject {
    pub fn from_network_policy(object: &NetworkPolicy) -> PolicyObject {
        let key = PolicyKey {
            kind: PolicyKind::NetworkPolicy,
            namespace: Some(object.namespace().unwrap_or_else(|| "default".into())),
            name: object.name_any(),
        };
        // The generated type writes its own apiVersion and kind.
        let rules = rules_of(object);
        PolicyObject {
            key,
            generation: object.metadata.generation,
            rules,
        }
    }

    /// A CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy.
    pub fn from_cilium(kind: PolicyKind, object: &DynamicObject) -> PolicyObject {
        let key = PolicyKey {
            kind,
            namespace: match kind {
                PolicyKind::CiliumClusterwideNetworkPolicy => None,
                _ => Some(object.namespace().unwrap_or_else(|| "default".into())),
            },
            name: object.name_any(),
        };
        // Items of a list arrive without apiVersion and kind.
        let mut object = object.clone();
        object.types = Some(kube::api::TypeMeta {
            api_version: format!("{CILIUM_GROUP}/{CILIUM_VERSION}"),
            kind: kind.as_str().to_string(),
        });
        object.metadata.managed_fields = None;
        let rules = rules_of(&object);
        PolicyObject {
            key,
            generation: object.metadata.generation,
            rules,
        }
    }
}

/// The rules of a policy object, read exactly as `cilium policy import`
/// reads the same object; the error names the field.
fn rules_of(object: &impl serde::Serialize) -> Result<Vec<Rule>, String> {
    let text = serde_json::to_string(object).map_err(|e| e.to_string())?;
    policy::parse_rules(&text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cnp(spec: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "prod", "generation": 3},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn a_listed_cnp_without_type_meta_reads_as_its_kind() {
        let object = cnp(serde_json::json!({
            "endpointSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "client"}}]}],
        }));
        let read = PolicyObject::from_cilium(PolicyKind::CiliumNetworkPolicy, &object);
        assert_eq!(read.key.to_string(), "CiliumNetworkPolicy prod/web");
        assert_eq!(read.generation, Some(3));
        let rules = read.rules.unwrap();
        assert_eq!(rules.len(), 1);
        for label in read.key.labels() {
            assert!(rules[0].labels.contains(&label), "{label}");
        }
    }

    #[test]
    fn an_unenforceable_cnp_names_the_field() {
        let object = cnp(serde_json::json!({
            "endpointSelector": {},
            "ingress": [{"toPorts": [{"ports": [{"port": "99999"}]}]}],
        }));
        let read = PolicyObject::from_cilium(PolicyKind::CiliumNetworkPolicy, &object);
        let error = read.rules.unwrap_err();
        assert!(
            error.contains("ingress[0].toPorts[0].ports[0].port"),
            "{error}"
        );
    }

    #[test]
    fn a_network_policy_is_translated() {
        let object: NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "namespace": "prod"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "db"}},
                "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 5432}]}],
            },
        }))
        .unwrap();
        let read = PolicyObject::from_network_policy(&object);
        assert_eq!(read.key.to_string(), "NetworkPolicy prod/db");
        assert!(!read.rules.unwrap().is_empty());
    }
}

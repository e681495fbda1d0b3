//! Kubernetes `networking.k8s.io/v1` NetworkPolicy, translated into one Cilium
//! rule the way Cilium does it (pkg/k8s/network_policy.go), with the
//! SEMANTICS.md decisions:
//! - `podSelector` selects pods of the policy's namespace; keys get source `k8s`.
//! - `policyTypes` decides which directions are isolated (default: Ingress, plus
//!   Egress when there are egress rules); an isolated direction without rules
//!   denies everything (`ingress: [{}]` in Cilium terms).
//! - A rule without peers allows every peer: `fromEntities: [all]`.
//! - Peers: `podSelector` alone = that namespace; `namespaceSelector` = pods of
//!   matching namespaces through the `io.cilium.k8s.namespace.labels.*` labels,
//!   always AND "pod namespace label Exists" so that NotIn/DoesNotExist never
//!   select world, host or CIDR identities; both = AND; `ipBlock` = CIDR set.
//! - Ports without protocol are TCP; no port = every port; `endPort` inclusive.

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::cidr::CidrRule;
use crate::entities::Entity;
use crate::labels::SOURCE_K8S;
use crate::parse::{deserialize_at, ObjectError, ObjectMeta};
use crate::policy_labels::{derived_rule_labels, NAMESPACE_LABELS_PREFIX, POD_NAMESPACE_LABEL};
use crate::ports::{deserialize_port, PortProtocol, PortRule, Protocol};
use crate::rule::{EgressRule, IngressRule, Rule};
use crate::selector::{EndpointSelector, LabelSelectorRequirement, SelectorOperator};
use crate::validate::{check_cidr_set, check_port, check_selector};

pub const KIND_NETWORK_POLICY: &str = "NetworkPolicy";
const API_VERSION: &str = "networking.k8s.io/v1";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NetworkPolicyObject {
    #[serde(default)]
    api_version: Option<String>,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    spec: NetworkPolicySpec,
    #[allow(dead_code)]
    #[serde(default)]
    status: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NetworkPolicySpec {
    pod_selector: EndpointSelector,
    #[serde(default)]
    policy_types: Option<Vec<PolicyType>>,
    #[serde(default)]
    ingress: Option<Vec<NetworkPolicyRule>>,
    #[serde(default)]
    egress: Option<Vec<NetworkPolicyRule>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
enum PolicyType {
    Ingress,
    Egress,
}

/// An ingress (`from`) or egress (`to`) rule; the two differ only in the name.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NetworkPolicyRule {
    #[serde(default)]
    from: Option<Vec<NetworkPolicyPeer>>,
    #[serde(default)]
    to: Option<Vec<NetworkPolicyPeer>>,
    #[serde(default)]
    ports: Option<Vec<NetworkPolicyPort>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NetworkPolicyPeer {
    #[serde(default)]
    pod_selector: Option<EndpointSelector>,
    #[serde(default)]
    namespace_selector: Option<EndpointSelector>,
    #[serde(default)]
    ip_block: Option<CidrRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NetworkPolicyPort {
    #[serde(default)]
    protocol: Option<K8sProtocol>,
    #[serde(default, deserialize_with = "optional_port")]
    port: Option<String>,
    #[serde(default)]
    end_port: Option<i64>,
}

/// Kubernetes spells protocols in upper case only and has no ANY.
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "UPPERCASE")]
enum K8sProtocol {
    Tcp,
    Udp,
    Sctp,
}

fn optional_port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    deserialize_port(d).map(Some)
}

/// The single rule a NetworkPolicy object translates to.
pub(crate) fn rules_from_object(value: serde_yaml::Value) -> Result<Vec<Rule>, ObjectError> {
    let object: NetworkPolicyObject = deserialize_at(value)?;
    crate::parse::check_api_version(object.api_version.as_deref(), API_VERSION)?;
    let name = object.metadata.required_name()?;
    let namespace = object.metadata.namespace_or_default();
    let spec = object.spec;
    check_selector("spec.podSelector", &spec.pod_selector).map_err(ObjectError::from)?;

    let has_egress_rules = spec.egress.as_ref().is_some_and(|rules| !rules.is_empty());
    let isolates = |wanted: PolicyType| match &spec.policy_types {
        Some(types) => types.contains(&wanted),
        None => wanted == PolicyType::Ingress || has_egress_rules,
    };

    let mut rule = Rule::new(
        spec.pod_selector
            .with_key_prefix(&format!("{SOURCE_K8S}:"))
            .and(&same_namespace(namespace)),
    );
    if isolates(PolicyType::Ingress) {
        let elements = translate_rules("spec.ingress", "from", spec.ingress.as_deref(), namespace)?;
        rule.ingress = Some(
            elements
                .into_iter()
                .map(|(peer, to_ports)| IngressRule {
                    from_endpoints: peer.selector.map(|selector| vec![selector]),
                    from_entities: peer.entity.map(|entity| vec![entity]),
                    from_cidr_set: peer.cidr_set.map(|set| vec![set]),
                    to_ports,
                    ..IngressRule::default()
                })
                .collect(),
        );
    }
    if isolates(PolicyType::Egress) {
        let elements = translate_rules("spec.egress", "to", spec.egress.as_deref(), namespace)?;
        rule.egress = Some(
            elements
                .into_iter()
                .map(|(peer, to_ports)| EgressRule {
                    to_endpoints: peer.selector.map(|selector| vec![selector]),
                    to_entities: peer.entity.map(|entity| vec![entity]),
                    to_cidr_set: peer.cidr_set.map(|set| vec![set]),
                    to_ports,
                    ..EgressRule::default()
                })
                .collect(),
        );
    }
    rule.labels = derived_rule_labels(KIND_NETWORK_POLICY, name, Some(namespace), &[]);
    rule.labels.extend(object.metadata.uid_label());
    // The translation only produces valid rules; checking keeps that honest.
    rule.validate()
        .map_err(|err| ObjectError::new(format!("(translated rule).{}", err.path), err.message))?;
    Ok(vec![rule])
}

fn pod_namespace_key() -> String {
    format!("{SOURCE_K8S}:{POD_NAMESPACE_LABEL}")
}

fn same_namespace(namespace: &str) -> EndpointSelector {
    EndpointSelector::from_match_labels([(pod_namespace_key(), namespace)])
}

/// One translated peer: exactly one of the three is set.
#[derive(Default)]
struct Peer {
    selector: Option<EndpointSelector>,
    entity: Option<Entity>,
    cidr_set: Option<CidrRule>,
}

type Element = (Peer, Option<Vec<PortRule>>);

/// The elements of one direction: one per peer, each with the rule's ports.
/// An isolated direction without rules gets the one empty element that
/// enforces default deny and allows nothing.
fn translate_rules(
    path: &str,
    peers_field: &str,
    rules: Option<&[NetworkPolicyRule]>,
    namespace: &str,
) -> Result<Vec<Element>, ObjectError> {
    let rules = rules.unwrap_or_default();
    if rules.is_empty() {
        return Ok(vec![(Peer::default(), None)]);
    }
    let mut elements = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let path = format!("{path}[{index}]");
        let (peers, wrong) = match peers_field {
            "from" => (&rule.from, rule.to.is_some().then_some("to")),
            _ => (&rule.to, rule.from.is_some().then_some("from")),
        };
        if let Some(wrong) = wrong {
            return Err(ObjectError::new(
                path,
                format!("unknown field `{wrong}`, expected `{peers_field}` or `ports`"),
            ));
        }
        let to_ports = translate_ports(&path, rule.ports.as_deref())?;
        match peers.as_deref() {
            None | Some([]) => elements.push((
                Peer {
                    entity: Some(Entity::All),
                    ..Peer::default()
                },
                to_ports,
            )),
            Some(peers) => {
                for (peer_index, peer) in peers.iter().enumerate() {
                    let path = format!("{path}.{peers_field}[{peer_index}]");
                    elements.push((translate_peer(&path, peer, namespace)?, to_ports.clone()));
                }
            }
        }
    }
    Ok(elements)
}

fn translate_peer(
    path: &str,
    peer: &NetworkPolicyPeer,
    namespace: &str,
) -> Result<Peer, ObjectError> {
    let k8s_prefix = format!("{SOURCE_K8S}:");
    if let Some(block) = &peer.ip_block {
        if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
            return Err(ObjectError::new(
                path,
                "ipBlock cannot be combined with podSelector or namespaceSelector",
            ));
        }
        check_cidr_set(&format!("{path}.ipBlock"), block).map_err(ObjectError::from)?;
        return Ok(Peer {
            cidr_set: Some(block.clone()),
            ..Peer::default()
        });
    }
    for (field, selector) in [
        ("podSelector", &peer.pod_selector),
        ("namespaceSelector", &peer.namespace_selector),
    ] {
        if let Some(selector) = selector {
            check_selector(&format!("{path}.{field}"), selector).map_err(ObjectError::from)?;
        }
    }
    let pods = peer
        .pod_selector
        .as_ref()
        .map(|selector| selector.with_key_prefix(&k8s_prefix));
    let selector = match (&peer.namespace_selector, pods) {
        (None, None) => {
            return Err(ObjectError::new(
                path,
                "a peer needs podSelector, namespaceSelector or ipBlock",
            ))
        }
        (None, Some(pods)) => pods.and(&same_namespace(namespace)),
        (Some(namespaces), pods) => {
            let in_some_namespace = EndpointSelector::wildcard().with_expression(
                LabelSelectorRequirement::new(pod_namespace_key(), SelectorOperator::Exists, &[]),
            );
            let namespaces = namespaces
                .with_key_prefix(&format!("{k8s_prefix}{NAMESPACE_LABELS_PREFIX}"))
                .and(&in_some_namespace);
            match pods {
                Some(pods) => namespaces.and(&pods),
                None => namespaces,
            }
        }
    };
    Ok(Peer {
        selector: Some(selector),
        ..Peer::default()
    })
}

fn translate_ports(
    path: &str,
    ports: Option<&[NetworkPolicyPort]>,
) -> Result<Option<Vec<PortRule>>, ObjectError> {
    let Some(ports) = ports.filter(|ports| !ports.is_empty()) else {
        return Ok(None);
    };
    let mut rules = Vec::new();
    for (index, port) in ports.iter().enumerate() {
        let path = format!("{path}.ports[{index}]");
        let protocol = match port.protocol.unwrap_or(K8sProtocol::Tcp) {
            K8sProtocol::Tcp => Protocol::Tcp,
            K8sProtocol::Udp => Protocol::Udp,
            K8sProtocol::Sctp => Protocol::Sctp,
        };
        if port.port.is_none() && port.end_port.is_some() {
            return Err(ObjectError::new(
                format!("{path}.endPort"),
                "endPort needs a port",
            ));
        }
        let translated = PortProtocol {
            port: port.port.clone().unwrap_or_else(|| "0".to_string()),
            end_port: port.end_port,
            protocol,
        };
        check_port(&path, &translated).map_err(ObjectError::from)?;
        rules.push(PortRule {
            ports: vec![translated],
            rules: None,
        });
    }
    Ok(Some(rules))
}

#[cfg(test)]
#[path = "k8s_tests.rs"]
mod tests;

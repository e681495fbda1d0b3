//! Cilium's rule format (the `cilium policy import` JSON, the `spec` of a
//! CiliumNetworkPolicy), field for field, camelCase as Cilium writes it.
//!
//! Unknown fields are rejected so a typo never silently widens or narrows a
//! policy. `Option<Vec<_>>` is kept wherever Cilium distinguishes "absent" from
//! "empty list" (an explicit `fromEndpoints: []` selects nobody), so that a rule
//! serializes back as it was written (CIDRs come back normalized).
//!
//! Deny sections (`ingressDeny`, `egressDeny`) reuse the allow element types:
//! they take the same peers and ports; what Cilium's deny types lack (L7
//! rules, `toFQDNs`) is refused there by validation.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::cidr::{Cidr, CidrRule};
use crate::entities::Entity;
use crate::fqdn::FqdnSelector;
use crate::labels::{Label, LabelError, Labels, SOURCE_UNSPEC};
use crate::mapstate::Direction;
use crate::ports::{IcmpRule, PortRule};
use crate::selector::EndpointSelector;

/// One policy rule: which endpoints it applies to, and what it allows or denies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub endpoint_selector: EndpointSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IngressRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_deny: Option<Vec<IngressRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<EgressRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_deny: Option<Vec<EgressRule>>,
    /// Whether this rule puts the endpoint into default deny for a direction it
    /// has a section for (Cilium's `enableDefaultDeny`; absent = yes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_default_deny: Option<DefaultDeny>,
    /// Cilium labels naming the rule (`k8s:policy=x`), stored in canonical
    /// `source:key=value` form; used to replace and delete rules.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_rule_labels"
    )]
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `enableDefaultDeny`: per direction, absent = true.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultDeny {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<bool>,
}

/// One element of `ingress`/`ingressDeny`: peers traffic comes from, on which ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_endpoints: Option<Vec<EndpointSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_entities: Option<Vec<Entity>>,
    #[serde(default, rename = "fromCIDR", skip_serializing_if = "Option::is_none")]
    pub from_cidr: Option<Vec<Cidr>>,
    #[serde(
        default,
        rename = "fromCIDRSet",
        skip_serializing_if = "Option::is_none"
    )]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
}

/// One element of `egress`/`egressDeny`: peers traffic goes to, on which ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_endpoints: Option<Vec<EndpointSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_entities: Option<Vec<Entity>>,
    #[serde(default, rename = "toCIDR", skip_serializing_if = "Option::is_none")]
    pub to_cidr: Option<Vec<Cidr>>,
    #[serde(default, rename = "toCIDRSet", skip_serializing_if = "Option::is_none")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    /// DNS names: the IPs learned for them (see `fqdn`). Allow only.
    #[serde(default, rename = "toFQDNs", skip_serializing_if = "Option::is_none")]
    pub to_fqdns: Option<Vec<FqdnSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
}

/// Field names of an element's peer kinds, for error paths, and the
/// direction the element is for.
pub struct PeerFields {
    pub endpoints: &'static str,
    pub entities: &'static str,
    pub cidr: &'static str,
    pub cidr_set: &'static str,
    pub direction: Direction,
}

/// The field name of `toFQDNs` (egress only).
pub const TO_FQDNS: &str = "toFQDNs";

/// A direction-independent view of an ingress or egress element, so validation
/// and resolution are written once.
pub trait PeerRule {
    const FIELDS: PeerFields;
    /// `fromEndpoints` / `toEndpoints` as written (`None` = absent).
    fn endpoint_selectors(&self) -> Option<&[EndpointSelector]>;
    fn endpoint_selectors_mut(&mut self) -> Option<&mut Vec<EndpointSelector>>;
    fn entities(&self) -> Option<&[Entity]>;
    fn cidrs(&self) -> Option<&[Cidr]>;
    fn cidr_sets(&self) -> Option<&[CidrRule]>;
    /// `toFQDNs` as written; ingress elements have none.
    fn fqdns(&self) -> Option<&[FqdnSelector]> {
        None
    }
    /// `toPorts` as written (`None` = absent).
    fn port_rules(&self) -> Option<&[PortRule]>;
    fn icmp_rules(&self) -> Option<&[IcmpRule]>;

    /// True when some peer field is present (even as an empty list).
    fn has_l3(&self) -> bool {
        self.endpoint_selectors().is_some()
            || self.entities().is_some()
            || self.cidrs().is_some()
            || self.cidr_sets().is_some()
            || self.fqdns().is_some()
    }

    /// True when the element restricts L4 (non-empty `toPorts` or `icmps`).
    fn has_l4(&self) -> bool {
        self.port_rules().is_some_and(|rules| !rules.is_empty())
            || self.icmp_rules().is_some_and(|rules| !rules.is_empty())
    }
}

macro_rules! peer_rule {
    ($type:ty, $endpoints:ident, $entities:ident, $cidr:ident, $cidr_set:ident, $fields:expr
     $(, $fqdns:ident)?) => {
        impl PeerRule for $type {
            const FIELDS: PeerFields = $fields;
            fn endpoint_selectors(&self) -> Option<&[EndpointSelector]> {
                self.$endpoints.as_deref()
            }
            fn endpoint_selectors_mut(&mut self) -> Option<&mut Vec<EndpointSelector>> {
                self.$endpoints.as_mut()
            }
            fn entities(&self) -> Option<&[Entity]> {
                self.$entities.as_deref()
            }
            fn cidrs(&self) -> Option<&[Cidr]> {
                self.$cidr.as_deref()
            }
            fn cidr_sets(&self) -> Option<&[CidrRule]> {
                self.$cidr_set.as_deref()
            }
            $(fn fqdns(&self) -> Option<&[FqdnSelector]> {
                self.$fqdns.as_deref()
            })?
            fn port_rules(&self) -> Option<&[PortRule]> {
                self.to_ports.as_deref()
            }
            fn icmp_rules(&self) -> Option<&[IcmpRule]> {
                self.icmps.as_deref()
            }
        }
    };
}

peer_rule!(
    IngressRule,
    from_endpoints,
    from_entities,
    from_cidr,
    from_cidr_set,
    PeerFields {
        endpoints: "fromEndpoints",
        entities: "fromEntities",
        cidr: "fromCIDR",
        cidr_set: "fromCIDRSet",
        direction: Direction::Ingress,
    }
);

peer_rule!(
    EgressRule,
    to_endpoints,
    to_entities,
    to_cidr,
    to_cidr_set,
    PeerFields {
        endpoints: "toEndpoints",
        entities: "toEntities",
        cidr: "toCIDR",
        cidr_set: "toCIDRSet",
        direction: Direction::Egress,
    },
    to_fqdns
);

impl Rule {
    /// A rule selecting `endpoint_selector` with no sections yet.
    pub fn new(endpoint_selector: EndpointSelector) -> Self {
        Rule {
            endpoint_selector,
            ingress: None,
            ingress_deny: None,
            egress: None,
            egress_deny: None,
            enable_default_deny: None,
            labels: Vec::new(),
            description: None,
        }
    }

    /// Whether this rule applies to an endpoint with these labels.
    pub fn selects(&self, endpoint: &Labels) -> bool {
        self.endpoint_selector.matches(endpoint)
    }

    /// The rule's labels as a set.
    pub fn parsed_labels(&self) -> Result<Labels, LabelError> {
        Labels::parse_all(&self.labels)
    }
}

/// Rule labels come as strings (`"k8s:policy=x"`) or, as Cilium also writes them,
/// objects `{"key": ..., "value": ..., "source": ...}`; both are stored canonically.
fn deserialize_rule_labels<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    let labels = Option::<Vec<RuleLabel>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(labels
        .into_iter()
        .map(|label| label.0.to_string())
        .collect())
}

struct RuleLabel(Label);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelObject {
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    source: String,
}

impl<'de> Deserialize<'de> for RuleLabel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LabelVisitor;

        impl<'de> Visitor<'de> for LabelVisitor {
            type Value = RuleLabel;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a label string \"source:key=value\" or an object with key, value, source",
                )
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<RuleLabel, E> {
                text.parse().map(RuleLabel).map_err(de::Error::custom)
            }
            fn visit_map<M: de::MapAccess<'de>>(self, map: M) -> Result<RuleLabel, M::Error> {
                let object = LabelObject::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if object.key.is_empty() {
                    return Err(de::Error::custom("label has an empty key"));
                }
                let source = if object.source.is_empty() {
                    SOURCE_UNSPEC.to_string()
                } else {
                    object.source
                };
                Ok(RuleLabel(Label::new(source, object.key, object.value)))
            }
        }

        deserializer.deserialize_any(LabelVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_labels_accept_strings_and_objects() {
        let rule: Rule = serde_json::from_str(
            r#"{"endpointSelector": {}, "labels": ["k8s:policy=a", "b=c",
                {"key": "name", "value": "x"}, {"key": "n", "value": "y", "source": "k8s"}]}"#,
        )
        .unwrap();
        assert_eq!(
            rule.labels,
            vec!["k8s:policy=a", "unspec:b=c", "unspec:name=x", "k8s:n=y"]
        );
        assert_eq!(rule.parsed_labels().unwrap().len(), 4);
    }

    #[test]
    fn absent_and_empty_lists_stay_distinct() {
        let text = r#"{"endpointSelector":{},"ingress":[{},{"fromEndpoints":[]}],"egress":[]}"#;
        let rule: Rule = serde_json::from_str(text).unwrap();
        let ingress = rule.ingress.as_ref().unwrap();
        assert_eq!(ingress[0].from_endpoints, None);
        assert_eq!(ingress[1].from_endpoints, Some(vec![]));
        assert_eq!(serde_json::to_string(&rule).unwrap(), text);
    }

    #[test]
    fn every_construct_round_trips_in_cilium_spelling() {
        let text = r#"{"endpointSelector":{},"ingress":[{"fromEntities":["world","remote-node"]},{"fromCIDR":["10.0.0.0/8"],"toPorts":[{"ports":[{"port":"80","endPort":90,"protocol":"TCP"}]}]}],"ingressDeny":[{"fromCIDRSet":[{"cidr":"10.0.0.0/8","except":["10.1.0.0/16"]}]}],"egress":[{"toEntities":["kube-apiserver"],"icmps":[{"fields":[{"family":"IPv4","type":"8"}]}]}],"egressDeny":[{"toCIDR":["192.168.0.1/32"]}],"enableDefaultDeny":{"egress":false}}"#;
        let rule: Rule = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&rule).unwrap(), text);
        assert!(rule.ingress.as_ref().unwrap()[1].has_l3());
        assert!(rule.ingress.as_ref().unwrap()[1].has_l4());
        assert!(!IngressRule::default().has_l3());
    }

    #[test]
    fn to_fqdns_round_trips_and_counts_as_a_peer() {
        let text = r#"{"endpointSelector":{},"egress":[{"toFQDNs":[{"matchName":"api.github.com"},{"matchPattern":"*.cilium.io"}],"toPorts":[{"ports":[{"port":"443","protocol":"TCP"}]}]},{"toFQDNs":[]}]}"#;
        let rule: Rule = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&rule).unwrap(), text);
        let egress = rule.egress.as_ref().unwrap();
        assert_eq!(egress[0].fqdns().unwrap().len(), 2);
        assert!(
            egress[1].has_l3(),
            "an empty toFQDNs still names a peer kind"
        );
        assert_eq!(IngressRule::default().fqdns(), None);
    }
}

//! Cilium's rule format (the `cilium policy import` JSON, the `spec` of a
//! CiliumNetworkPolicy), field for field, camelCase as Cilium writes it.
//!
//! Unknown fields are rejected so a typo never silently widens or narrows a
//! policy. `Option<Vec<_>>` is kept wherever Cilium distinguishes "absent" from
//! "empty list" (an explicit `fromEndpoints: []` selects nobody), so that a rule
//! serializes back exactly as it was written.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::labels::{Label, LabelError, Labels, SOURCE_UNSPEC};
use crate::mapstate::{PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use crate::selector::EndpointSelector;

/// One policy rule: which endpoints it applies to, and what it allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub endpoint_selector: EndpointSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IngressRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<EgressRule>>,
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

/// One element of `ingress`: peers it allows traffic from, on which ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_endpoints: Option<Vec<EndpointSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
}

/// One element of `egress`: peers it allows traffic to, on which ports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_endpoints: Option<Vec<EndpointSelector>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
}

/// One element of `toPorts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRule {
    #[serde(default)]
    pub ports: Vec<PortProtocol>,
}

/// A port and protocol. `port` stays a string like Cilium's (`"80"`; `"0"` = any
/// port); named ports will be strings that are not numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortProtocol {
    #[serde(deserialize_with = "deserialize_port")]
    pub port: String,
    #[serde(default)]
    pub protocol: Protocol,
}

/// L4 protocol of a port rule. Cilium's ANY means TCP, UDP and SCTP (not ICMP).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    #[default]
    Any,
}

/// A direction-independent view of an ingress or egress element, so resolution
/// is written once. Later L3 kinds (entities, CIDRs) extend this trait.
pub trait PeerRule {
    /// `fromEndpoints` / `toEndpoints` as written (`None` = absent).
    fn endpoint_selectors(&self) -> Option<&[EndpointSelector]>;
    /// `toPorts` as written (`None` = absent).
    fn port_rules(&self) -> Option<&[PortRule]>;
}

impl PeerRule for IngressRule {
    fn endpoint_selectors(&self) -> Option<&[EndpointSelector]> {
        self.from_endpoints.as_deref()
    }
    fn port_rules(&self) -> Option<&[PortRule]> {
        self.to_ports.as_deref()
    }
}

impl PeerRule for EgressRule {
    fn endpoint_selectors(&self) -> Option<&[EndpointSelector]> {
        self.to_endpoints.as_deref()
    }
    fn port_rules(&self) -> Option<&[PortRule]> {
        self.to_ports.as_deref()
    }
}

impl Rule {
    /// A rule selecting `endpoint_selector` with no sections yet.
    pub fn new(endpoint_selector: EndpointSelector) -> Self {
        Rule {
            endpoint_selector,
            ingress: None,
            egress: None,
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

impl Protocol {
    /// IANA protocol numbers this protocol stands for in the policy map.
    pub fn iana_numbers(self) -> &'static [u8] {
        match self {
            Protocol::Tcp => &[PROTO_TCP],
            Protocol::Udp => &[PROTO_UDP],
            Protocol::Any => &[PROTO_TCP, PROTO_UDP, PROTO_SCTP],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Any => "ANY",
        }
    }
}

/// An unknown protocol name; the message lists the accepted ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?} (expected TCP, UDP or ANY)")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_uppercase().as_str() {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "ANY" => Ok(Protocol::Any),
            _ => Err(UnknownProtocol(text.to_string())),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// Why a port string is not usable yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("port {0:?} is out of range (expected 0-65535; 0 means any port)")]
    OutOfRange(String),
    #[error("port {0:?}: named ports are not supported yet (expected a number 0-65535)")]
    Named(String),
    #[error("port is empty (expected a number 0-65535)")]
    Empty,
}

impl PortProtocol {
    pub fn new(port: u16, protocol: Protocol) -> Self {
        PortProtocol {
            port: port.to_string(),
            protocol,
        }
    }

    /// The numeric port (0 = any port).
    pub fn port_number(&self) -> Result<u16, PortError> {
        let text = self.port.trim();
        if text.is_empty() {
            return Err(PortError::Empty);
        }
        if text.starts_with('-') || text.bytes().all(|byte| byte.is_ascii_digit()) {
            return text
                .parse()
                .map_err(|_| PortError::OutOfRange(self.port.clone()));
        }
        Err(PortError::Named(self.port.clone()))
    }
}

/// Cilium accepts `port: 80` as well as `port: "80"`; both become the string.
fn deserialize_port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct PortVisitor;

    impl Visitor<'_> for PortVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a port number or a string")
        }
        fn visit_u64<E: de::Error>(self, value: u64) -> Result<String, E> {
            Ok(value.to_string())
        }
        fn visit_i64<E: de::Error>(self, value: i64) -> Result<String, E> {
            Ok(value.to_string())
        }
        fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
            Ok(value.to_string())
        }
    }

    deserializer.deserialize_any(PortVisitor)
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
    fn protocol_parsing_is_case_insensitive_and_prints_upper() {
        assert_eq!("tcp".parse(), Ok(Protocol::Tcp));
        assert_eq!("Udp".parse(), Ok(Protocol::Udp));
        assert_eq!("ANY".parse(), Ok(Protocol::Any));
        assert_eq!(
            "TCPX".parse::<Protocol>().unwrap_err().to_string(),
            r#"unknown protocol "TCPX" (expected TCP, UDP or ANY)"#
        );
        assert_eq!(serde_json::to_string(&Protocol::Udp).unwrap(), r#""UDP""#);
        assert_eq!(Protocol::Any.iana_numbers(), &[6, 17, 132]);
    }

    #[test]
    fn port_accepts_number_or_string_and_defaults_to_any() {
        let from_number: PortProtocol = serde_json::from_str(r#"{"port": 80}"#).unwrap();
        let from_string: PortProtocol = serde_json::from_str(r#"{"port": "80"}"#).unwrap();
        assert_eq!(from_number, from_string);
        assert_eq!(from_number.protocol, Protocol::Any);
        assert_eq!(from_number.port_number(), Ok(80));
        assert!(serde_json::from_str::<PortProtocol>(r#"{"port": 1.5}"#).is_err());
    }

    #[test]
    fn port_numbers_are_checked() {
        let port = |text: &str| PortProtocol {
            port: text.to_string(),
            protocol: Protocol::Tcp,
        };
        assert_eq!(port("0").port_number(), Ok(0));
        assert_eq!(port("65535").port_number(), Ok(65535));
        assert_eq!(
            port("65536").port_number(),
            Err(PortError::OutOfRange("65536".into()))
        );
        assert_eq!(
            port("-1").port_number(),
            Err(PortError::OutOfRange("-1".into()))
        );
        assert_eq!(
            port("http").port_number(),
            Err(PortError::Named("http".into()))
        );
        assert_eq!(port("").port_number(), Err(PortError::Empty));
    }

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
}

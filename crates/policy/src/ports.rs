//! The L4 part of a rule element: `toPorts` (ports, ranges, protocols) and
//! `icmps` (ICMP types), as Cilium writes them.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::l7::L7Rules;
use crate::mapstate::{PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP};

/// One element of `toPorts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRule {
    #[serde(default)]
    pub ports: Vec<PortProtocol>,
    /// L7 rules; traffic on these ports goes through the proxy (None = L4 only).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::l7::deserialize_validated"
    )]
    pub rules: Option<L7Rules>,
}

/// A port (or inclusive range `port`..=`endPort`) and protocol. `port` stays a
/// string like Cilium's (`"80"`; `"0"` = any port; `"http"` = the container
/// port of that name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortProtocol {
    #[serde(deserialize_with = "deserialize_port")]
    pub port: String,
    /// Last port of a range; absent or 0 = just `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i64>,
    #[serde(default)]
    pub protocol: Protocol,
}

/// An endpoint's container ports by name (`http` → TCP 8080): what named
/// ports in its ingress rules mean. Protocol numbers as the datapath keys them.
pub type NamedPorts = std::collections::BTreeMap<String, (u8, u16)>;

/// Whether `text` is a port name as Kubernetes allows one (IANA service
/// name: at most 15 lowercase letters, digits and inner single dashes,
/// at least one letter).
pub fn is_port_name(text: &str) -> bool {
    (1..=15).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && text.bytes().any(|b| b.is_ascii_lowercase())
        && !text.starts_with('-')
        && !text.ends_with('-')
        && !text.contains("--")
}

/// L4 protocol of a port rule. Cilium's ANY means TCP, UDP and SCTP (not ICMP).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    #[default]
    Any,
}

impl Protocol {
    /// IANA protocol numbers this protocol stands for in the policy map.
    pub fn iana_numbers(self) -> &'static [u8] {
        match self {
            Protocol::Tcp => &[PROTO_TCP],
            Protocol::Udp => &[PROTO_UDP],
            Protocol::Sctp => &[PROTO_SCTP],
            Protocol::Any => &[PROTO_TCP, PROTO_UDP, PROTO_SCTP],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Any => "ANY",
        }
    }
}

/// An unknown protocol name; the message lists the accepted ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?} (expected TCP, UDP, SCTP or ANY)")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_uppercase().as_str() {
            "TCP" => Ok(Protocol::Tcp),
            "UDP" => Ok(Protocol::Udp),
            "SCTP" => Ok(Protocol::Sctp),
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

/// Why a port or range is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("port {0:?} is out of range (expected 0-65535; 0 means any port)")]
    OutOfRange(String),
    #[error("port {0:?} is neither a number 0-65535 nor a port name (at most 15 lowercase letters, digits and dashes)")]
    Named(String),
    #[error("port is empty (expected a number 0-65535)")]
    Empty,
    #[error("{end} is below port {port}")]
    EndBelowPort { port: u16, end: i64 },
    #[error("{0} is out of range (expected at most 65535)")]
    EndOutOfRange(i64),
    #[error("{0}: a range needs a non-zero port (port 0 already means every port)")]
    RangeFromZero(i64),
}

/// Which ports a `PortProtocol` covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSpan {
    /// Every port of the protocol (`port: 0`).
    Any,
    /// `first..=last`, both non-zero.
    Range(u16, u16),
}

impl PortProtocol {
    pub fn new(port: u16, protocol: Protocol) -> Self {
        PortProtocol {
            port: port.to_string(),
            end_port: None,
            protocol,
        }
    }

    pub fn range(first: u16, last: u16, protocol: Protocol) -> Self {
        PortProtocol {
            end_port: Some(i64::from(last)),
            ..PortProtocol::new(first, protocol)
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

    /// The port's name, when it names a container port instead of a number.
    pub fn port_name(&self) -> Option<&str> {
        let text = self.port.trim();
        is_port_name(text).then_some(text)
    }

    /// The ports covered. Errors from `port` and from `endPort` are told apart
    /// by `PortError` variant (the `End*`/`RangeFromZero` ones are `endPort`'s).
    pub fn span(&self) -> Result<PortSpan, PortError> {
        let port = self.port_number()?;
        let end = self.end_port.unwrap_or(0);
        match (port, end) {
            (_, end) if end > i64::from(u16::MAX) => Err(PortError::EndOutOfRange(end)),
            (0, 0) => Ok(PortSpan::Any),
            (0, end) => Err(PortError::RangeFromZero(end)),
            (port, 0) => Ok(PortSpan::Range(port, port)),
            (port, end) if end < i64::from(port) => Err(PortError::EndBelowPort { port, end }),
            (port, end) => Ok(PortSpan::Range(port, end as u16)),
        }
    }
}

impl PortError {
    /// True when the fault is in `endPort` rather than `port`.
    pub fn is_end_port(&self) -> bool {
        matches!(
            self,
            PortError::EndBelowPort { .. }
                | PortError::EndOutOfRange(_)
                | PortError::RangeFromZero(_)
        )
    }
}

/// One element of `icmps`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IcmpRule {
    #[serde(default)]
    pub fields: Vec<IcmpField>,
}

/// An ICMP type of one family. In the policy map the type travels in the port
/// field (protocol 1 or 58, "port" = type), which is where the datapath puts it.
/// `family: IPv6` gives protocol-58 (ICMPv6) keys: no IPv4 packet matches
/// them, and the datapath drops IPv6 for now (issue 18), so today they allow
/// nothing, while still making the element's direction default-deny as in
/// Cilium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IcmpField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(rename = "type", deserialize_with = "deserialize_port")]
    pub icmp_type: String,
}

/// IPv4 ICMP type names Cilium accepts besides numbers (its
/// `icmpIpv4TypeNameToCode`).
const ICMPV4_TYPES: [(&str, u8); 14] = [
    ("EchoReply", 0),
    ("DestinationUnreachable", 3),
    ("Redirect", 5),
    ("Echo", 8),
    ("EchoRequest", 8),
    ("RouterAdvertisement", 9),
    ("RouterSelection", 10),
    ("TimeExceeded", 11),
    ("ParameterProblem", 12),
    ("Timestamp", 13),
    ("TimestampReply", 14),
    ("Photuris", 40),
    ("ExtendedEchoRequest", 42),
    ("ExtendedEchoReply", 43),
];

/// ICMPv6 type names Cilium accepts with `family: IPv6` (its
/// `icmpIpv6TypeNameToCode`).
const ICMPV6_TYPES: [(&str, u8); 27] = [
    ("DestinationUnreachable", 1),
    ("PacketTooBig", 2),
    ("TimeExceeded", 3),
    ("ParameterProblem", 4),
    ("EchoRequest", 128),
    ("EchoReply", 129),
    ("MulticastListenerQuery", 130),
    ("MulticastListenerReport", 131),
    ("MulticastListenerDone", 132),
    ("RouterSolicitation", 133),
    ("RouterAdvertisement", 134),
    ("NeighborSolicitation", 135),
    ("NeighborAdvertisement", 136),
    ("RedirectMessage", 137),
    ("RouterRenumbering", 138),
    ("ICMPNodeInformationQuery", 139),
    ("ICMPNodeInformationResponse", 140),
    ("InverseNeighborDiscoverySolicitation", 141),
    ("InverseNeighborDiscoveryAdvertisement", 142),
    ("HomeAgentAddressDiscoveryRequest", 144),
    ("HomeAgentAddressDiscoveryReply", 145),
    ("MobilePrefixSolicitation", 146),
    ("MobilePrefixAdvertisement", 147),
    ("DuplicateAddressRequestCodeSuffix", 157),
    ("DuplicateAddressConfirmationCodeSuffix", 158),
    ("ExtendedEchoRequest", 160),
    ("ExtendedEchoReply", 161),
];

impl IcmpField {
    pub fn new(icmp_type: u8) -> Self {
        IcmpField {
            family: None,
            icmp_type: icmp_type.to_string(),
        }
    }

    /// IANA protocol of the family: ICMP (1) for IPv4 (the default), 58 for IPv6.
    pub fn protocol(&self) -> Result<u8, String> {
        match self.family.as_deref() {
            None | Some("IPv4") => Ok(PROTO_ICMP),
            Some("IPv6") => Ok(PROTO_ICMPV6),
            Some(other) => Err(format!("unknown family {other:?} (expected IPv4 or IPv6)")),
        }
    }

    /// The numeric type; names (`EchoRequest`) are looked up for the family.
    pub fn type_number(&self) -> Result<u8, String> {
        let text = self.icmp_type.trim();
        if text.bytes().all(|byte| byte.is_ascii_digit()) && !text.is_empty() {
            return text
                .parse()
                .map_err(|_| format!("type {text} is out of range (expected 0-255)"));
        }
        let names: &[(&str, u8)] = match self.protocol()? {
            PROTO_ICMPV6 => &ICMPV6_TYPES,
            _ => &ICMPV4_TYPES,
        };
        names
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, number)| *number)
            .ok_or_else(|| {
                format!("unknown ICMP type {text:?} (expected 0-255 or a name such as EchoRequest)")
            })
    }
}

/// Cilium accepts `port: 80` as well as `port: "80"`; both become the string.
pub(crate) fn deserialize_port<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn port(text: &str) -> PortProtocol {
        PortProtocol {
            port: text.to_string(),
            end_port: None,
            protocol: Protocol::Tcp,
        }
    }

    #[test]
    fn protocol_parsing_is_case_insensitive_and_prints_upper() {
        assert_eq!("tcp".parse(), Ok(Protocol::Tcp));
        assert_eq!("Udp".parse(), Ok(Protocol::Udp));
        assert_eq!("sctp".parse(), Ok(Protocol::Sctp));
        assert_eq!("ANY".parse(), Ok(Protocol::Any));
        assert_eq!(
            "TCPX".parse::<Protocol>().unwrap_err().to_string(),
            r#"unknown protocol "TCPX" (expected TCP, UDP, SCTP or ANY)"#
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
    fn spans_and_range_errors() {
        let ranged = |first: &str, end: i64| PortProtocol {
            end_port: Some(end),
            ..port(first)
        };
        assert_eq!(port("0").span(), Ok(PortSpan::Any));
        assert_eq!(port("80").span(), Ok(PortSpan::Range(80, 80)));
        assert_eq!(ranged("80", 90).span(), Ok(PortSpan::Range(80, 90)));
        assert_eq!(ranged("80", 80).span(), Ok(PortSpan::Range(80, 80)));
        assert_eq!(ranged("80", 0).span(), Ok(PortSpan::Range(80, 80)));
        assert_eq!(
            ranged("80", 70).span().unwrap_err().to_string(),
            "70 is below port 80"
        );
        assert_eq!(ranged("0", 70).span(), Err(PortError::RangeFromZero(70)));
        assert_eq!(
            ranged("80", 70000).span(),
            Err(PortError::EndOutOfRange(70000))
        );
        assert!(ranged("80", 70).span().unwrap_err().is_end_port());
        assert!(!port("x").span().unwrap_err().is_end_port());
        assert_eq!(
            PortProtocol::range(8000, 8080, Protocol::Tcp).span(),
            Ok(PortSpan::Range(8000, 8080))
        );
    }

    #[test]
    fn icmp_types_by_number_or_name() {
        let field: IcmpField = serde_json::from_str(r#"{"type": 8, "family": "IPv4"}"#).unwrap();
        assert_eq!((field.protocol(), field.type_number()), (Ok(1), Ok(8)));
        let field: IcmpField = serde_json::from_str(r#"{"type": "EchoRequest"}"#).unwrap();
        assert_eq!(field.type_number(), Ok(8));
        let field: IcmpField =
            serde_json::from_str(r#"{"type": "EchoRequest", "family": "IPv6"}"#).unwrap();
        assert_eq!((field.protocol(), field.type_number()), (Ok(58), Ok(128)));
        let field: IcmpField = serde_json::from_str(r#"{"type": 300}"#).unwrap();
        assert!(field.type_number().is_err());
        let field: IcmpField = serde_json::from_str(r#"{"type": 8, "family": "v4"}"#).unwrap();
        assert!(field.protocol().unwrap_err().contains("unknown family"));
    }
}

//! IPv4 prefixes in policy (`fromCIDR`, `toCIDRSet`, NetworkPolicy `ipBlock`) and
//! the CIDR identities Cilium gives them.
//!
//! Cilium's model: every prefix a rule mentions (except prefixes included) gets an
//! identity of its own, labelled `cidr:<prefix>` plus `reserved:world`. A CIDR
//! peer selects the identities whose prefix lies inside its own (a `cidr:` key
//! matches by containment), so `10.0.0.0/8` also selects the identity of
//! `10.1.0.0/16`, and the `world` entity covers every CIDR identity. Pods never
//! carry `cidr:` labels, so CIDR rules never select cluster pods.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::labels::{Label, Labels, SOURCE_RESERVED};
use crate::rule::{PeerRule, Rule};
use crate::selector::{EndpointSelector, LabelSelectorRequirement, SelectorOperator};

/// Source of the labels of CIDR identities (`cidr:10.0.0.0/8`).
pub const SOURCE_CIDR: &str = "cidr";

/// An IPv4 prefix, normalized: host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    len: u8,
}

/// Why a CIDR string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IPv4 address or prefix (expected e.g. 10.0.0.0/8 or 10.0.0.1)")]
    Malformed(String),
    #[error("{0:?}: IPv6 prefixes are not supported")]
    Ipv6(String),
    #[error("{0:?}: prefix length must be 0-32")]
    BadLength(String),
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl Ipv4Cidr {
    /// The prefix `addr/len` with host bits cleared; `None` when `len > 32`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        (len <= 32).then(|| Ipv4Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask(len)),
            len,
        })
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// True when `other` lies inside this prefix (a prefix contains itself).
    pub fn contains(&self, other: &Ipv4Cidr) -> bool {
        other.len >= self.len && u32::from(other.addr) & mask(self.len) == u32::from(self.addr)
    }

    pub fn contains_addr(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.len) == u32::from(self.addr)
    }

    /// This prefix cut to `len` bits (`len` at most the current length).
    pub fn truncate(&self, len: u8) -> Ipv4Cidr {
        Ipv4Cidr::new(self.addr, len.min(self.len)).expect("length is at most 32")
    }

    /// The label CIDR identities of this prefix (and longer ones) carry.
    pub fn label(&self) -> Label {
        Label::new(SOURCE_CIDR, self.to_string(), "")
    }

    /// The selector of this prefix as a peer: identities with its `cidr:` label.
    /// `0.0.0.0/0` is everything outside the cluster, i.e. `reserved:world`, which
    /// the world identity and every CIDR identity carry.
    pub fn selector_key(&self) -> String {
        if self.len == 0 {
            format!("{SOURCE_RESERVED}:world")
        } else {
            format!("{SOURCE_CIDR}:{self}")
        }
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        if addr.contains(':') {
            return Err(CidrError::Ipv6(text.to_string()));
        }
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| CidrError::Malformed(text.to_string()))?;
        let len = match len {
            None => 32,
            Some(len) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => len
                .parse::<u8>()
                .map_err(|_| CidrError::BadLength(text.to_string()))?,
            Some(_) => return Err(CidrError::Malformed(text.to_string())),
        };
        Ipv4Cidr::new(addr, len).ok_or_else(|| CidrError::BadLength(text.to_string()))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Serialize for Ipv4Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `fromCIDRSet`/`toCIDRSet` element (and NetworkPolicy `ipBlock`): a prefix with
/// holes carved out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CidrRule {
    pub cidr: Ipv4Cidr,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<Ipv4Cidr>,
}

impl CidrRule {
    /// Identities of `cidr` that carry none of the except labels.
    pub fn selector(&self) -> EndpointSelector {
        self.except.iter().fold(
            EndpointSelector::from_match_labels([(self.cidr.selector_key(), "")]),
            |selector, hole| {
                selector.with_expression(LabelSelectorRequirement::new(
                    hole.selector_key(),
                    SelectorOperator::DoesNotExist,
                    &[],
                ))
            },
        )
    }
}

/// The selector of a plain `fromCIDR`/`toCIDR` entry.
pub fn cidr_selector(prefix: &Ipv4Cidr) -> EndpointSelector {
    EndpointSelector::from_match_labels([(prefix.selector_key(), "")])
}

/// Every prefix the rules mention (allow and deny sections, except prefixes
/// included), each needing a CIDR identity. `0.0.0.0/0` is left out: the world
/// identity already stands for it.
pub fn cidr_prefixes(rules: &[Rule]) -> BTreeSet<Ipv4Cidr> {
    fn collect(element: &impl PeerRule, into: &mut BTreeSet<Ipv4Cidr>) {
        into.extend(element.cidrs().into_iter().flatten().copied());
        for set in element.cidr_sets().into_iter().flatten() {
            into.insert(set.cidr);
            into.extend(set.except.iter().copied());
        }
    }
    let mut prefixes = BTreeSet::new();
    for rule in rules {
        for element in rule.ingress.iter().chain(&rule.ingress_deny).flatten() {
            collect(element, &mut prefixes);
        }
        for element in rule.egress.iter().chain(&rule.egress_deny).flatten() {
            collect(element, &mut prefixes);
        }
    }
    prefixes.retain(|prefix| prefix.len > 0);
    prefixes
}

/// Labels of the identity of `prefix`: its `cidr:` label and `reserved:world`.
/// Shorter prefixes select it by containment (see `selector`), so the
/// identity does not carry a label for each of them.
pub fn cidr_identity_labels(prefix: Ipv4Cidr) -> Labels {
    [prefix.label(), Label::new(SOURCE_RESERVED, "world", "")]
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Ipv4Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_normalizes_and_prints() {
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("192.168.1.7").to_string(), "192.168.1.7/32");
        assert_eq!(cidr("0.0.0.0/0").prefix_len(), 0);
        assert_eq!(
            "10.0.0.0/33".parse::<Ipv4Cidr>(),
            Err(CidrError::BadLength("10.0.0.0/33".into()))
        );
        assert_eq!(
            "fd00::/8".parse::<Ipv4Cidr>(),
            Err(CidrError::Ipv6("fd00::/8".into()))
        );
        for bad in ["10.0.0/8", "x", "10.0.0.0/", "10.0.0.0/a", ""] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&cidr("10.0.0.1/24")).unwrap();
        assert_eq!(json, r#""10.0.0.0/24""#);
        assert_eq!(
            serde_json::from_str::<Ipv4Cidr>(&json).unwrap(),
            cidr("10.0.0.0/24")
        );
    }

    #[test]
    fn containment() {
        let ten = cidr("10.0.0.0/8");
        assert!(ten.contains(&cidr("10.1.0.0/16")));
        assert!(ten.contains(&ten));
        assert!(!cidr("10.1.0.0/16").contains(&ten));
        assert!(!ten.contains(&cidr("11.0.0.0/16")));
        assert!(cidr("0.0.0.0/0").contains(&ten));
        assert!(ten.contains_addr("10.255.0.1".parse().unwrap()));
        assert!(!ten.contains_addr("9.255.0.1".parse().unwrap()));
    }

    #[test]
    fn identity_labels_are_the_prefix_and_world() {
        let labels = cidr_identity_labels(cidr("10.1.0.0/16"));
        assert_eq!(
            labels,
            Labels::parse_all(&["cidr:10.1.0.0/16", "reserved:world"]).unwrap()
        );
        // Shorter prefixes select it by containment, longer ones do not.
        for (peer, selected) in [
            ("10.1.0.0/16", true),
            ("10.0.0.0/8", true),
            ("0.0.0.0/0", true),
            ("10.1.2.0/24", false),
            ("10.2.0.0/16", false),
        ] {
            assert_eq!(
                cidr_selector(&cidr(peer)).matches(&labels),
                selected,
                "{peer}"
            );
        }
        // The label text round-trips through the label parser.
        let label: Label = "cidr:10.0.0.0/8".parse().unwrap();
        assert_eq!(label, Label::new("cidr", "10.0.0.0/8", ""));
        assert_eq!(label.to_string(), "cidr:10.0.0.0/8");
    }

    #[test]
    fn selectors_match_contained_identities_minus_holes() {
        let inner = cidr_identity_labels(cidr("10.1.0.0/16"));
        let hole = cidr_identity_labels(cidr("10.96.0.0/12"));
        let outside = cidr_identity_labels(cidr("192.168.0.0/16"));
        let world = Labels::reserved("world");
        let pod = Labels::parse_all(&["k8s:app=web"]).unwrap();
        let set = CidrRule {
            cidr: cidr("10.0.0.0/8"),
            except: vec![cidr("10.96.0.0/12")],
        };
        let selector = set.selector();
        assert!(selector.matches(&inner));
        assert!(!selector.matches(&hole));
        assert!(!selector.matches(&outside));
        assert!(!selector.matches(&world));
        assert!(!selector.matches(&pod));
        let everything = CidrRule {
            cidr: cidr("0.0.0.0/0"),
            except: vec![cidr("10.0.0.0/8")],
        }
        .selector();
        assert!(everything.matches(&world));
        assert!(everything.matches(&outside));
        assert!(!everything.matches(&inner));
        assert!(!everything.matches(&pod));
        assert!(cidr_selector(&cidr("10.1.0.0/16")).matches(&inner));
        assert!(!cidr_selector(&cidr("10.1.0.0/16")).matches(&hole));
    }
}

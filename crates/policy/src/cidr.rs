//! Prefixes in policy (`fromCIDR`, `toCIDRSet`, NetworkPolicy `ipBlock`), IPv4
//! and IPv6, and the CIDR identities Cilium gives them.
//!
//! Cilium's model: every prefix a rule mentions (except prefixes included) gets an
//! identity of its own, labelled `cidr:<prefix>` plus `reserved:world`. A CIDR
//! peer selects the identities whose prefix lies inside its own (a `cidr:` key
//! matches by containment), so `10.0.0.0/8` also selects the identity of
//! `10.1.0.0/16`, and the `world` entity covers every CIDR identity. Pods never
//! carry `cidr:` labels, so CIDR rules never select cluster pods.
//!
//! The datapath is IPv4-only for now (issue 18): rules take IPv6 prefixes
//! (`Cidr::V6`, see `cidr_v6`), but only IPv4 prefixes get identities, so an
//! IPv6 peer selects nobody until IPv6 packets can pass.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::cidr_v6::Ipv6Cidr;
use crate::cidr_v6::WORLD_IPV6;
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
    #[error("{0:?} is not an IP address or prefix (expected e.g. 10.0.0.0/8, 10.0.0.1 or 2001:db8::/32)")]
    Malformed(String),
    /// An IPv6 prefix where only IPv4 is taken (`Ipv4Cidr`).
    #[error("{0:?} is an IPv6 prefix (expected IPv4)")]
    Ipv6(String),
    #[error("{0:?}: prefix length must be 0-32")]
    BadLength(String),
    #[error("{0:?}: prefix length must be 0-128")]
    BadLengthV6(String),
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

/// A prefix of either family, as rules write them: `10.0.0.0/8`,
/// `2001:db8::/32`; a bare address is a /32 or a /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cidr {
    V4(Ipv4Cidr),
    V6(Ipv6Cidr),
}

impl Cidr {
    /// The IPv4 prefix, if this is one.
    pub fn ipv4(&self) -> Option<Ipv4Cidr> {
        match self {
            Cidr::V4(prefix) => Some(*prefix),
            Cidr::V6(_) => None,
        }
    }

    pub fn family(&self) -> &'static str {
        match self {
            Cidr::V4(_) => "IPv4",
            Cidr::V6(_) => "IPv6",
        }
    }

    pub fn prefix_len(&self) -> u8 {
        match self {
            Cidr::V4(prefix) => prefix.prefix_len(),
            Cidr::V6(prefix) => prefix.prefix_len(),
        }
    }

    /// True when `other` is of the same family and lies inside this prefix.
    pub fn contains(&self, other: &Cidr) -> bool {
        match (self, other) {
            (Cidr::V4(outer), Cidr::V4(inner)) => outer.contains(inner),
            (Cidr::V6(outer), Cidr::V6(inner)) => outer.contains(inner),
            _ => false,
        }
    }

    /// True when `ip` is of this prefix's family and inside it.
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Cidr::V4(prefix), IpAddr::V4(ip)) => prefix.contains_addr(ip),
            (Cidr::V6(prefix), IpAddr::V6(ip)) => prefix.contains_addr(ip),
            _ => false,
        }
    }

    /// The `cidr:` label identities inside this prefix carry.
    pub fn label(&self) -> Label {
        match self {
            Cidr::V4(prefix) => prefix.label(),
            Cidr::V6(prefix) => prefix.label(),
        }
    }

    /// The selector key of this prefix as a peer: its `cidr:` label, or the
    /// family's world label for a /0 (see `Ipv4Cidr::selector_key` and
    /// `Ipv6Cidr::selector_key`).
    pub fn selector_key(&self) -> String {
        match self {
            Cidr::V4(prefix) => prefix.selector_key(),
            Cidr::V6(prefix) => prefix.selector_key(),
        }
    }
}

impl From<Ipv4Cidr> for Cidr {
    fn from(prefix: Ipv4Cidr) -> Self {
        Cidr::V4(prefix)
    }
}

impl From<Ipv6Cidr> for Cidr {
    fn from(prefix: Ipv6Cidr) -> Self {
        Cidr::V6(prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.contains(':') {
            text.parse().map(Cidr::V6)
        } else {
            text.parse().map(Cidr::V4)
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cidr::V4(prefix) => prefix.fmt(f),
            Cidr::V6(prefix) => prefix.fmt(f),
        }
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
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
    pub cidr: Cidr,
    /// Prefixes inside `cidr`, of its family (checked by validation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<Cidr>,
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
pub fn cidr_selector(prefix: &Cidr) -> EndpointSelector {
    EndpointSelector::from_match_labels([(prefix.selector_key(), "")])
}

/// Every prefix the rules mention, of both families (allow and deny
/// sections, except prefixes included), each needing a CIDR identity. The
/// /0s are left out: the world identities already stand for them.
pub fn rule_prefixes(rules: &[Rule]) -> BTreeSet<Cidr> {
    fn collect(element: &impl PeerRule, into: &mut BTreeSet<Cidr>) {
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
    prefixes.retain(|prefix| prefix.prefix_len() > 0);
    prefixes
}

/// The IPv4 ones of [`rule_prefixes`].
pub fn cidr_prefixes(rules: &[Rule]) -> BTreeSet<Ipv4Cidr> {
    rule_prefixes(rules).iter().filter_map(Cidr::ipv4).collect()
}

/// The IPv6 ones of [`rule_prefixes`].
pub fn cidr_prefixes6(rules: &[Rule]) -> BTreeSet<Ipv6Cidr> {
    rule_prefixes(rules)
        .into_iter()
        .filter_map(|prefix| match prefix {
            Cidr::V6(prefix) => Some(prefix),
            Cidr::V4(_) => None,
        })
        .collect()
}

/// Labels of the identity of an IPv6 `prefix`: its `cidr:` label and
/// `reserved:world-ipv6`, as in a dual-stack Cilium: `::/0` and the
/// `world-ipv6` entity select it, `0.0.0.0/0` does not (see `entities`).
pub fn cidr_identity_labels6(prefix: Ipv6Cidr) -> Labels {
    [prefix.label(), Label::new(SOURCE_RESERVED, WORLD_IPV6, "")]
        .into_iter()
        .collect()
}

/// Labels of the identity of an IPv4 `prefix`: its `cidr:` label and
/// `reserved:world` (IPv6 prefixes: [`cidr_identity_labels6`]).
/// Shorter prefixes select it by containment (see `selector`), so the
/// identity does not carry a label for each of them.
pub fn cidr_identity_labels(prefix: Ipv4Cidr) -> Labels {
    [prefix.label(), Label::new(SOURCE_RESERVED, "world", "")]
        .into_iter()
        .collect()
}

#[cfg(test)]
#[path = "cidr_tests.rs"]
mod tests;

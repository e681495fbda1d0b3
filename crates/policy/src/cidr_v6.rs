//! IPv6 prefixes in policy, and the form Cilium gives them in labels.
//!
//! A label key cannot hold `:` (it separates the source), so Cilium writes an
//! IPv6 prefix's `cidr:` label with `-` for every `:`, and a `0` where the key
//! would otherwise start or end with `-`: `2001:db8::/32` is
//! `cidr:2001-db8--0/32`, `::1/128` is `cidr:0--1/128`.
//!
//! The datapath is IPv4-only for now (issue 18): no identity carries such a
//! label yet, so IPv6 prefixes select nobody, which is right while every IPv6
//! packet is dropped.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::cidr::{CidrError, SOURCE_CIDR};
use crate::labels::{Label, SOURCE_RESERVED};

/// The reserved label of everything outside the cluster over IPv6: what
/// `::/0` and the `world-ipv6` entity select (Cilium's dual-stack
/// `reserved:world-ipv6`).
pub const WORLD_IPV6: &str = "world-ipv6";

/// An IPv6 prefix, normalized: host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv6Cidr {
    addr: Ipv6Addr,
    len: u8,
}

fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl Ipv6Cidr {
    /// The prefix `addr/len` with host bits cleared; `None` when `len > 128`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Self> {
        (len <= 128).then(|| Ipv6Cidr {
            addr: Ipv6Addr::from(u128::from(addr) & mask(len)),
            len,
        })
    }

    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// True when `other` lies inside this prefix (a prefix contains itself).
    pub fn contains(&self, other: &Ipv6Cidr) -> bool {
        other.len >= self.len && u128::from(other.addr) & mask(self.len) == u128::from(self.addr)
    }

    pub fn contains_addr(&self, addr: Ipv6Addr) -> bool {
        u128::from(addr) & mask(self.len) == u128::from(self.addr)
    }

    /// The key of this prefix's `cidr:` label, in Cilium's spelling
    /// (`2001-db8--0/32`).
    pub fn label_key(&self) -> String {
        let text = self.addr.to_string();
        let mut key = String::with_capacity(text.len() + 6);
        if text.starts_with(':') {
            key.push('0');
        }
        key.push_str(&text.replace(':', "-"));
        if text.ends_with(':') {
            key.push('0');
        }
        key.push('/');
        key.push_str(&self.len.to_string());
        key
    }

    /// The prefix a `cidr:` label key stands for (`2001-db8--0/32`; the
    /// colon spelling is accepted too). `None` for anything else, IPv4
    /// prefixes included.
    pub fn from_label_key(key: &str) -> Option<Ipv6Cidr> {
        if !key.contains(['-', ':']) {
            return None;
        }
        key.replace('-', ":").parse().ok()
    }

    /// The label CIDR identities of this prefix (and longer ones) would carry.
    pub fn label(&self) -> Label {
        Label::new(SOURCE_CIDR, self.label_key(), "")
    }

    /// The selector key of this prefix as a peer. `::/0` is everything
    /// outside the cluster over IPv6, `reserved:world-ipv6`, as in a
    /// dual-stack Cilium (where `0.0.0.0/0` is `reserved:world-ipv4`; here
    /// the IPv4 outside keeps `reserved:world`).
    pub fn selector_key(&self) -> String {
        if self.len == 0 {
            format!("{SOURCE_RESERVED}:{WORLD_IPV6}")
        } else {
            format!("{SOURCE_CIDR}:{}", self.label_key())
        }
    }
}

impl FromStr for Ipv6Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| CidrError::Malformed(text.to_string()))?;
        let len = match len {
            None => 128,
            Some(len) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => len
                .parse::<u8>()
                .map_err(|_| CidrError::BadLengthV6(text.to_string()))?,
            Some(_) => return Err(CidrError::Malformed(text.to_string())),
        };
        Ipv6Cidr::new(addr, len).ok_or_else(|| CidrError::BadLengthV6(text.to_string()))
    }
}

impl fmt::Display for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Ipv6Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn parses_normalizes_and_prints() {
        assert_eq!(cidr("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("2001:DB8:1:2::7/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("2001:db8::1").to_string(), "2001:db8::1/128");
        assert_eq!(cidr("::/0").prefix_len(), 0);
        assert_eq!(cidr("fd00::1/0").to_string(), "::/0");
        assert_eq!(
            "2001:db8::/129".parse::<Ipv6Cidr>(),
            Err(CidrError::BadLengthV6("2001:db8::/129".into()))
        );
        for bad in [
            "2001:db8:::/32",
            "2001:db8::/",
            "2001:db8::/x",
            "::g",
            "10.0.0.0/8",
        ] {
            assert!(bad.parse::<Ipv6Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn containment() {
        let doc = cidr("2001:db8::/32");
        assert!(doc.contains(&cidr("2001:db8:1::/48")));
        assert!(doc.contains(&doc));
        assert!(!cidr("2001:db8:1::/48").contains(&doc));
        assert!(!doc.contains(&cidr("2001:db9::/48")));
        assert!(cidr("::/0").contains(&doc));
        assert!(doc.contains_addr("2001:db8:ffff::1".parse().unwrap()));
        assert!(!doc.contains_addr("2001:db9::1".parse().unwrap()));
    }

    #[test]
    fn label_keys_are_ciliums() {
        for (prefix, key) in [
            ("2001:db8::/32", "2001-db8--0/32"),
            ("::1", "0--1/128"),
            ("fd00::/8", "fd00--0/8"),
            ("2001:db8:1:2:3:4:5:6", "2001-db8-1-2-3-4-5-6/128"),
        ] {
            assert_eq!(cidr(prefix).label_key(), key, "{prefix}");
            assert_eq!(Ipv6Cidr::from_label_key(key), Some(cidr(prefix)), "{key}");
        }
        assert_eq!(
            cidr("2001:db8::/32").label().to_string(),
            "cidr:2001-db8--0/32"
        );
        // The label text round-trips through the label parser.
        let label: Label = "cidr:2001-db8--0/32".parse().unwrap();
        assert_eq!(label, cidr("2001:db8::/32").label());
        assert_eq!(Ipv6Cidr::from_label_key("10.0.0.0/8"), None);
        assert_eq!(Ipv6Cidr::from_label_key("web"), None);
        assert_eq!(cidr("::/0").selector_key(), "reserved:world-ipv6");
        assert_eq!(cidr("2001:db8::/32").selector_key(), "cidr:2001-db8--0/32");
    }
}

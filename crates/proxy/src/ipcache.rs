//! The agent's ipcache as the proxy sees it: IPv4 or IPv6 prefix → security
//! identity, longest prefix wins. Addresses nobody claims are `world` (2) for
//! IPv4 and `world-ipv6` (10) for IPv6, as in the datapath.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Cilium's reserved identity for addresses outside the cluster.
pub const WORLD_IDENTITY: u32 = 2;
/// Cilium's reserved identity for IPv6 addresses outside the cluster
/// (`reserved:world-ipv6`).
pub const WORLD_IPV6_IDENTITY: u32 = 10;

/// One ipcache entry on the wire: `{"prefix": "10.0.1.5/32", "identity": 1234}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpcacheEntry {
    pub prefix: String,
    pub identity: u32,
}

impl IpcacheEntry {
    pub fn new(prefix: impl Into<String>, identity: u32) -> Self {
        IpcacheEntry {
            prefix: prefix.into(),
            identity,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid prefix {0:?} (expected an IPv4 or IPv6 address, with /len or without)")]
pub struct PrefixError(pub String);

/// A prefix as a network of one family: the address bits (IPv4 in the low
/// 32) with everything past `len` cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Network {
    V4(u32),
    V6(u128),
}

/// Parses `addr/len` (or a bare address = /32 or /128) into (masked
/// network, len).
fn parse_network(text: &str) -> Result<(Network, u8), PrefixError> {
    let bad = || PrefixError(text.to_string());
    let (addr, len) = match text.split_once('/') {
        Some((addr, len)) => (addr, Some(len.parse::<u8>().map_err(|_| bad())?)),
        None => (text, None),
    };
    match addr.parse::<IpAddr>().map_err(|_| bad())? {
        IpAddr::V4(v4) => {
            let len = len.unwrap_or(32);
            if len > 32 {
                return Err(bad());
            }
            Ok((Network::V4(u32::from(v4) & mask(len)), len))
        }
        IpAddr::V6(v6) => {
            let len = len.unwrap_or(128);
            if len > 128 {
                return Err(bad());
            }
            Ok((Network::V6(u128::from(v6) & mask6(len)), len))
        }
    }
}

/// Parses `a.b.c.d/len` (or a bare address = /32) into (masked network, len).
pub fn parse_prefix(text: &str) -> Result<(u32, u8), PrefixError> {
    match parse_network(text)? {
        (Network::V4(network), len) => Ok((network, len)),
        (Network::V6(_), _) => Err(PrefixError(text.to_string())),
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    }
}

/// Prefixes of both families grouped by (family, length); a lookup tries
/// its family's longest lengths first.
#[derive(Debug, Default, Clone)]
pub struct Ipcache {
    v4: BTreeMap<u8, HashMap<u32, u32>>,
    v6: BTreeMap<u8, HashMap<u128, u32>>,
}

impl Ipcache {
    pub fn upsert(&mut self, entry: &IpcacheEntry) -> Result<(), PrefixError> {
        match parse_network(&entry.prefix)? {
            (Network::V4(network), len) => self
                .v4
                .entry(len)
                .or_default()
                .insert(network, entry.identity),
            (Network::V6(network), len) => self
                .v6
                .entry(len)
                .or_default()
                .insert(network, entry.identity),
        };
        Ok(())
    }

    pub fn remove(&mut self, prefix: &str) -> Result<(), PrefixError> {
        match parse_network(prefix)? {
            (Network::V4(network), len) => self.v4.get_mut(&len).and_then(|m| m.remove(&network)),
            (Network::V6(network), len) => self.v6.get_mut(&len).and_then(|m| m.remove(&network)),
        };
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.v4.values().map(|m| m.len()).sum::<usize>()
            + self.v6.values().map(|m| m.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Identity of `addr`; when no prefix covers it, `world` for IPv4 and
    /// `world-ipv6` for IPv6, as the datapath decides.
    pub fn lookup(&self, addr: IpAddr) -> u32 {
        match addr.to_canonical() {
            IpAddr::V4(v4) => {
                let addr = u32::from(v4);
                self.v4
                    .iter()
                    .rev()
                    .find_map(|(len, map)| map.get(&(addr & mask(*len))).copied())
                    .unwrap_or(WORLD_IDENTITY)
            }
            IpAddr::V6(v6) => {
                let addr = u128::from(v6);
                self.v6
                    .iter()
                    .rev()
                    .find_map(|(len, map)| map.get(&(addr & mask6(*len))).copied())
                    .unwrap_or(WORLD_IPV6_IDENTITY)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(prefix: &str, identity: u32) -> IpcacheEntry {
        IpcacheEntry::new(prefix, identity)
    }

    #[test]
    fn longest_prefix_wins_and_unknown_is_world() {
        let mut cache = Ipcache::default();
        cache.upsert(&entry("10.0.0.0/8", 100)).unwrap();
        cache.upsert(&entry("10.0.1.5/32", 200)).unwrap();
        cache.upsert(&entry("10.0.1.5", 201)).unwrap();
        assert_eq!(cache.lookup("10.0.1.5".parse().unwrap()), 201);
        assert_eq!(cache.lookup("10.9.9.9".parse().unwrap()), 100);
        assert_eq!(cache.lookup("192.168.0.1".parse().unwrap()), WORLD_IDENTITY);
        cache.remove("10.0.0.0/8").unwrap();
        assert_eq!(cache.lookup("10.9.9.9".parse().unwrap()), WORLD_IDENTITY);
        assert_eq!(cache.len(), 1);
        assert!(parse_prefix("10.0.0.0/33").is_err());
        assert!(parse_prefix("x/8").is_err());
        assert_eq!(parse_prefix("10.1.2.3/8"), Ok((0x0a00_0000, 8)));
    }

    #[test]
    fn ipv6_prefixes_have_their_own_longest_match_and_world() {
        let mut cache = Ipcache::default();
        cache.upsert(&entry("f00d::/64", 100)).unwrap();
        cache.upsert(&entry("f00d::a0a:0:0:5", 200)).unwrap();
        cache.upsert(&entry("10.0.1.5/32", 300)).unwrap();
        assert_eq!(cache.lookup("f00d::a0a:0:0:5".parse().unwrap()), 200);
        assert_eq!(cache.lookup("f00d::1".parse().unwrap()), 100);
        assert_eq!(
            cache.lookup("2001:db8::1".parse().unwrap()),
            WORLD_IPV6_IDENTITY
        );
        // An IPv4-mapped address is its IPv4 address.
        assert_eq!(cache.lookup("::ffff:10.0.1.5".parse().unwrap()), 300);
        assert_eq!(cache.len(), 3);
        cache.remove("f00d::a0a:0:0:5/128").unwrap();
        assert_eq!(cache.lookup("f00d::a0a:0:0:5".parse().unwrap()), 100);
        assert!(cache.upsert(&entry("f00d::/129", 1)).is_err());
        assert!(parse_prefix("f00d::/64").is_err());
    }
}

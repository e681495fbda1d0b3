//! The agent's ipcache as the proxy sees it: IPv4 prefix → security identity,
//! longest prefix wins. Addresses nobody claims are `world` (2), as in Cilium.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// Cilium's reserved identity for addresses outside the cluster.
pub const WORLD_IDENTITY: u32 = 2;

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
#[error("invalid prefix {0:?} (expected a.b.c.d/len or a.b.c.d)")]
pub struct PrefixError(pub String);

/// Parses `a.b.c.d/len` (or a bare address = /32) into (masked network, len).
pub fn parse_prefix(text: &str) -> Result<(u32, u8), PrefixError> {
    let bad = || PrefixError(text.to_string());
    let (addr, len) = match text.split_once('/') {
        Some((addr, len)) => (addr, len.parse::<u8>().map_err(|_| bad())?),
        None => (text, 32),
    };
    if len > 32 {
        return Err(bad());
    }
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    Ok((u32::from(addr) & mask(len), len))
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

/// Prefixes grouped by length; a lookup tries the longest lengths first.
#[derive(Debug, Default, Clone)]
pub struct Ipcache {
    by_len: BTreeMap<u8, std::collections::HashMap<u32, u32>>,
}

impl Ipcache {
    pub fn upsert(&mut self, entry: &IpcacheEntry) -> Result<(), PrefixError> {
        let (network, len) = parse_prefix(&entry.prefix)?;
        self.by_len
            .entry(len)
            .or_default()
            .insert(network, entry.identity);
        Ok(())
    }

    pub fn remove(&mut self, prefix: &str) -> Result<(), PrefixError> {
        let (network, len) = parse_prefix(prefix)?;
        if let Some(map) = self.by_len.get_mut(&len) {
            map.remove(&network);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.by_len.values().map(|m| m.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Identity of `addr`; `world` when no prefix covers it (or for IPv6).
    pub fn lookup(&self, addr: IpAddr) -> u32 {
        let IpAddr::V4(v4) = addr else {
            return WORLD_IDENTITY;
        };
        let addr = u32::from(v4);
        self.by_len
            .iter()
            .rev()
            .find_map(|(len, map)| map.get(&(addr & mask(*len))).copied())
            .unwrap_or(WORLD_IDENTITY)
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
}

//! Host-scope IPAM for IPv6: the IPv4 allocator's twin over a /64../126
//! range. Addresses are offsets in a u128, so a /96 or a /64 costs nothing
//! until addresses are handed out.

use std::{collections::BTreeMap, net::Ipv4Addr, net::Ipv6Addr};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Ipam6Error {
    #[error("invalid IPv6 CIDR {0:?}: expected ADDR/len with len between 64 and 126")]
    BadCidr(String),
    #[error("no free address left in {0}")]
    Exhausted(String),
    #[error("{0} is not in the pod range {1}")]
    OutOfRange(Ipv6Addr, String),
    #[error("{0} is the router address and cannot be allocated")]
    Reserved(Ipv6Addr),
    #[error("{0} is not allocated")]
    NotAllocated(Ipv6Addr),
}

/// Cilium's `--ipv6-cluster-alloc-cidr` default: with `--ipv6-range auto`
/// each node takes the /96 of it that carries its IPv4 address in bits
/// 64-95, so nodes never overlap without coordinating.
pub const CLUSTER_ALLOC_CIDR: Ipv6Addr = Ipv6Addr::new(0xf00d, 0, 0, 0, 0, 0, 0, 0);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr6 {
    pub network: Ipv6Addr,
    pub prefix_len: u8,
}

impl Cidr6 {
    pub fn parse(text: &str) -> Result<Cidr6, Ipam6Error> {
        let bad = || Ipam6Error::BadCidr(text.to_string());
        let (ip, len) = text.split_once('/').ok_or_else(bad)?;
        let ip: Ipv6Addr = ip.parse().map_err(|_| bad())?;
        let prefix_len: u8 = len.parse().map_err(|_| bad())?;
        if !(64..=126).contains(&prefix_len) {
            return Err(bad());
        }
        Ok(Cidr6::new(ip, prefix_len))
    }

    fn new(ip: Ipv6Addr, prefix_len: u8) -> Cidr6 {
        Cidr6 {
            network: Ipv6Addr::from(u128::from(ip) & Self::mask(prefix_len)),
            prefix_len,
        }
    }

    /// The per-node /96 of Cilium's `--ipv6-range auto`.
    pub fn auto(node_ip: Ipv4Addr) -> Cidr6 {
        let bits = u128::from(CLUSTER_ALLOC_CIDR) | (u128::from(u32::from(node_ip)) << 32);
        Cidr6::new(Ipv6Addr::from(bits), 96)
    }

    fn mask(prefix_len: u8) -> u128 {
        u128::MAX << (128 - prefix_len as u32)
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & Self::mask(self.prefix_len) == u128::from(self.network)
    }

    fn size(&self) -> u128 {
        1u128 << (128 - self.prefix_len as u32)
    }

    /// The first address after the network's is the node's router
    /// (gateway) address, as for IPv4.
    pub fn router(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network) + 1)
    }
}

impl std::fmt::Display for Cidr6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Allocations, lowest free address first; the network (subnet-router
/// anycast) and router addresses are never handed out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ipam6 {
    range: Cidr6,
    allocated: BTreeMap<Ipv6Addr, String>,
}

impl Ipam6 {
    pub fn new(range: Cidr6) -> Self {
        Ipam6 {
            range,
            allocated: BTreeMap::new(),
        }
    }

    pub fn range(&self) -> Cidr6 {
        self.range
    }

    pub fn allocated(&self) -> impl Iterator<Item = (&Ipv6Addr, &String)> {
        self.allocated.iter()
    }

    pub fn allocate_next(&mut self, owner: &str) -> Result<Ipv6Addr, Ipam6Error> {
        let first = u128::from(self.range.router()) + 1;
        let last = u128::from(self.range.network) + self.range.size() - 1;
        // Walk the allocations in order: the first gap is the answer.
        let mut candidate = first;
        for ip in self
            .allocated
            .range(Ipv6Addr::from(first)..)
            .map(|(ip, _)| u128::from(*ip))
        {
            if ip != candidate {
                break;
            }
            candidate += 1;
        }
        if candidate > last {
            return Err(Ipam6Error::Exhausted(self.range.to_string()));
        }
        let ip = Ipv6Addr::from(candidate);
        self.allocated.insert(ip, owner.to_string());
        Ok(ip)
    }

    /// Records an address chosen elsewhere (an endpoint created with it).
    pub fn claim(&mut self, ip: Ipv6Addr, owner: &str) -> Result<(), Ipam6Error> {
        if !self.range.contains(ip) {
            return Err(Ipam6Error::OutOfRange(ip, self.range.to_string()));
        }
        if ip == self.range.router() || ip == self.range.network {
            return Err(Ipam6Error::Reserved(ip));
        }
        self.allocated
            .entry(ip)
            .or_insert_with(|| owner.to_string());
        Ok(())
    }

    pub fn release(&mut self, ip: Ipv6Addr) -> Result<(), Ipam6Error> {
        self.allocated
            .remove(&ip)
            .map(|_| ())
            .ok_or(Ipam6Error::NotAllocated(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    #[test]
    fn auto_range_embeds_the_node_ipv4_address() {
        let range = Cidr6::auto(Ipv4Addr::new(10, 0, 0, 15));
        assert_eq!(range.to_string(), "f00d::a00:f:0:0/96");
        assert_eq!(range.router(), ip("f00d::a00:f:0:1"));
    }

    #[test]
    fn allocates_lowest_free_after_the_router() {
        let mut ipam = Ipam6::new(Cidr6::parse("fd00:1::/112").unwrap());
        let a = ipam.allocate_next("a").unwrap();
        let b = ipam.allocate_next("b").unwrap();
        assert_eq!((a, b), (ip("fd00:1::2"), ip("fd00:1::3")));
        ipam.release(a).unwrap();
        assert_eq!(ipam.allocate_next("c").unwrap(), a);
        assert_eq!(ipam.allocate_next("d").unwrap(), ip("fd00:1::4"));
        assert_eq!(
            ipam.release(ip("fd00:1::99")),
            Err(Ipam6Error::NotAllocated(ip("fd00:1::99")))
        );
    }

    #[test]
    fn small_range_is_exhausted_and_huge_ones_are_cheap() {
        let mut ipam = Ipam6::new(Cidr6::parse("fd00::/126").unwrap());
        ipam.allocate_next("a").unwrap();
        ipam.allocate_next("b").unwrap();
        assert!(matches!(
            ipam.allocate_next("c"),
            Err(Ipam6Error::Exhausted(_))
        ));
        let mut huge = Ipam6::new(Cidr6::parse("fd00::/64").unwrap());
        assert_eq!(huge.allocate_next("a").unwrap(), ip("fd00::2"));
    }

    #[test]
    fn rejects_bad_cidrs_and_foreign_claims() {
        for bad in ["fd00::", "fd00::/48", "fd00::/127", "10.0.0.0/24", "x/96"] {
            assert!(Cidr6::parse(bad).is_err(), "{bad}");
        }
        let mut ipam = Ipam6::new(Cidr6::parse("fd00:1::/96").unwrap());
        assert!(ipam.claim(ip("fd00:2::5"), "x").is_err());
        assert!(ipam.claim(ip("fd00:1::1"), "x").is_err());
        assert!(ipam.claim(ip("fd00:1::5"), "x").is_ok());
    }
}

//! Host-scope IPAM: hands out IPv4 addresses of this node's pod CIDR (and
//! IPv6 ones of its IPv6 range: [`v6`]).

pub mod v6;

use std::{collections::BTreeMap, net::Ipv4Addr};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("invalid CIDR {0:?}: expected a.b.c.d/len with len between 8 and 30")]
    BadCidr(String),
    #[error("no free address left in {0}")]
    Exhausted(String),
    #[error("{0} is not in the pod range {1}")]
    OutOfRange(Ipv4Addr, String),
    #[error("{0} is the router address and cannot be allocated")]
    Reserved(Ipv4Addr),
    #[error("{0} is not allocated")]
    NotAllocated(Ipv4Addr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, IpamError> {
        let bad = || IpamError::BadCidr(text.to_string());
        let (ip, len) = text.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix_len: u8 = len.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix_len) {
            return Err(bad());
        }
        let network = Ipv4Addr::from(u32::from(ip) & Self::mask(prefix_len));
        Ok(Cidr {
            network,
            prefix_len,
        })
    }

    fn mask(prefix_len: u8) -> u32 {
        u32::MAX << (32 - prefix_len)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix_len) == u32::from(self.network)
    }

    fn size(&self) -> u32 {
        1 << (32 - self.prefix_len)
    }

    /// The first usable address is the node's router (gateway) address.
    pub fn router(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Allocations, lowest free address first; the network, router and
/// broadcast addresses are never handed out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ipam {
    range: Cidr,
    allocated: BTreeMap<Ipv4Addr, String>,
}

impl Ipam {
    pub fn new(range: Cidr) -> Self {
        Ipam {
            range,
            allocated: BTreeMap::new(),
        }
    }

    pub fn range(&self) -> Cidr {
        self.range
    }

    /// Addresses that can be handed out.
    pub fn capacity(&self) -> u64 {
        self.range.size() as u64 - 3
    }

    pub fn allocated(&self) -> impl Iterator<Item = (&Ipv4Addr, &String)> {
        self.allocated.iter()
    }

    pub fn allocate_next(&mut self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        let first = u32::from(self.range.router()) + 1;
        let last = u32::from(self.range.network) + self.range.size() - 2;
        let ip = (first..=last)
            .map(Ipv4Addr::from)
            .find(|ip| !self.allocated.contains_key(ip))
            .ok_or_else(|| IpamError::Exhausted(self.range.to_string()))?;
        self.allocated.insert(ip, owner.to_string());
        Ok(ip)
    }

    /// Records an address chosen elsewhere (an endpoint created with it).
    pub fn claim(&mut self, ip: Ipv4Addr, owner: &str) -> Result<(), IpamError> {
        if !self.range.contains(ip) {
            return Err(IpamError::OutOfRange(ip, self.range.to_string()));
        }
        if ip == self.range.router() {
            return Err(IpamError::Reserved(ip));
        }
        self.allocated
            .entry(ip)
            .or_insert_with(|| owner.to_string());
        Ok(())
    }

    pub fn release(&mut self, ip: Ipv4Addr) -> Result<(), IpamError> {
        self.allocated
            .remove(&ip)
            .map(|_| ())
            .ok_or(IpamError::NotAllocated(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_after_the_router() {
        let mut ipam = Ipam::new(Cidr::parse("10.200.0.0/16").unwrap());
        assert_eq!(ipam.range().router(), Ipv4Addr::new(10, 200, 0, 1));
        let a = ipam.allocate_next("a").unwrap();
        let b = ipam.allocate_next("b").unwrap();
        assert_eq!(
            (a, b),
            (Ipv4Addr::new(10, 200, 0, 2), Ipv4Addr::new(10, 200, 0, 3))
        );
        ipam.release(a).unwrap();
        assert_eq!(ipam.allocate_next("c").unwrap(), a);
        assert_eq!(
            ipam.release(Ipv4Addr::new(10, 200, 9, 9)),
            Err(IpamError::NotAllocated(Ipv4Addr::new(10, 200, 9, 9)))
        );
    }

    #[test]
    fn small_range_is_exhausted() {
        let mut ipam = Ipam::new(Cidr::parse("10.1.0.0/30").unwrap());
        assert_eq!(ipam.capacity(), 1);
        ipam.allocate_next("a").unwrap();
        assert!(matches!(
            ipam.allocate_next("b"),
            Err(IpamError::Exhausted(_))
        ));
    }

    #[test]
    fn rejects_bad_cidrs_and_foreign_claims() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/31",
            "x/16",
            "10.0.0.0/",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        let mut ipam = Ipam::new(Cidr::parse("10.200.0.0/16").unwrap());
        assert!(ipam.claim(Ipv4Addr::new(10, 201, 0, 5), "x").is_err());
        assert!(ipam.claim(Ipv4Addr::new(10, 200, 0, 1), "x").is_err());
        assert!(ipam.claim(Ipv4Addr::new(10, 200, 0, 5), "x").is_ok());
    }
}

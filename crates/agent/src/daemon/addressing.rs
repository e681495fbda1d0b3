//! Endpoint addresses of both families: the IPAM API, the node's
//! addressing as endpoints see it, and IPv6's share of the endpoint maps
//! (cilium_lxc6, cilium_ipcache6), which follow the IPv4 ones: same
//! endpoint info, same identities, other nodes' endpoints behind their
//! (IPv4) node address.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{Ipv4Addr, Ipv6Addr},
};

use api::models::{IpamAddressResponse, IpamResponse, NodeAddressing, NodeAddressingElement};
use datapath::endpoint::EndpointConfig;

use super::{endpoints::lxc_info, Daemon, Inner};
use crate::{cluster::keys::IpRecord, endpoint::EndpointRecord, error::AgentError, netdev};

/// Which addresses `POST /v1/ipam` hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    /// Every family the agent has enabled.
    Both,
}

impl Daemon {
    /// The node's router addresses and ranges, per family.
    pub(super) fn node_addressing(&self, inner: &Inner) -> NodeAddressing {
        NodeAddressing {
            // Cilium's model keeps the family with `enabled: false`.
            ipv4: inner
                .ipam
                .as_ref()
                .map(|ipam| NodeAddressingElement {
                    enabled: true,
                    ip: ipam.range().router().to_string(),
                    alloc_range: ipam.range().to_string(),
                })
                .unwrap_or_default(),
            ipv6: inner.ipam6.as_ref().map(|ipam6| NodeAddressingElement {
                enabled: true,
                ip: ipam6.range().router().to_string(),
                alloc_range: ipam6.range().to_string(),
            }),
        }
    }

    pub fn ipam_allocate(&self, owner: &str, family: Family) -> Result<IpamResponse, AgentError> {
        let mut inner = self.lock();
        let internal = |e: String| AgentError::Internal(e);
        let want6 = family != Family::V4;
        if family == Family::V6 && inner.ipam6.is_none() {
            return Err(AgentError::BadRequest(
                "family: ipv6 is disabled on this node (--enable-ipv6=false)".into(),
            ));
        }
        if family == Family::V4 && inner.ipam.is_none() {
            return Err(AgentError::BadRequest(
                "family: ipv4 is disabled on this node (--enable-ipv4=false)".into(),
            ));
        }
        let mut response = IpamResponse {
            host_addressing: self.node_addressing(&inner),
            ..Default::default()
        };
        let mut ip4 = None;
        if let Some(ipam) = inner.ipam.as_mut().filter(|_| family != Family::V6) {
            let ip = ipam
                .allocate_next(owner)
                .map_err(|e| internal(e.to_string()))?;
            let range = ipam.range();
            response.address.ipv4 = Some(ip.to_string());
            response.ipv4 = Some(IpamAddressResponse {
                ip: ip.to_string(),
                gateway: range.router().to_string(),
                cidrs: vec![range.to_string()],
            });
            ip4 = Some(ip);
        }
        if let Some(ipam6) = inner.ipam6.as_mut().filter(|_| want6) {
            let ip = match ipam6.allocate_next(owner) {
                Ok(ip) => ip,
                Err(e) => {
                    if let (Some(ip), Some(ipam)) = (ip4, inner.ipam.as_mut()) {
                        let _ = ipam.release(ip);
                    }
                    return Err(internal(e.to_string()));
                }
            };
            let range = ipam6.range();
            response.address.ipv6 = Some(ip.to_string());
            response.ipv6 = Some(IpamAddressResponse {
                ip: ip.to_string(),
                gateway: range.router().to_string(),
                cidrs: vec![range.to_string()],
            });
        }
        self.persist_endpoints(&inner)?;
        Ok(response)
    }

    pub fn ipam_release(&self, ip: &str) -> Result<(), AgentError> {
        let addr: std::net::IpAddr = ip
            .parse()
            .map_err(|_| AgentError::BadRequest(format!("{ip:?} is not an IP address")))?;
        let mut inner = self.lock();
        let in_use = inner.endpoints.values().any(|ep| {
            Some(addr) == ep.ipv4.map(Into::into) || Some(addr) == ep.ipv6.map(Into::into)
        });
        if in_use {
            return Err(AgentError::Conflict(format!(
                "{ip} is in use by an endpoint; delete the endpoint first"
            )));
        }
        let released = match addr {
            std::net::IpAddr::V4(v4) => match inner.ipam.as_mut() {
                Some(ipam) => ipam.release(v4).map_err(|e| e.to_string()),
                None => Err(format!("{v4} is not allocated (IPv4 is disabled)")),
            },
            std::net::IpAddr::V6(v6) => match inner.ipam6.as_mut() {
                Some(ipam6) => ipam6.release(v6).map_err(|e| e.to_string()),
                None => Err(format!("{v6} is not allocated (IPv6 is disabled)")),
            },
        };
        released.map_err(AgentError::NotFound)?;
        self.persist_endpoints(&inner)
    }

    /// What an endpoint's programs are loaded with: the IPv6 gateway they
    /// answer neighbour solicitations for, with the host-side veth's MAC.
    pub(super) fn endpoint_config(&self, inner: &Inner, ep: &EndpointRecord) -> EndpointConfig {
        EndpointConfig {
            encap_ifindex: self.encap_ifindex,
            router_ip6: inner
                .ipam6
                .as_ref()
                .filter(|_| ep.ipv6.is_some())
                .map(|ipam6| ipam6.range().router()),
            host_mac: ep.host_mac,
        }
    }

    /// Claims an endpoint's addresses for it: each must be free, inside
    /// this node's range of its family, and that family enabled.
    pub(super) fn claim_addresses(
        &self,
        inner: &mut Inner,
        ep: &EndpointRecord,
    ) -> Result<(), AgentError> {
        let owner = format!("endpoint {}", ep.id);
        if let Some(ip) = ep.ipv4 {
            let bad = |m: String| AgentError::BadRequest(format!("addressing.ipv4: {m}"));
            if let Some(other) = inner.endpoints.values().find(|o| o.ipv4 == Some(ip)) {
                return Err(AgentError::Conflict(format!(
                    "{ip} is already used by endpoint {}",
                    other.id
                )));
            }
            let ipam = inner
                .ipam
                .as_mut()
                .ok_or_else(|| bad("IPv4 is disabled on this node (--enable-ipv4=false)".into()))?;
            ipam.claim(ip, &owner).map_err(|e| bad(e.to_string()))?;
        }
        if let Err(e) = self.claim_ipv6(inner, ep, &owner) {
            if let (Some(ip), Some(ipam)) = (ep.ipv4, inner.ipam.as_mut()) {
                let _ = ipam.release(ip);
            }
            return Err(e);
        }
        Ok(())
    }

    fn claim_ipv6(
        &self,
        inner: &mut Inner,
        ep: &EndpointRecord,
        owner: &str,
    ) -> Result<(), AgentError> {
        let Some(ip) = ep.ipv6 else {
            return Ok(());
        };
        let bad = |m: String| AgentError::BadRequest(format!("addressing.ipv6: {m}"));
        if let Some(other) = inner.endpoints.values().find(|o| o.ipv6 == Some(ip)) {
            return Err(AgentError::Conflict(format!(
                "{ip} is already used by endpoint {}",
                other.id
            )));
        }
        let ipam6 = inner
            .ipam6
            .as_mut()
            .ok_or_else(|| bad("IPv6 is disabled on this node (--enable-ipv6=false)".into()))?;
        ipam6.claim(ip, owner).map_err(|e| bad(e.to_string()))
    }

    /// Publishes the endpoint's addresses in cilium_lxc(6) and
    /// cilium_ipcache(6), once its policy is in place.
    pub(super) fn install_addresses(
        &self,
        inner: &mut Inner,
        ep: &EndpointRecord,
    ) -> Result<(), AgentError> {
        if let Some(ip) = ep.ipv4 {
            inner.maps.lxc.upsert(ip, &lxc_info(ep))?;
            inner
                .maps
                .ipcache
                .upsert(ip, 32, ep.identity, Ipv4Addr::UNSPECIFIED)?;
        }
        if let Some(ip) = ep.ipv6 {
            inner.maps.lxc6.upsert(ip, &lxc_info(ep))?;
            inner
                .maps
                .ipcache6
                .upsert(ip, 128, ep.identity, Ipv4Addr::UNSPECIFIED)?;
        }
        Ok(())
    }

    /// Takes the endpoint's addresses out of the maps (and its connections
    /// out of conntrack when `flush`); `release` gives them back to the
    /// IPAM (a failed create).
    pub(super) fn remove_addresses(
        &self,
        inner: &mut Inner,
        ep: &EndpointRecord,
        flush: bool,
        release: bool,
    ) -> Result<(), AgentError> {
        if let Some(ip) = ep.ipv4 {
            inner.maps.lxc.remove(ip)?;
            inner.maps.ipcache.remove(ip, 32)?;
            if flush {
                inner.maps.ct.flush_address(ip.octets())?;
            }
            if let Some(ipam) = inner.ipam.as_mut().filter(|_| release) {
                let _ = ipam.release(ip);
            }
        }
        if let Some(ip) = ep.ipv6 {
            inner.maps.lxc6.remove(ip)?;
            inner.maps.ipcache6.remove(ip, 128)?;
            if flush {
                inner.maps.ct.flush_address6(ip.octets())?;
            }
            if let Some(ipam6) = inner.ipam6.as_mut().filter(|_| release) {
                let _ = ipam6.release(ip);
            }
        }
        Ok(())
    }

    /// What cilium_ipcache6 should hold: (address, prefix length) ->
    /// (identity, tunnel endpoint). Addresses missing from it are `world`.
    pub(super) fn desired_ipcache6(
        &self,
        inner: &Inner,
    ) -> BTreeMap<(Ipv6Addr, u32), (u32, Ipv4Addr)> {
        let local = Ipv4Addr::UNSPECIFIED;
        let mut want = BTreeMap::new();
        for (ip, record) in &inner.remote_ips6 {
            want.insert((*ip, 128), (record.identity, record.host_ip));
        }
        let other_nodes = inner
            .nodes
            .values()
            .filter(|n| n.name != self.cluster.node.name);
        for ip in other_nodes.filter_map(|n| n.ipv6) {
            want.insert((ip, 128), (identity::REMOTE_NODE, local));
        }
        for ip in netdev::host_addresses6() {
            want.insert((ip, 128), (identity::HOST, local));
        }
        for ep in inner.endpoints.values() {
            if let Some(ip) = ep.ipv6 {
                want.insert((ip, 128), (ep.identity, local));
            }
        }
        for (prefix, id) in super::cidr::prefix_identities6(inner) {
            want.insert((prefix.addr(), prefix.prefix_len() as u32), (id, local));
        }
        // AAAA answers toFQDNs selectors claim.
        for (ip, (id, _)) in &inner.fqdn_ips {
            if let std::net::IpAddr::V6(ip) = ip {
                want.insert((*ip, 128), (*id, local));
            }
        }
        want
    }

    /// Makes cilium_lxc6 and cilium_ipcache6 hold exactly what they should.
    pub(super) fn sync_endpoint_maps6(&self, inner: &mut Inner) -> Result<(), AgentError> {
        let want_ipcache = self.desired_ipcache6(inner);
        let want_lxc: BTreeMap<Ipv6Addr, _> = inner
            .endpoints
            .values()
            .filter_map(|ep| Some((ep.ipv6?, lxc_info(ep))))
            .collect();
        let maps = &mut inner.maps;
        super::map_sync::sync(&mut maps.ipcache6, &mut maps.lxc6, want_ipcache, want_lxc)?;
        Ok(())
    }

    pub fn remote_ip6_seen(&self, ip: Ipv6Addr, record: IpRecord) {
        if record.host_ip == self.cluster.node_ip() {
            return; // our own endpoint
        }
        let mut inner = self.lock();
        let previous = inner.remote_ips6.insert(ip, record.clone());
        if previous.as_ref() != Some(&record) {
            if let Err(e) = inner
                .maps
                .ipcache6
                .upsert(ip, 128, record.identity, record.host_ip)
            {
                eprintln!("ipcache6 {ip}: {e}");
            }
        }
    }

    pub fn remote_ip6_gone(&self, ip: Ipv6Addr) {
        let mut inner = self.lock();
        if inner.remote_ips6.remove(&ip).is_some()
            && !inner.endpoints.values().any(|ep| ep.ipv6 == Some(ip))
        {
            if let Err(e) = inner.maps.ipcache6.remove(ip, 128) {
                eprintln!("ipcache6 {ip}: {e}");
            }
        }
    }

    pub fn remote_ips6_resynced(&self, seen: &BTreeSet<Ipv6Addr>) {
        let stale: Vec<Ipv6Addr> = self
            .lock()
            .remote_ips6
            .keys()
            .filter(|ip| !seen.contains(ip))
            .copied()
            .collect();
        for ip in stale {
            self.remote_ip6_gone(ip);
        }
    }
}

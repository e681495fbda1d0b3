//! `GET /v1/map/{name}`: what is really in a kernel map, decoded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use api::models::{BpfMap, BpfMapEntry};
use datapath::maps::{self, ct, PolicyMap};

use super::Daemon;
use crate::{endpoint::format_mac, error::AgentError};

impl Daemon {
    pub fn map_dump(&self, name: &str) -> Result<BpfMap, AgentError> {
        let inner = self.lock();
        let entries = match name {
            maps::LXC_MAP => inner
                .maps
                .lxc
                .entries()?
                .into_iter()
                .map(|(ip, info)| BpfMapEntry::Lxc {
                    ip: ip.to_string(),
                    id: info.lxc_id,
                    identity: info.sec_id,
                    ifindex: info.ifindex,
                    mac: format_mac(&info.mac),
                    node_mac: format_mac(&info.node_mac),
                })
                .collect(),
            maps::IPCACHE_MAP => inner
                .maps
                .ipcache
                .entries()?
                .into_iter()
                .map(|(ip, prefix, info)| ipcache_row(ip.into(), prefix, info))
                .collect(),
            maps::IPCACHE6_MAP => inner
                .maps
                .ipcache6
                .entries()?
                .into_iter()
                .map(|(ip, prefix, info)| ipcache_row(ip.into(), prefix, info))
                .collect(),
            maps::CT_MAP => {
                let now = ct::monotonic_secs() as i64;
                inner
                    .maps
                    .ct
                    .entries()?
                    .into_iter()
                    .map(|(k, e)| {
                        let (src, dst) = (Ipv4Addr::from(k.saddr), Ipv4Addr::from(k.daddr));
                        ct_row(
                            (src.into(), k.sport),
                            (dst.into(), k.dport),
                            &(k.protocol, k.dir),
                            &e,
                            now,
                        )
                    })
                    .collect()
            }
            maps::CT6_MAP => {
                let now = ct::monotonic_secs() as i64;
                inner
                    .maps
                    .ct
                    .entries6()?
                    .into_iter()
                    .map(|(k, e)| {
                        let (src, dst) = (Ipv6Addr::from(k.saddr), Ipv6Addr::from(k.daddr));
                        ct_row(
                            (src.into(), k.sport),
                            (dst.into(), k.dport),
                            &(k.protocol, k.dir),
                            &e,
                            now,
                        )
                    })
                    .collect()
            }
            maps::nat::NAT_MAP => maps::nat::entries(&self.root)?
                .into_iter()
                .map(|(k, e)| BpfMapEntry::Nat {
                    protocol: k.protocol,
                    direction: if k.dir == maps::nat::NAT_DIR_IN {
                        "IN"
                    } else {
                        "OUT"
                    }
                    .into(),
                    src: format!("{}:{}", Ipv4Addr::from(k.saddr), u16::from_be(k.sport)),
                    dst: format!("{}:{}", Ipv4Addr::from(k.daddr), u16::from_be(k.dport)),
                    translated: format!(
                        "{}:{}",
                        Ipv4Addr::from(e.to_addr),
                        u16::from_be(e.to_port)
                    ),
                    rev_nat_index: e.rev_nat_index,
                })
                .collect(),
            _ => {
                let id = policy_map_id(name).ok_or_else(|| {
                    AgentError::NotFound(format!(
                        "no map {name:?}: expected cilium_lxc, cilium_ipcache, cilium_ipcache6, cilium_ct4_global, cilium_ct6_global, cilium_snat_v4_external or cilium_policy_<endpoint id>"
                    ))
                })?;
                if !inner.endpoints.contains_key(&id) {
                    return Err(AgentError::NotFound(format!("endpoint {id} not found")));
                }
                PolicyMap::open(&self.root, id)?
                    .entries()?
                    .into_iter()
                    .map(|(k, v)| BpfMapEntry::Policy {
                        identity: k.sec_label,
                        labels: match k.sec_label {
                            0 => vec!["reserved:unknown".into()],
                            id => inner
                                .identity(id)
                                .map(|i| i.labels.to_strings())
                                .unwrap_or_default(),
                        },
                        direction: if k.egress == 1 { "egress" } else { "ingress" }.into(),
                        protocol: k.protocol,
                        port: k.dport_host(),
                        deny: v.deny != 0,
                        proxy_port: u16::from_be(v.proxy_port),
                        packets: v.packets,
                        bytes: v.bytes,
                    })
                    .collect()
            }
        };
        let path = match policy_map_id(name) {
            Some(id) => self.root.policy_map(id),
            None => self.root.map(name),
        };
        Ok(BpfMap {
            path: path.display().to_string(),
            name: name.to_string(),
            entries,
        })
    }
}

fn ipcache_row(ip: IpAddr, prefix: u32, info: maps::RemoteEndpointInfo) -> BpfMapEntry {
    BpfMapEntry::Ipcache {
        prefix: format!("{ip}/{prefix}"),
        identity: info.sec_identity,
        tunnel_endpoint: Ipv4Addr::from(info.tunnel_endpoint).to_string(),
    }
}

/// One conntrack entry of either family; ports in network byte order, an
/// IPv6 address bracketed before its port.
fn ct_row(
    (src, sport): (IpAddr, u16),
    (dst, dport): (IpAddr, u16),
    &(protocol, dir): &(u8, u8),
    e: &ct::CtEntry,
    now: i64,
) -> BpfMapEntry {
    BpfMapEntry::Ct {
        protocol,
        direction: if dir == 1 { "OUT" } else { "IN" }.into(),
        src: SocketAddr::new(src, u16::from_be(sport)).to_string(),
        dst: SocketAddr::new(dst, u16::from_be(dport)).to_string(),
        expires_in_secs: e.expires as i64 - now,
        rx_packets: e.rx_packets,
        rx_bytes: e.rx_bytes,
        tx_packets: e.tx_packets,
        tx_bytes: e.tx_bytes,
        flags: ct_flags(e.flags),
        src_identity: e.src_identity,
    }
}

fn policy_map_id(name: &str) -> Option<u16> {
    name.strip_prefix("cilium_policy_")?.parse().ok()
}

/// Our flags in Cilium's vocabulary: a flow that saw a reply has seen
/// non-SYN packets; closing covers both halves.
fn ct_flags(flags: u16) -> Vec<String> {
    let mut out = Vec::new();
    if flags & ct::CT_CLOSING != 0 {
        out.extend(["RxClosing".to_string(), "TxClosing".to_string()]);
    }
    if flags & ct::CT_SEEN_REPLY != 0 {
        out.push("SeenNonSyn".into());
    }
    out
}

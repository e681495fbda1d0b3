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
            maps::IPCACHE_MAP => ipcache_rows(inner.maps.ipcache.entries()?),
            maps::IPCACHE6_MAP => ipcache_rows(inner.maps.ipcache6.entries()?),
            maps::CT_MAP => ct_rows(inner.maps.ct.entries()?),
            maps::CT6_MAP => ct_rows(inner.maps.ct.entries6()?),
            maps::nat::NAT_MAP => maps::nat::entries(&self.root)?
                .into_iter()
                .map(|(k, e)| {
                    let at = |ip: [u8; 4], port: u16| SocketAddr::from((ip, u16::from_be(port)));
                    nat_row(
                        (k.protocol, k.dir, e.rev_nat_index),
                        at(k.saddr, k.sport),
                        at(k.daddr, k.dport),
                        at(e.to_addr, e.to_port),
                    )
                })
                .collect(),
            maps::nat::NAT6_MAP => maps::nat::entries6(&self.root)?
                .into_iter()
                .map(|(k, e)| {
                    let at = |ip: [u8; 16], port: u16| SocketAddr::from((ip, u16::from_be(port)));
                    nat_row(
                        (k.protocol, k.dir, e.rev_nat_index),
                        at(k.saddr, k.sport),
                        at(k.daddr, k.dport),
                        at(e.to_addr, e.to_port),
                    )
                })
                .collect(),
            _ => {
                let id = policy_map_id(name).ok_or_else(|| {
                    AgentError::NotFound(format!(
                        "no map {name:?}: expected cilium_lxc, cilium_ipcache, cilium_ipcache6, cilium_ct4_global, cilium_ct6_global, cilium_snat_v4_external, cilium_snat_v6_external or cilium_policy_<endpoint id>"
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

/// One direction of a NodePort translation of either family: (protocol,
/// direction, service), the tuple it is keyed by and where it goes.
fn nat_row(
    (protocol, dir, rev_nat_index): (u8, u8, u16),
    src: SocketAddr,
    dst: SocketAddr,
    translated: SocketAddr,
) -> BpfMapEntry {
    BpfMapEntry::Nat {
        protocol,
        direction: if dir == maps::nat::NAT_DIR_IN {
            "IN"
        } else {
            "OUT"
        }
        .into(),
        src: src.to_string(),
        dst: dst.to_string(),
        translated: translated.to_string(),
        rev_nat_index,
    }
}

/// Either family's ipcache entries: the address widened to an `IpAddr`.
fn ipcache_rows<A: Into<IpAddr>>(
    entries: Vec<(A, u32, maps::RemoteEndpointInfo)>,
) -> Vec<BpfMapEntry> {
    entries
        .into_iter()
        .map(|(ip, prefix, info)| BpfMapEntry::Ipcache {
            prefix: format!("{}/{prefix}", ip.into()),
            identity: info.sec_identity,
            tunnel_endpoint: Ipv4Addr::from(info.tunnel_endpoint).to_string(),
        })
        .collect()
}

/// A conntrack key of either family, as its row shows it.
trait CtRowKey {
    /// Source and destination, ports in host byte order.
    fn sockets(&self) -> (SocketAddr, SocketAddr);
    fn protocol(&self) -> u8;
    fn dir(&self) -> u8;
}

/// `CtKey` and `Ct6Key` have the same fields; only the address width differs.
macro_rules! ct_row_key {
    ($key:ty, $addr:ty) => {
        impl CtRowKey for $key {
            fn sockets(&self) -> (SocketAddr, SocketAddr) {
                let side = |addr, port: u16| {
                    SocketAddr::new(<$addr>::from(addr).into(), u16::from_be(port))
                };
                (side(self.saddr, self.sport), side(self.daddr, self.dport))
            }
            fn protocol(&self) -> u8 {
                self.protocol
            }
            fn dir(&self) -> u8 {
                self.dir
            }
        }
    };
}
ct_row_key!(ct::CtKey, Ipv4Addr);
ct_row_key!(ct::Ct6Key, Ipv6Addr);

/// Either family's conntrack entries; an IPv6 address is bracketed before
/// its port.
fn ct_rows<K: CtRowKey>(entries: Vec<(K, ct::CtEntry)>) -> Vec<BpfMapEntry> {
    let now = ct::monotonic_secs() as i64;
    entries
        .into_iter()
        .map(|(k, e)| {
            let (src, dst) = k.sockets();
            BpfMapEntry::Ct {
                protocol: k.protocol(),
                direction: if k.dir() == ct::CT_DIR_EGRESS {
                    "OUT"
                } else {
                    "IN"
                }
                .into(),
                src: src.to_string(),
                dst: dst.to_string(),
                expires_in_secs: e.expires as i64 - now,
                rx_packets: e.rx_packets,
                rx_bytes: e.rx_bytes,
                tx_packets: e.tx_packets,
                tx_bytes: e.tx_bytes,
                flags: ct_flags(e.flags),
                src_identity: e.src_identity,
            }
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> ct::CtEntry {
        ct::CtEntry {
            expires: 0,
            rx_packets: 1,
            rx_bytes: 2,
            tx_packets: 3,
            tx_bytes: 4,
            src_identity: 5,
            flags: ct::CT_SEEN_REPLY,
            rev_nat_index: 0,
            backend_id: 0,
            proxy_port: 0,
            pad: 0,
        }
    }

    fn sides(row: &BpfMapEntry) -> (&str, &str, &str) {
        match row {
            BpfMapEntry::Ct {
                src,
                dst,
                direction,
                ..
            } => (src, dst, direction),
            other => panic!("not a CT row: {other:?}"),
        }
    }

    #[test]
    fn both_families_ct_rows_show_addresses_ports_and_direction() {
        let v4 = ct_rows(vec![(
            ct::CtKey {
                saddr: [10, 0, 0, 1],
                daddr: [10, 0, 0, 2],
                sport: 40000u16.to_be(),
                dport: 80u16.to_be(),
                protocol: 6,
                dir: ct::CT_DIR_EGRESS,
                pad: 0,
            },
            entry(),
        )]);
        assert_eq!(sides(&v4[0]), ("10.0.0.1:40000", "10.0.0.2:80", "OUT"));

        let mut daddr = [0u8; 16];
        daddr[0] = 0xf0;
        daddr[1] = 0x0d;
        daddr[15] = 2;
        let v6 = ct_rows(vec![(
            ct::Ct6Key {
                saddr: Ipv6Addr::LOCALHOST.octets(),
                daddr,
                sport: 40000u16.to_be(),
                dport: 8080u16.to_be(),
                protocol: 6,
                dir: ct::CT_DIR_INGRESS,
                pad: 0,
            },
            entry(),
        )]);
        assert_eq!(sides(&v6[0]), ("[::1]:40000", "[f00d::2]:8080", "IN"));
        assert!(matches!(&v6[0], BpfMapEntry::Ct { flags, .. } if flags == &["SeenNonSyn"]));
    }

    #[test]
    fn both_families_ipcache_rows_show_their_prefix() {
        let info = maps::RemoteEndpointInfo::default();
        let rows = ipcache_rows(vec![(Ipv4Addr::new(10, 0, 0, 0), 8, info)]);
        let rows6 = ipcache_rows(vec![(Ipv6Addr::LOCALHOST, 128, info)]);
        for (row, want) in [(&rows[0], "10.0.0.0/8"), (&rows6[0], "::1/128")] {
            assert!(matches!(row, BpfMapEntry::Ipcache { prefix, .. } if prefix == want));
        }
    }
}

//! IPv6 for the BPF_PROG_TEST_RUN fixture: the pods' IPv6 addresses and
//! crafted IPv6 packets with extension-header chains.

use std::net::{Ipv4Addr, Ipv6Addr};

use datapath::test_run::TestRunOutput;

use super::{Node, Pod, BACKEND, FRONTEND, INTRUDER};

pub const ICMPV6: u8 = 58;
pub const NEXTHDR_HOP: u8 = 0;
pub const NEXTHDR_ROUTING: u8 = 43;
pub const NEXTHDR_FRAGMENT: u8 = 44;
pub const NEXTHDR_AUTH: u8 = 51;
pub const NEXTHDR_NONE: u8 = 59;
pub const NEXTHDR_DEST: u8 = 60;

pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;
pub const PACKET_TOO_BIG: u8 = 2;
pub const NEIGHBOR_SOLICIT: u8 = 135;
pub const NEIGHBOR_ADVERT: u8 = 136;

/// The node's IPv6 router (the endpoints' gateway).
pub const ROUTER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 1);
/// An address outside the cluster.
pub const WORLD6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);

pub fn ip6(pod: &Pod) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, pod.id)
}

/// Gives the node's three endpoints their IPv6 addresses, in cilium_lxc6
/// and cilium_ipcache6 as the agent would.
pub fn dual_stack(node: &mut Node) {
    for pod in [&FRONTEND, &BACKEND, &INTRUDER] {
        let info = node
            .maps
            .lxc
            .entries()
            .unwrap()
            .into_iter()
            .find(|(ip, _)| *ip == pod.ip)
            .unwrap()
            .1;
        node.maps.lxc6.upsert(ip6(pod), &info).unwrap();
        node.maps
            .ipcache6
            .upsert(ip6(pod), 128, pod.identity, Ipv4Addr::UNSPECIFIED)
            .unwrap();
    }
}

/// An extension header of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ext {
    /// Hop-by-hop, routing or destination options: (type, length in 8-byte
    /// units beyond the first 8).
    Opts(u8, u8),
    /// AH with its payload length field (length in 4-byte units, minus 2).
    Auth(u8),
    /// Fragment header: offset in 8-byte units, more fragments, id.
    Frag { offset: u16, more: bool, id: u32 },
    /// "No next header".
    None,
}

impl Ext {
    pub fn kind(&self) -> u8 {
        match self {
            Ext::Opts(kind, _) => *kind,
            Ext::Auth(_) => NEXTHDR_AUTH,
            Ext::Frag { .. } => NEXTHDR_FRAGMENT,
            Ext::None => NEXTHDR_NONE,
        }
    }

    fn bytes(&self, next: u8) -> Vec<u8> {
        match *self {
            Ext::Opts(_, units) => {
                let mut b = vec![0u8; (units as usize + 1) * 8];
                b[0] = next;
                b[1] = units;
                b
            }
            Ext::Auth(len) => {
                let mut b = vec![0u8; (len as usize + 2) * 4];
                b[0] = next;
                b[1] = len;
                b
            }
            Ext::Frag { offset, more, id } => {
                let mut b = vec![next, 0];
                b.extend_from_slice(&((offset << 3) | more as u16).to_be_bytes());
                b.extend_from_slice(&id.to_be_bytes());
                b
            }
            Ext::None => Vec::new(),
        }
    }
}

/// Ethernet + IPv6 + the extension headers + `l4` of protocol `proto`.
pub fn packet6(src: Ipv6Addr, dst: Ipv6Addr, exts: &[Ext], proto: u8, l4: &[u8]) -> Vec<u8> {
    packet6_hop(src, dst, 64, exts, proto, l4)
}

pub fn packet6_hop(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    exts: &[Ext],
    proto: u8,
    l4: &[u8],
) -> Vec<u8> {
    let mut chain = Vec::new();
    for (i, ext) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(proto, Ext::kind);
        chain.extend(ext.bytes(next));
    }
    let first = exts.first().map_or(proto, Ext::kind);
    let mut p = vec![2, 0, 0, 0, 0, 0xaa, 2, 0, 0, 0, 0, 0xbb, 0x86, 0xdd];
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&((chain.len() + l4.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[first, hop_limit]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend(chain);
    p.extend_from_slice(l4);
    p
}

pub fn tcp_l4(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = flags;
    l4
}

pub fn udp_l4(sport: u16, dport: u16) -> Vec<u8> {
    let mut l4 = vec![0u8; 12];
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4[4..6].copy_from_slice(&12u16.to_be_bytes());
    l4
}

/// An ICMPv6 message: type, code 0, the echo id (or the first half of the
/// message body) and `body` after the 8-byte header.
pub fn icmp6_l4(icmp_type: u8, id: u16, body: &[u8]) -> Vec<u8> {
    let mut l4 = vec![icmp_type, 0, 0, 0];
    l4.extend_from_slice(&id.to_be_bytes());
    l4.extend_from_slice(&[0, 1]);
    l4.extend_from_slice(body);
    l4
}

pub fn tcp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16, flags: u8) -> Vec<u8> {
    packet6(src, dst, &[], super::TCP, &tcp_l4(sport, dport, flags))
}

pub fn udp6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> Vec<u8> {
    packet6(src, dst, &[], super::UDP, &udp_l4(sport, dport))
}

pub fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, icmp_type: u8, id: u16) -> Vec<u8> {
    packet6(src, dst, &[], ICMPV6, &icmp6_l4(icmp_type, id, &[]))
}

/// A neighbour solicitation for `target` (hop limit 255, with the source
/// link-layer address option when the source is specified).
pub fn neighbor_solicit(src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let mut body = vec![0u8; 4];
    body.extend_from_slice(&target.octets());
    if !src.is_unspecified() {
        body.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 0xbb]);
    }
    let mut l4 = vec![NEIGHBOR_SOLICIT, 0, 0, 0];
    l4.extend(body);
    let o = target.octets();
    let solicited_node = Ipv6Addr::from([
        0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ]);
    packet6_hop(src, solicited_node, 255, &[], ICMPV6, &l4)
}

/// The ones' complement checksum of an ICMPv6 message with its pseudo
/// header: 0 when the message's own checksum is right.
pub fn icmp6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
    pseudo.extend_from_slice(msg);
    super::checksum(&pseudo)
}

/// A TCP or UDP packet over IPv6 with a correct L4 checksum.
pub fn checked6(
    proto: u8,
    src: Ipv6Addr,
    sport: u16,
    dst: Ipv6Addr,
    dport: u16,
    flags: u8,
) -> Vec<u8> {
    let mut l4 = if proto == super::TCP {
        tcp_l4(sport, dport, flags)
    } else {
        udp_l4(sport, dport)
    };
    let at = if proto == super::TCP { 16 } else { 6 };
    let sum = l4_checksum6(proto, src, dst, &l4);
    l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    packet6(src, dst, &[], proto, &l4)
}

pub fn l4_checksum6(proto: u8, src: Ipv6Addr, dst: Ipv6Addr, l4: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, proto]);
    pseudo.extend_from_slice(l4);
    super::checksum(&pseudo)
}

/// (source, source port, destination, destination port) of a packet the
/// program left, after checking its L4 checksum.
pub fn inspect6(out: &TestRunOutput) -> (Ipv6Addr, u16, Ipv6Addr, u16) {
    let p = &out.packet;
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&p[22..38]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&p[38..54]).unwrap());
    let l4 = &p[54..];
    assert_eq!(
        l4_checksum6(p[20], src, dst, l4),
        0,
        "L4 checksum stays valid"
    );
    let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    (src, port(0), dst, port(2))
}

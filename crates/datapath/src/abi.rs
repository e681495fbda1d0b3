//! The layout of every struct shared with the C datapath, for the test that
//! checks it against the BTF of the compiled object.

use std::mem::{offset_of, size_of};

use crate::{
    events::{Event, Event6, TraceSockEvent},
    maps::{
        lb::{
            Lb4Backend, Lb4Key, Lb4ReverseNat, Lb4ReverseSk, Lb4ReverseSkKey, Lb4Service,
            Lb6Backend, Lb6Key, Lb6ReverseNat, Lb6ReverseSk, Lb6ReverseSkKey, Lb6Service,
        },
        nat::{Nat4Entry, Nat4Key, Nat6Entry, Nat6Key},
        Ct6Key, CtEntry, CtKey, Endpoint6Key, EndpointInfo, EndpointKey, Ipcache6Key, IpcacheKey,
        MetricsValue, PolicyEntry, PolicyKey, RemoteEndpointInfo,
    },
};

/// A struct's name in C, its size, and its fields' names and byte offsets.
#[derive(Debug, PartialEq, Eq)]
pub struct StructLayout {
    pub c_name: &'static str,
    pub size: usize,
    pub fields: Vec<(&'static str, usize)>,
}

macro_rules! layout {
    ($ty:ty, $c:literal, [$($field:ident $(as $cfield:literal)?),* $(,)?]) => {
        StructLayout {
            c_name: $c,
            size: size_of::<$ty>(),
            fields: vec![$((layout!(@name $field $($cfield)?), offset_of!($ty, $field))),*],
        }
    };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $cfield:literal) => { $cfield };
}

pub fn layouts() -> Vec<StructLayout> {
    vec![
        layout!(
            Lb4Key,
            "lb4_key",
            [address, dport, backend_slot, proto, scope, pad]
        ),
        layout!(
            Lb4Service,
            "lb4_service",
            [backend_id, count, rev_nat_index, flags, flags2, pad]
        ),
        layout!(
            Lb4Backend,
            "lb4_backend",
            [address, port, proto, flags, cluster_id, zone, pad]
        ),
        layout!(Lb4ReverseNat, "lb4_reverse_nat", [address, port, pad]),
        layout!(
            Lb4ReverseSkKey,
            "lb4_reverse_sk_key",
            [cookie, address, port, pad]
        ),
        layout!(
            Lb4ReverseSk,
            "lb4_reverse_sk",
            [address, port, rev_nat_index]
        ),
        layout!(
            Lb6Key,
            "lb6_key",
            [address, dport, backend_slot, proto, scope, pad]
        ),
        layout!(
            Lb6Service,
            "lb6_service",
            [backend_id, count, rev_nat_index, flags, flags2, pad]
        ),
        layout!(
            Lb6Backend,
            "lb6_backend",
            [address, port, proto, flags, cluster_id, zone, pad]
        ),
        layout!(Lb6ReverseNat, "lb6_reverse_nat", [address, port, pad, pad2]),
        layout!(
            Lb6ReverseSkKey,
            "lb6_reverse_sk_key",
            [cookie, address, port, pad, pad2]
        ),
        layout!(
            Lb6ReverseSk,
            "lb6_reverse_sk",
            [address, port, rev_nat_index, pad]
        ),
        layout!(
            Nat4Key,
            "nat4_key",
            [saddr, daddr, sport, dport, protocol, dir, pad]
        ),
        layout!(Nat4Entry, "nat4_entry", [to_addr, to_port, rev_nat_index]),
        layout!(
            Nat6Key,
            "nat6_key",
            [saddr, daddr, sport, dport, protocol, dir, pad]
        ),
        layout!(
            Nat6Entry,
            "nat6_entry",
            [to_addr, to_port, rev_nat_index, pad]
        ),
        layout!(EndpointKey, "endpoint_key", [ip4]),
        layout!(
            EndpointInfo,
            "endpoint_info",
            [ifindex, lxc_id, flags, mac, node_mac, sec_id]
        ),
        layout!(IpcacheKey, "ipcache_key", [prefixlen, ip4]),
        layout!(Endpoint6Key, "endpoint6_key", [ip6]),
        layout!(Ipcache6Key, "ipcache6_key", [prefixlen, ip6]),
        layout!(
            Ct6Key,
            "ct6_key",
            [saddr, daddr, sport, dport, protocol, dir, pad]
        ),
        layout!(
            RemoteEndpointInfo,
            "remote_endpoint_info",
            [sec_identity, tunnel_endpoint, flags, pad]
        ),
        layout!(
            PolicyKey,
            "policy_key",
            [prefixlen, sec_label, egress, protocol, dport]
        ),
        layout!(
            PolicyEntry,
            "policy_entry",
            [proxy_port, deny, lpm_prefix_length, pad, packets, bytes]
        ),
        layout!(
            CtKey,
            "ct_key",
            [saddr, daddr, sport, dport, protocol, dir, pad]
        ),
        layout!(
            CtEntry,
            "ct_entry",
            [
                expires,
                rx_packets,
                rx_bytes,
                tx_packets,
                tx_bytes,
                src_identity,
                flags,
                rev_nat_index,
                backend_id,
                proxy_port,
                pad
            ]
        ),
        layout!(MetricsValue, "metrics_value", [packets, bytes]),
        layout!(Event, "event", [timestamp, r#type as "type", subtype, ep_id, ifindex, src_identity, dst_identity, saddr, daddr, sport, dport, protocol, tcp_flags, dir, verdict, match_type, ct_state, family, pad, length, cpu]),
        layout!(Event6, "event6", [ev, saddr6, daddr6]),
        layout!(
            TraceSockEvent,
            "trace_sock_event",
            [ev, sock_cookie, netns_cookie, cgroup_id]
        ),
    ]
}

//! Service load balancing for IPv6 in the endpoint programs, on crafted
//! packets (BPF_PROG_TEST_RUN): an IPv6 frontend translated to IPv6
//! backends, each flow sticking to its backend, replies translated back,
//! checksums kept valid, and policy deciding on the backend. Needs root.

mod support;

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use datapath::endpoint::{FROM_CONTAINER, TO_CONTAINER};
use datapath::{
    maps::{
        lb::{Frontend, ServiceEntry},
        PolicyKey,
    },
    test_run::{run, TestRunOutput, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
};
use support::v6::*;
use support::*;

const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0x10);

/// FRONTEND is the client (egress open); BACKEND and INTRUDER serve port
/// 8080 (ingress open) behind VIP6 port 80, TCP as service 1 and UDP as 2.
fn node(name: &str) -> Node {
    let mut node = Node::new(name);
    dual_stack(&mut node);
    node.allow(&FRONTEND, PolicyKey::new(0, 0, 0, 0, EGRESS));
    for pod in [&BACKEND, &INTRUDER] {
        node.allow(pod, PolicyKey::new(0, 0, 0, 0, INGRESS));
    }
    for (id, proto) in [(1u16, TCP), (2, UDP)] {
        let ids = [u32::from(id) * 10, u32::from(id) * 10 + 1];
        for (backend_id, pod) in ids.iter().zip([&BACKEND, &INTRUDER]) {
            node.maps
                .lb
                .upsert_backend(*backend_id, ip6(pod).into(), 8080, proto)
                .unwrap();
        }
        let service = ServiceEntry {
            frontend: Frontend {
                address: VIP6.into(),
                port: 80,
                proto,
            },
            rev_nat_index: id,
            flags: 0,
            slots: ids.to_vec(),
        };
        node.maps.lb.upsert_service(&service, 0).unwrap();
    }
    node
}

fn send(node: &Node, packet: &[u8]) -> TestRunOutput {
    let fd = node.prog(&FRONTEND).program_fd(FROM_CONTAINER).unwrap();
    run(fd, packet).unwrap()
}

#[test]
fn connections_to_an_ipv6_frontend_reach_both_backends_and_stick() {
    let node = node("lb6stick");
    let client = ip6(&FRONTEND);
    let backends = BTreeSet::from([ip6(&BACKEND), ip6(&INTRUDER)]);
    let mut chosen = BTreeSet::new();
    for sport in 41000..41040 {
        let out = send(&node, &checked6(TCP, client, sport, VIP6, 80, SYN));
        assert_eq!(out.retval, TC_ACT_REDIRECT, "delivered to a local backend");
        let (_, _, dst, dport) = inspect6(&out);
        assert!(backends.contains(&dst), "{dst} is a backend");
        assert_eq!(dport, 8080);
        for _ in 0..3 {
            let again = send(&node, &checked6(TCP, client, sport, VIP6, 80, ACK));
            assert_eq!(
                inspect6(&again).2,
                dst,
                "every packet of a flow goes to one backend"
            );
        }
        chosen.insert(dst);
    }
    assert_eq!(chosen, backends, "40 connections spread over both backends");
}

#[test]
fn ipv6_replies_come_from_the_frontend() {
    let node = node("lb6revnat");
    let client = ip6(&FRONTEND);
    let to = node.prog(&FRONTEND).program_fd(TO_CONTAINER).unwrap();
    for proto in [TCP, UDP] {
        let sport = 42000 + u16::from(proto);
        let out = send(&node, &checked6(proto, client, sport, VIP6, 80, SYN));
        let (_, _, backend, _) = inspect6(&out);
        let reply = run(to, &checked6(proto, backend, 8080, client, sport, SYN_ACK)).unwrap();
        assert_eq!(
            inspect6(&reply),
            (VIP6, 80, client, sport),
            "proto {proto}: the client sees the frontend"
        );
    }
}

#[test]
fn egress_policy_decides_on_the_chosen_backend() {
    let node = node("lb6policy");
    let client = ip6(&FRONTEND);
    // Only BACKEND's port 8080 is allowed now; INTRUDER serves the service
    // too, and flows balanced to it are dropped.
    let mut map = datapath::maps::PolicyMap::open(&node.t.root, FRONTEND.id).unwrap();
    map.remove(&PolicyKey::new(0, 0, 0, 0, EGRESS)).unwrap();
    node.allow(
        &FRONTEND,
        PolicyKey::new(BACKEND.identity, TCP, 8080, 16, EGRESS),
    );
    let mut outcomes = BTreeSet::new();
    for sport in 43000..43040 {
        let out = send(&node, &checked6(TCP, client, sport, VIP6, 80, SYN));
        outcomes.insert(out.retval);
        if out.retval == TC_ACT_REDIRECT {
            assert_eq!(
                inspect6(&out).2,
                ip6(&BACKEND),
                "only the allowed backend is reached"
            );
        }
    }
    assert_eq!(outcomes, BTreeSet::from([TC_ACT_REDIRECT, TC_ACT_SHOT]));
}

/// A packet too big from a router between the client and the backend
/// quotes the translated packet (to the backend); the client gets it
/// quoting the frontend its socket dialled, with a valid ICMPv6 checksum,
/// so path MTU discovery works through the service.
#[test]
fn a_packet_too_big_about_a_service_flow_quotes_the_frontend() {
    let node = node("lb6ptb");
    let client = ip6(&FRONTEND);
    let router = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe);
    let to = node.prog(&FRONTEND).program_fd(TO_CONTAINER).unwrap();
    let sent = send(&node, &checked6(TCP, client, 44000, VIP6, 80, SYN)).packet;

    // The MTU, then as much of the offending packet as fits (here all).
    let mut error = vec![PACKET_TOO_BIG, 0, 0, 0];
    error.extend_from_slice(&1280u32.to_be_bytes());
    error.extend_from_slice(&sent[14..]);
    let sum = icmp6_checksum(router, client, &error);
    error[2..4].copy_from_slice(&sum.to_be_bytes());
    let out = run(to, &packet6(router, client, &[], ICMPV6, &error)).unwrap();

    assert_eq!(out.retval, TC_ACT_OK, "related to the flow: delivered");
    let icmp = &out.packet[54..];
    assert_eq!(
        icmp6_checksum(router, client, icmp),
        0,
        "the error's checksum stays valid"
    );
    let quote = &icmp[8..];
    let quoted_dst = Ipv6Addr::from(<[u8; 16]>::try_from(&quote[24..40]).unwrap());
    let quoted_dport = u16::from_be_bytes([quote[42], quote[43]]);
    assert_eq!(
        (quoted_dst, quoted_dport),
        (VIP6, 80),
        "quotes the frontend"
    );
    assert_eq!(&quote[8..24], &client.octets(), "and the client as it was");
}

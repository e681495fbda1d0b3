//! IPv4 ICMP messages other than echo at an endpoint, run in the kernel on
//! crafted packets with BPF_PROG_TEST_RUN. As over IPv6, each is decided on
//! its own: an allowed type leaves nothing in conntrack that another type
//! could pass on as "established", and an error (destination unreachable,
//! time exceeded, parameter problem) quoting a flow the endpoint tracks
//! passes as related whatever the policy. Needs root.

mod support;

use std::net::Ipv4Addr;

use datapath::{
    maps::PolicyKey,
    test_run::{TC_ACT_OK, TC_ACT_SHOT},
};
use support::*;

const ICMP: u8 = 1;
/// An IPv4 address the ipcache does not know.
const WORLD_ID: u32 = 2;
const WORLD: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);

const DEST_UNREACH: u8 = 3;
const PORT_UNREACH: u8 = 3;
const TIME_EXCEEDED: u8 = 11;
const TIMESTAMP: u8 = 13;
const INFO_REQUEST: u8 = 15;

/// An ICMP message of `icmp_type`/`code` with `body` after its 8-byte header.
fn icmp(src: Ipv4Addr, dst: Ipv4Addr, icmp_type: u8, code: u8, body: &[u8]) -> Vec<u8> {
    let mut l4 = vec![icmp_type, code, 0, 0, 0, 0, 0, 0];
    l4.extend_from_slice(body);
    let sum = checksum(&l4);
    l4[2..4].copy_from_slice(&sum.to_be_bytes());
    packet(src, dst, ICMP, &l4)
}

/// An error from `from` to `to` quoting `quoted`'s IP header and 8 bytes.
fn error(from: Ipv4Addr, to: Ipv4Addr, icmp_type: u8, quoted: &[u8]) -> Vec<u8> {
    icmp(from, to, icmp_type, PORT_UNREACH, &quoted[14..14 + 20 + 8])
}

fn tracked_icmp_entries(node: &Node) -> usize {
    node.maps
        .ct
        .entries()
        .unwrap()
        .iter()
        .filter(|(key, _)| key.protocol == ICMP)
        .count()
}

#[test]
fn an_allowed_icmp_type_does_not_let_another_through() {
    let node = Node::new("icmp4types");
    let (front, back) = (FRONTEND.ip, BACKEND.ip);
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, ICMP, TIMESTAMP.into(), 16, INGRESS),
    );
    let timestamp = icmp(front, back, TIMESTAMP, 0, &[0; 12]);
    assert_eq!(node.deliver(&BACKEND, &timestamp), TC_ACT_OK);
    // Same addresses, no ports: it used to match the timestamp's entry.
    let info = icmp(front, back, INFO_REQUEST, 0, &[]);
    assert_eq!(node.deliver(&BACKEND, &info), TC_ACT_SHOT);
    assert_eq!(node.deliver(&BACKEND, &timestamp), TC_ACT_OK);
    assert_eq!(tracked_icmp_entries(&node), 0, "non-echo ICMP is untracked");
    // Echo is still a connection: its reply passes the other way.
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, ICMP, 8, 16, INGRESS),
    );
    let mut echo = icmp(front, back, 8, 0, &[0; 8]);
    echo[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&77u16.to_be_bytes());
    assert_eq!(node.deliver(&BACKEND, &echo), TC_ACT_OK);
    assert_eq!(
        tracked_icmp_entries(&node),
        1,
        "the echo request is tracked"
    );
}

#[test]
fn an_icmp_error_about_a_tracked_flow_passes_whatever_the_policy() {
    let node = Node::new("icmp4err");
    let front = FRONTEND.ip;
    node.allow(&FRONTEND, PolicyKey::new(WORLD_ID, UDP, 53, 16, EGRESS));
    node.deny(&FRONTEND, PolicyKey::new(0, 0, 0, 0, INGRESS));

    let query = udp(front, 40200, WORLD, 53);
    assert_eq!(node.send(&FRONTEND, &query), TC_ACT_OK);
    for kind in [DEST_UNREACH, TIME_EXCEEDED] {
        assert_eq!(
            node.deliver(&FRONTEND, &error(ROUTER, front, kind, &query)),
            TC_ACT_OK,
            "type {kind} about the tracked query"
        );
    }
    // About a flow nobody tracks, or quoting someone else's packet: policy
    // decides (and denies).
    let untracked = udp(front, 40201, WORLD, 53);
    assert_eq!(
        node.deliver(&FRONTEND, &error(ROUTER, front, DEST_UNREACH, &untracked)),
        TC_ACT_SHOT
    );
    let back = BACKEND.ip;
    assert_eq!(
        node.deliver(&BACKEND, &error(ROUTER, back, DEST_UNREACH, &query)),
        TC_ACT_SHOT
    );
    // A non-error type quoting the flow is no error: policy decides.
    assert_eq!(
        node.deliver(&FRONTEND, &error(ROUTER, front, TIMESTAMP, &query)),
        TC_ACT_SHOT
    );

    // The other way: the endpoint tells an allowed client its port is
    // closed, though its egress allows no ICMP.
    let node = Node::new("icmp4err2");
    node.allow(&FRONTEND, PolicyKey::new(WORLD_ID, UDP, 5353, 16, INGRESS));
    let client = udp(WORLD, 40202, front, 5353);
    assert_eq!(node.deliver(&FRONTEND, &client), TC_ACT_OK);
    assert_eq!(
        node.send(&FRONTEND, &error(front, WORLD, DEST_UNREACH, &client)),
        TC_ACT_OK
    );
    let stray = udp(WORLD, 40203, front, 5353);
    assert_eq!(
        node.send(&FRONTEND, &error(front, WORLD, DEST_UNREACH, &stray)),
        TC_ACT_SHOT
    );
}

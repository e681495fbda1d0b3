//! bpf_host on crafted packets (BPF_PROG_TEST_RUN): VXLAN from another node
//! to a local endpoint is decapsulated and held to the endpoint's ingress
//! policy against the VNI's identity; everything else goes on to the stack
//! untouched. Needs root and bpffs.

mod support;

use std::net::Ipv4Addr;

use datapath::{
    host::{HostProgram, Overlay},
    maps::PolicyKey,
    test_run::{run, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
};
use support::*;

const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const PEER_NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const VXLAN_PORT: u16 = 8472;
/// The overlay device's ifindex only matters to the kernel's redirect,
/// which a test run does not perform.
const OVERLAY: Overlay = Overlay {
    port: VXLAN_PORT,
    ifindex: 1,
};
const REMOTE_POD: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 5);
const HOST_ID: u32 = 1;
const REMOTE_NODE_ID: u32 = 6;

/// `inner` (an Ethernet frame) as another node's VXLAN packet: outer
/// Ethernet, IPv4 to `to`, UDP to `port` with `udp_check`, VXLAN with `vni`.
fn vxlan(to: Ipv4Addr, port: u16, udp_check: u16, vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut l4 = vec![0u8; 8 + 8];
    l4[0..2].copy_from_slice(&51234u16.to_be_bytes());
    l4[2..4].copy_from_slice(&port.to_be_bytes());
    l4[4..6].copy_from_slice(&((16 + inner.len()) as u16).to_be_bytes());
    l4[6..8].copy_from_slice(&udp_check.to_be_bytes());
    l4[8] = 0x08; // the I flag: the VNI is valid
    l4[12..16].copy_from_slice(&(vni << 8).to_be_bytes());
    l4.extend_from_slice(inner);
    let mut p = packet(PEER_NODE, to, UDP, &l4);
    let sum = checksum(&p[14..34]);
    p[24..26].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The node's endpoints with their policy programs installed as tail
/// calls, and bpf_host loaded for NODE_IP.
fn node(name: &str) -> (Node, HostProgram) {
    let mut node = Node::new(name);
    for prog in &mut node.progs {
        prog.install_policy_call().unwrap();
    }
    let host = HostProgram::load(&node.t.root, NODE_IP, Some(OVERLAY)).unwrap();
    (node, host)
}

#[test]
fn vxlan_to_a_local_endpoint_is_decapsulated_and_held_to_its_ingress_policy() {
    let (node, host) = node("decap");
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, TCP, 80, 16, INGRESS),
    );
    let fd = host.program_fd().unwrap();
    let inner = tcp(REMOTE_POD, 40300, BACKEND.ip, 80, SYN);

    let allowed = run(
        fd,
        &vxlan(NODE_IP, VXLAN_PORT, 0, FRONTEND.identity, &inner),
    )
    .unwrap();
    assert_eq!(allowed.retval, TC_ACT_REDIRECT, "bpf_redirect_peer");
    let out = &allowed.packet;
    assert_eq!(out.len(), inner.len(), "outer headers removed");
    assert_eq!(
        out[0..6],
        [2, 0, 0, 0, 0, BACKEND.id as u8],
        "to the container"
    );
    assert_eq!(
        out[6..12],
        [2, 1, 0, 0, 0, BACKEND.id as u8],
        "from its veth"
    );
    assert_eq!(out[14 + 8], 63, "TTL decremented");
    assert_eq!(
        out[14 + 12..],
        inner[14 + 12..],
        "addresses and TCP as sent"
    );

    let intruder = tcp(REMOTE_POD, 40301, BACKEND.ip, 80, SYN);
    let denied = vxlan(NODE_IP, VXLAN_PORT, 0, INTRUDER.identity, &intruder);
    assert_eq!(run(fd, &denied).unwrap().retval, TC_ACT_SHOT);
    let other_port = tcp(REMOTE_POD, 40302, BACKEND.ip, 81, SYN);
    let denied = vxlan(NODE_IP, VXLAN_PORT, 0, FRONTEND.identity, &other_port);
    assert_eq!(run(fd, &denied).unwrap().retval, TC_ACT_SHOT);
}

#[test]
fn the_other_nodes_own_traffic_is_remote_node() {
    let (node, host) = node("remote-node");
    node.allow(&BACKEND, PolicyKey::new(REMOTE_NODE_ID, TCP, 0, 0, INGRESS));
    let fd = host.program_fd().unwrap();
    let from_node = |sport| tcp(PEER_NODE, sport, BACKEND.ip, 8080, SYN);
    let as_host = vxlan(NODE_IP, VXLAN_PORT, 0, HOST_ID, &from_node(40310));
    assert_eq!(run(fd, &as_host).unwrap().retval, TC_ACT_REDIRECT);
    let as_world = vxlan(NODE_IP, VXLAN_PORT, 0, 2, &from_node(40311));
    assert_eq!(run(fd, &as_world).unwrap().retval, TC_ACT_SHOT);
}

#[test]
fn everything_else_goes_on_to_the_stack_untouched() {
    let (node, host) = node("pass");
    node.allow(&BACKEND, PolicyKey::new(0, 0, 0, 0, INGRESS));
    let fd = host.program_fd().unwrap();
    let to_backend = tcp(REMOTE_POD, 40320, BACKEND.ip, 80, SYN);
    let to_nobody = tcp(REMOTE_POD, 40321, Ipv4Addr::new(10, 9, 0, 99), 80, SYN);
    let valid = || vxlan(NODE_IP, VXLAN_PORT, 0, FRONTEND.identity, &to_backend);
    let mut truncated = valid();
    truncated.truncate(14 + 20 + 8 + 8 + 14 + 10);
    let mut padded = valid();
    padded.extend_from_slice(&[0; 8]);
    let mut corrupt = valid();
    corrupt[14 + 4] ^= 0x01; // the IP id, under the header checksum
    let mut gbp = valid();
    gbp[14 + 20 + 8] |= 0x80; // a VXLAN extension flag we do not speak
    let mut fragment = valid();
    fragment[14 + 6] |= 0x20; // more fragments
    let sum = checksum(&{
        let mut h = fragment[14..34].to_vec();
        h[10..12].fill(0);
        h
    });
    fragment[24..26].copy_from_slice(&sum.to_be_bytes());
    let cases = [
        (
            "plain TCP to the node",
            tcp(PEER_NODE, 40322, NODE_IP, 2379, SYN),
        ),
        (
            "VXLAN to another address",
            vxlan(PEER_NODE, VXLAN_PORT, 0, FRONTEND.identity, &to_backend),
        ),
        (
            "another UDP port",
            vxlan(NODE_IP, 4789, 0, FRONTEND.identity, &to_backend),
        ),
        (
            "a UDP checksum to verify",
            vxlan(NODE_IP, VXLAN_PORT, 0x1234, FRONTEND.identity, &to_backend),
        ),
        (
            "no local endpoint inside",
            vxlan(NODE_IP, VXLAN_PORT, 0, FRONTEND.identity, &to_nobody),
        ),
        (
            "TCP from outside to a local endpoint, of no proxy connection",
            tcp(Ipv4Addr::new(198, 51, 100, 7), 40323, BACKEND.ip, 80, SYN),
        ),
        ("headers cut short", truncated),
        ("lengths that disagree", padded),
        ("a bad outer IP checksum", corrupt),
        ("a VXLAN extension", gbp),
        ("an outer fragment", fragment),
    ];
    for (what, p) in cases {
        let out = run(fd, &p).unwrap();
        assert_eq!(out.retval, TC_ACT_OK, "{what}");
        assert_eq!(out.packet, p, "{what}: changed");
    }
}

#[test]
fn without_an_overlay_vxlan_is_left_to_the_stack() {
    let node = Node::new("no-overlay");
    node.allow(&BACKEND, PolicyKey::new(0, 0, 0, 0, INGRESS));
    let host = HostProgram::load(&node.t.root, NODE_IP, None).unwrap();
    let inner = tcp(REMOTE_POD, 40330, BACKEND.ip, 80, SYN);
    let p = vxlan(NODE_IP, VXLAN_PORT, 0, FRONTEND.identity, &inner);
    let out = run(host.program_fd().unwrap(), &p).unwrap();
    assert_eq!(out.retval, TC_ACT_OK);
    assert_eq!(out.packet, p, "changed");
}

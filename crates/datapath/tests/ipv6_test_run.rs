//! IPv6 at an endpoint, run in the kernel on crafted packets with
//! BPF_PROG_TEST_RUN: the IPv4 allow/deny matrix over IPv6, ICMPv6 `icmps`
//! rules, neighbour discovery and packet-too-big past any policy, and
//! extension headers and fragments that never get past a deny. Needs root.

mod support;

use std::net::Ipv6Addr;

use datapath::{
    endpoint::{EndpointConfig, EndpointProgram, FROM_CONTAINER},
    events::{EventKind, EventReader},
    maps::{ct::CT_DIR_INGRESS, PolicyKey},
    test_run::{run, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
};
use support::v6::*;
use support::*;

const WORLD_ID: u32 = 2;
/// The IPv6 outside: an IPv6 address the ipcache does not know.
const WORLD_IPV6_ID: u32 = 10;

fn node(name: &str) -> Node {
    let mut node = Node::new(name);
    dual_stack(&mut node);
    node
}

/// Packets counted as dropped for `reason` in `dir` (0 ingress, 1 egress).
fn drops(node: &Node, reason: u8, dir: u8) -> u64 {
    node.maps
        .metrics
        .totals()
        .unwrap()
        .iter()
        .find(|(k, _)| k.reason == reason && k.dir == dir)
        .map_or(0, |(_, v)| v.packets)
}

#[test]
fn the_allow_deny_matrix_holds_over_ipv6() {
    let node = node("v6matrix");
    let (front, back, intruder) = (ip6(&FRONTEND), ip6(&BACKEND), ip6(&INTRUDER));
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, TCP, 80, 16, INGRESS),
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp6(front, 40001, back, 80, SYN)),
        TC_ACT_OK
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp6(front, 40002, back, 81, SYN)),
        TC_ACT_SHOT
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp6(intruder, 40003, back, 80, SYN)),
        TC_ACT_SHOT
    );
    assert_eq!(
        node.deliver(&BACKEND, &udp6(front, 40004, back, 80)),
        TC_ACT_SHOT
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp6(WORLD6, 40005, back, 80, SYN)),
        TC_ACT_SHOT
    );

    // L3 for the intruder, but a deny on one port wins.
    node.allow(
        &BACKEND,
        PolicyKey::new(INTRUDER.identity, 0, 0, 0, INGRESS),
    );
    node.deny(
        &BACKEND,
        PolicyKey::new(INTRUDER.identity, TCP, 22, 16, INGRESS),
    );
    assert_eq!(
        node.deliver(&BACKEND, &udp6(intruder, 40006, back, 53)),
        TC_ACT_OK
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp6(intruder, 40007, back, 22, SYN)),
        TC_ACT_SHOT
    );

    // Egress: nothing allowed, then the backend on port 80, delivered
    // locally through the backend's own policy program.
    assert_eq!(
        node.send(&FRONTEND, &tcp6(front, 40010, back, 80, SYN)),
        TC_ACT_SHOT
    );
    node.allow(
        &FRONTEND,
        PolicyKey::new(BACKEND.identity, TCP, 80, 16, EGRESS),
    );
    assert_eq!(
        node.send(&FRONTEND, &tcp6(front, 40011, back, 80, SYN)),
        TC_ACT_REDIRECT
    );
    assert_eq!(
        node.send(&FRONTEND, &tcp6(front, 40012, WORLD6, 80, SYN)),
        TC_ACT_SHOT
    );
    // The IPv4 outside's identity is not the IPv6 one's.
    node.allow(&FRONTEND, PolicyKey::new(WORLD_ID, 0, 0, 0, EGRESS));
    assert_eq!(
        node.send(&FRONTEND, &tcp6(front, 40016, WORLD6, 80, SYN)),
        TC_ACT_SHOT
    );
    node.allow(&FRONTEND, PolicyKey::new(WORLD_IPV6_ID, 0, 0, 0, EGRESS));
    assert_eq!(
        node.send(&FRONTEND, &tcp6(front, 40013, WORLD6, 80, SYN)),
        TC_ACT_OK
    );

    // Another endpoint's address, or one nobody has, is spoofing.
    assert_eq!(
        node.send(&FRONTEND, &tcp6(back, 40014, WORLD6, 80, SYN)),
        TC_ACT_SHOT
    );
    let stranger = Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 0x99);
    assert_eq!(
        node.send(&FRONTEND, &tcp6(stranger, 40015, WORLD6, 80, SYN)),
        TC_ACT_SHOT
    );
    assert!(drops(&node, 132, 1) >= 2, "counted as invalid source");
}

#[test]
fn ipv6_events_carry_the_ipv6_addresses() {
    let node = node("v6events");
    let mut events = EventReader::open(&node.t.root).unwrap();
    events.set_wanted(true).unwrap();
    events.drain();
    let (front, back, intruder) = (ip6(&FRONTEND), ip6(&BACKEND), ip6(&INTRUDER));
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, TCP, 80, 16, INGRESS),
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp6(intruder, 40101, back, 8080, SYN)),
        TC_ACT_SHOT
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp6(front, 40102, back, 80, SYN)),
        TC_ACT_OK
    );
    let got = events.drain();
    events.set_wanted(false).unwrap();

    let drop = got
        .iter()
        .find(|e| e.kind() == EventKind::Drop)
        .expect("drop event");
    assert_eq!(drop.ipv6, Some((intruder, back)));
    assert_eq!((drop.subtype, u16::from_be(drop.dport)), (133, 8080));
    assert_eq!(drop.src_identity, INTRUDER.identity);
    assert_eq!(drop.src_ip().to_string(), intruder.to_string());
    let verdicts: Vec<_> = got
        .iter()
        .filter(|e| e.kind() == EventKind::PolicyVerdict)
        .collect();
    assert_eq!(verdicts.len(), 2, "{got:?}");
    assert!(verdicts.iter().all(|v| v.ipv6.is_some()));
    let trace = got
        .iter()
        .find(|e| e.kind() == EventKind::Trace)
        .expect("trace of the allowed SYN");
    assert_eq!(trace.ipv6, Some((front, back)));
}

#[test]
fn replies_of_an_allowed_ipv6_flow_pass_by_connection_tracking() {
    let node = node("v6reply");
    let (front, back) = (ip6(&FRONTEND), ip6(&BACKEND));
    node.allow(&FRONTEND, PolicyKey::new(0, 0, 0, 0, EGRESS));
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, TCP, 443, 16, INGRESS),
    );

    let syn = tcp6(front, 40020, back, 443, SYN);
    assert_eq!(node.send(&FRONTEND, &syn), TC_ACT_REDIRECT);
    assert_eq!(node.deliver(&BACKEND, &syn), TC_ACT_OK);
    let syn_ack = tcp6(back, 443, front, 40020, SYN_ACK);
    assert_eq!(node.send(&BACKEND, &syn_ack), TC_ACT_REDIRECT);
    assert_eq!(node.deliver(&FRONTEND, &syn_ack), TC_ACT_OK);
    // The same packet as a new flow is not allowed.
    let unsolicited = tcp6(back, 443, front, 40021, SYN);
    assert_eq!(node.send(&BACKEND, &unsolicited), TC_ACT_SHOT);

    let ct = node.maps.ct.entries6().unwrap();
    let (_, server) = ct
        .iter()
        .find(|(k, _)| k.dir == CT_DIR_INGRESS && k.daddr == back.octets())
        .expect("the server's entry");
    assert_eq!((server.tx_packets, server.rx_packets), (1, 1));
    assert_eq!(server.src_identity, FRONTEND.identity);
    assert!(
        node.maps.ct.entries().unwrap().is_empty(),
        "nothing in the IPv4 table"
    );
}

#[test]
fn icmpv6_echo_follows_icmps_rules_of_family_ipv6() {
    let node = node("v6icmp");
    let (front, back, intruder) = (ip6(&FRONTEND), ip6(&BACKEND), ip6(&INTRUDER));
    // An IPv4 `icmps` rule (protocol 1, EchoRequest 8) allows no ICMPv6.
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, 1, 8, 16, INGRESS),
    );
    assert_eq!(
        node.deliver(&BACKEND, &icmp6(front, back, ECHO_REQUEST, 7)),
        TC_ACT_SHOT
    );
    // `family: IPv6, type: EchoRequest`: protocol 58, type 128.
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, ICMPV6, ECHO_REQUEST as u16, 16, INGRESS),
    );
    assert_eq!(
        node.deliver(&BACKEND, &icmp6(front, back, ECHO_REQUEST, 8)),
        TC_ACT_OK
    );
    assert_eq!(
        node.deliver(&BACKEND, &icmp6(intruder, back, ECHO_REQUEST, 9)),
        TC_ACT_SHOT
    );
    // Other types are other "ports".
    assert_eq!(
        node.deliver(&BACKEND, &icmp6(front, back, 139, 10)),
        TC_ACT_SHOT
    );
    // The reply passes by connection tracking: the backend's egress and the
    // frontend's ingress allow nothing.
    node.allow(&FRONTEND, PolicyKey::new(0, 0, 0, 0, EGRESS));
    assert_eq!(
        node.send(&FRONTEND, &icmp6(front, back, ECHO_REQUEST, 11)),
        TC_ACT_REDIRECT
    );
    assert_eq!(
        node.deliver(&BACKEND, &icmp6(front, back, ECHO_REQUEST, 11)),
        TC_ACT_OK
    );
    let reply = icmp6(back, front, ECHO_REPLY, 11);
    assert_eq!(node.send(&BACKEND, &reply), TC_ACT_REDIRECT);
    assert_eq!(node.deliver(&FRONTEND, &reply), TC_ACT_OK);
    // A reply nobody asked for is a new flow.
    let stray = icmp6(back, front, ECHO_REPLY, 12);
    assert_eq!(node.deliver(&FRONTEND, &stray), TC_ACT_SHOT);
}

#[test]
fn neighbour_discovery_passes_whatever_the_policy() {
    let node = node("v6nd");
    // Deny everything, both ways, on top of default deny.
    for pod in [&FRONTEND, &BACKEND] {
        node.deny(pod, PolicyKey::new(0, 0, 0, 0, INGRESS));
        node.deny(pod, PolicyKey::new(0, 0, 0, 0, EGRESS));
    }
    let (front, back) = (ip6(&FRONTEND), ip6(&BACKEND));
    let solicit = neighbor_solicit(ROUTER6, back);
    assert_eq!(node.deliver(&BACKEND, &solicit), TC_ACT_OK);
    let advert = icmp6(ROUTER6, back, NEIGHBOR_ADVERT, 0);
    assert_eq!(node.deliver(&BACKEND, &advert), TC_ACT_OK);
    // An advertisement from the container goes on to the stack.
    assert_eq!(
        node.send(&FRONTEND, &icmp6(front, ROUTER6, NEIGHBOR_ADVERT, 0)),
        TC_ACT_OK
    );
    // Echo is policy's, and denied.
    assert_eq!(
        node.deliver(&BACKEND, &icmp6(front, back, ECHO_REQUEST, 1)),
        TC_ACT_SHOT
    );
}

#[test]
fn the_gateways_neighbour_solicitation_is_answered_by_the_program() {
    let node = node("v6na");
    let host_mac = [2, 0xee, 0, 0, 0, 11];
    let config = EndpointConfig {
        router_ip6: Some(ROUTER6),
        host_mac,
        ..Default::default()
    };
    let prog = EndpointProgram::load_with(&node.t.root, FRONTEND.id, &config).unwrap();
    let fd = prog.program_fd(FROM_CONTAINER).unwrap();
    let front = ip6(&FRONTEND);

    let out = run(fd, &neighbor_solicit(front, ROUTER6)).unwrap();
    assert_eq!(out.retval, TC_ACT_REDIRECT, "sent back out of the veth");
    let p = &out.packet;
    assert_eq!(p.len(), 14 + 40 + 32);
    assert_eq!(
        &p[0..6],
        &[2, 0, 0, 0, 0, 0xbb],
        "to the soliciting container"
    );
    assert_eq!(&p[6..12], &host_mac);
    assert_eq!(&p[12..14], &[0x86, 0xdd]);
    assert_eq!(p[14] >> 4, 6);
    assert_eq!(u16::from_be_bytes([p[18], p[19]]), 32, "payload length");
    assert_eq!((p[20], p[21]), (ICMPV6, 255), "ICMPv6, hop limit 255");
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&p[22..38]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&p[38..54]).unwrap());
    assert_eq!((src, dst), (ROUTER6, front));
    let na = &p[54..];
    assert_eq!(na[0], NEIGHBOR_ADVERT);
    assert_eq!(na[4], 0x80 | 0x40 | 0x20, "router, solicited, override");
    assert_eq!(&na[8..24], &ROUTER6.octets(), "target");
    assert_eq!(&na[24..26], &[2, 1], "target link-layer address option");
    assert_eq!(&na[26..32], &host_mac);
    assert_eq!(icmp6_checksum(src, dst, na), 0, "checksum");

    // From the unspecified address: to all nodes, not solicited.
    let out = run(fd, &neighbor_solicit(Ipv6Addr::UNSPECIFIED, ROUTER6)).unwrap();
    assert_eq!(out.retval, TC_ACT_REDIRECT);
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    assert_eq!(&out.packet[38..54], &all_nodes.octets());
    assert_eq!(out.packet[58], 0x80 | 0x20);
    assert_eq!(icmp6_checksum(ROUTER6, all_nodes, &out.packet[54..]), 0);

    // Anything else gets no answer: another target (the container's own
    // duplicate address detection), or a solicitation a router forwarded.
    let dad = neighbor_solicit(Ipv6Addr::UNSPECIFIED, front);
    assert_eq!(run(fd, &dad).unwrap().retval, TC_ACT_SHOT);
    let mut forwarded = neighbor_solicit(front, ROUTER6);
    forwarded[21] = 254;
    assert_eq!(run(fd, &forwarded).unwrap().retval, TC_ACT_SHOT);
    // Without a gateway configured, nothing is answered.
    assert_eq!(
        node.send(&FRONTEND, &neighbor_solicit(front, ROUTER6)),
        TC_ACT_SHOT
    );
    assert!(drops(&node, 150, 1) >= 2, "counted as unknown target");
}

/// A packet-too-big from a router on the path, quoting `quoted`'s headers.
fn too_big(router: Ipv6Addr, to: Ipv6Addr, quoted: &[u8]) -> Vec<u8> {
    let body = &quoted[14..quoted.len().min(14 + 40 + 8)];
    packet6(router, to, &[], ICMPV6, &icmp6_l4(PACKET_TOO_BIG, 0, body))
}

#[test]
fn packet_too_big_about_a_tracked_flow_passes_whatever_the_policy() {
    let node = node("v6ptb");
    let front = ip6(&FRONTEND);
    let hop = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe);
    node.allow(
        &FRONTEND,
        PolicyKey::new(WORLD_IPV6_ID, TCP, 443, 16, EGRESS),
    );
    node.deny(&FRONTEND, PolicyKey::new(0, 0, 0, 0, INGRESS));

    let out = tcp6(front, 40100, WORLD6, 443, SYN);
    assert_eq!(node.send(&FRONTEND, &out), TC_ACT_OK);
    assert_eq!(
        node.deliver(&FRONTEND, &too_big(hop, front, &out)),
        TC_ACT_OK
    );

    // About a flow nobody tracks, or quoting someone else's packet: policy
    // decides (and denies).
    let other = tcp6(front, 40101, WORLD6, 443, SYN);
    assert_eq!(
        node.deliver(&FRONTEND, &too_big(hop, front, &other)),
        TC_ACT_SHOT
    );
    let back = ip6(&BACKEND);
    let not_ours = too_big(hop, back, &out);
    assert_eq!(node.deliver(&BACKEND, &not_ours), TC_ACT_SHOT);

    // The other way: the frontend tells a client its packet was too big.
    node.allow(
        &FRONTEND,
        PolicyKey::new(WORLD_IPV6_ID, TCP, 8080, 16, INGRESS),
    );
    let client = tcp6(WORLD6, 40102, front, 8080, SYN);
    assert_eq!(node.deliver(&FRONTEND, &client), TC_ACT_SHOT, "deny wins");
    let node = self::node("v6ptb2");
    node.allow(
        &FRONTEND,
        PolicyKey::new(WORLD_IPV6_ID, TCP, 8080, 16, INGRESS),
    );
    assert_eq!(node.deliver(&FRONTEND, &client), TC_ACT_OK);
    assert_eq!(
        node.send(&FRONTEND, &too_big(front, WORLD6, &client)),
        TC_ACT_OK
    );
    let stray = tcp6(WORLD6, 40103, front, 8080, SYN);
    assert_eq!(
        node.send(&FRONTEND, &too_big(front, WORLD6, &stray)),
        TC_ACT_SHOT
    );
}

#[test]
fn extension_headers_are_walked_and_long_chains_dropped() {
    let node = node("v6ext");
    let (front, back) = (ip6(&FRONTEND), ip6(&BACKEND));
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, TCP, 80, 16, INGRESS),
    );
    let chain = [
        Ext::Opts(NEXTHDR_HOP, 0),
        Ext::Opts(NEXTHDR_DEST, 2),
        Ext::Opts(NEXTHDR_ROUTING, 1),
        Ext::Auth(4),
    ];
    let to =
        |exts: &[Ext], sport, dport| packet6(front, back, exts, TCP, &tcp_l4(sport, dport, SYN));
    assert_eq!(node.deliver(&BACKEND, &to(&chain, 40200, 80)), TC_ACT_OK);
    assert_eq!(node.deliver(&BACKEND, &to(&chain, 40201, 22)), TC_ACT_SHOT);
    let mut five = chain.to_vec();
    five.push(Ext::Opts(NEXTHDR_DEST, 0));
    assert_eq!(node.deliver(&BACKEND, &to(&five, 40202, 80)), TC_ACT_SHOT);
    assert_eq!(drops(&node, 156, 0), 1, "invalid extension header");
    let none = packet6(
        front,
        back,
        &[Ext::Opts(NEXTHDR_HOP, 0), Ext::None],
        TCP,
        &[],
    );
    assert_eq!(node.deliver(&BACKEND, &none), TC_ACT_SHOT);
    assert_eq!(drops(&node, 156, 0), 2);
    // A protocol without ports matches L3 rules only.
    let esp = packet6(front, back, &[], 50, &[0u8; 16]);
    assert_eq!(node.deliver(&BACKEND, &esp), TC_ACT_SHOT);
    node.allow(
        &BACKEND,
        PolicyKey::new(INTRUDER.identity, 0, 0, 0, INGRESS),
    );
    let esp = packet6(ip6(&INTRUDER), back, &[], 50, &[0u8; 16]);
    assert_eq!(node.deliver(&BACKEND, &esp), TC_ACT_OK);
    // A truncated L4 header is not a flow.
    let cut = packet6(front, back, &chain, TCP, &tcp_l4(40203, 80, SYN)[..12]);
    assert_eq!(node.deliver(&BACKEND, &cut), TC_ACT_SHOT);
}

#[test]
fn later_fragments_are_decided_on_their_first_fragment() {
    let node = node("v6frag");
    let (front, back) = (ip6(&FRONTEND), ip6(&BACKEND));
    node.allow(&BACKEND, PolicyKey::new(0, 0, 0, 0, INGRESS));
    node.deny(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, UDP, 22, 16, INGRESS),
    );
    let frag = |offset, more, id| Ext::Frag { offset, more, id };
    let udp = |exts: &[Ext], dport| packet6(front, back, exts, UDP, &udp_l4(40300, dport));
    let later = |id| packet6(front, back, &[frag(1, false, id)], UDP, &[0u8; 64]);

    // Allowed: the first fragment, then the rest of its datagram.
    assert_eq!(
        node.deliver(&BACKEND, &udp(&[frag(0, true, 1)], 53)),
        TC_ACT_OK
    );
    assert_eq!(node.deliver(&BACKEND, &later(1)), TC_ACT_OK);
    // Denied: the first fragment, and the rest never get past the deny.
    assert_eq!(
        node.deliver(&BACKEND, &udp(&[frag(0, true, 2)], 22)),
        TC_ACT_SHOT
    );
    assert_eq!(node.deliver(&BACKEND, &later(2)), TC_ACT_SHOT);
    // A later fragment whose first was never seen: dropped, counted.
    assert_eq!(node.deliver(&BACKEND, &later(3)), TC_ACT_SHOT);
    assert_eq!(drops(&node, 175, 0), 2, "first fragment not found");
    // Under extension headers on either side of the fragment header.
    let first = [
        Ext::Opts(NEXTHDR_HOP, 0),
        frag(0, true, 4),
        Ext::Opts(NEXTHDR_DEST, 1),
    ];
    assert_eq!(node.deliver(&BACKEND, &udp(&first, 22)), TC_ACT_SHOT);
    let first = [
        Ext::Opts(NEXTHDR_HOP, 0),
        frag(0, true, 5),
        Ext::Opts(NEXTHDR_DEST, 1),
    ];
    assert_eq!(node.deliver(&BACKEND, &udp(&first, 53)), TC_ACT_OK);
    let rest = |id| {
        let exts = [Ext::Opts(NEXTHDR_HOP, 0), frag(2, false, id)];
        // The fragment header names what starts the fragmentable part.
        packet6(front, back, &exts, NEXTHDR_DEST, &[0u8; 32])
    };
    assert_eq!(node.deliver(&BACKEND, &rest(4)), TC_ACT_SHOT);
    assert_eq!(node.deliver(&BACKEND, &rest(5)), TC_ACT_OK);
    // Two fragment headers make no datagram.
    let twice = udp(&[frag(0, true, 6), frag(0, true, 6)], 53);
    assert_eq!(node.deliver(&BACKEND, &twice), TC_ACT_SHOT);
}

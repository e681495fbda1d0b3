//! Datapath unit tests: the endpoint programs run in the kernel on crafted
//! packets with BPF_PROG_TEST_RUN. Needs root and bpffs.

mod support;

use std::net::Ipv4Addr;

use datapath::{
    endpoint::{EndpointProgram, FROM_CONTAINER, LXC_POLICY, TO_CONTAINER},
    events::EventKind,
    maps::{ct::CT_DIR_EGRESS, CtEntry, CtKey, PolicyKey},
    test_run::{run, run_tail_called, run_with_mark, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
    EventReader, SharedMaps,
};
use support::*;

#[test]
fn allowed_peer_and_port_pass_others_are_dropped() {
    let node = Node::new("allow");
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, TCP, 80, 16, INGRESS),
    );

    let ok = tcp(FRONTEND.ip, 40001, BACKEND.ip, 80, SYN);
    assert_eq!(node.deliver(&BACKEND, &ok), TC_ACT_OK);

    let wrong_port = tcp(FRONTEND.ip, 40002, BACKEND.ip, 81, SYN);
    assert_eq!(node.deliver(&BACKEND, &wrong_port), TC_ACT_SHOT);

    let wrong_peer = tcp(INTRUDER.ip, 40003, BACKEND.ip, 80, SYN);
    assert_eq!(node.deliver(&BACKEND, &wrong_peer), TC_ACT_SHOT);

    let wrong_proto = udp(FRONTEND.ip, 40004, BACKEND.ip, 80);
    assert_eq!(node.deliver(&BACKEND, &wrong_proto), TC_ACT_SHOT);
}

#[test]
fn egress_policy_gates_local_delivery() {
    let node = Node::new("egress");
    let to_backend = tcp(FRONTEND.ip, 40010, BACKEND.ip, 80, SYN);
    assert_eq!(node.send(&FRONTEND, &to_backend), TC_ACT_SHOT);

    node.allow(
        &FRONTEND,
        PolicyKey::new(BACKEND.identity, TCP, 80, 16, EGRESS),
    );
    let to_backend = tcp(FRONTEND.ip, 40011, BACKEND.ip, 80, SYN);
    assert_eq!(node.send(&FRONTEND, &to_backend), TC_ACT_REDIRECT);
}

#[test]
fn replies_of_an_allowed_flow_skip_policy() {
    let node = Node::new("reply");
    node.allow(&FRONTEND, PolicyKey::new(0, 0, 0, 0, EGRESS));
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, TCP, 80, 16, INGRESS),
    );

    let syn = tcp(FRONTEND.ip, 40020, BACKEND.ip, 80, SYN);
    assert_eq!(node.send(&FRONTEND, &syn), TC_ACT_REDIRECT);
    assert_eq!(node.deliver(&BACKEND, &syn), TC_ACT_OK);

    // Neither the backend's egress nor the frontend's ingress allows
    // anything: only connection tracking lets the reply through.
    let syn_ack = tcp(BACKEND.ip, 80, FRONTEND.ip, 40020, SYN_ACK);
    assert_eq!(node.send(&BACKEND, &syn_ack), TC_ACT_REDIRECT);
    assert_eq!(node.deliver(&FRONTEND, &syn_ack), TC_ACT_OK);

    // The same packet as a new flow is not allowed.
    let unsolicited = tcp(BACKEND.ip, 80, FRONTEND.ip, 40021, SYN);
    assert_eq!(node.send(&BACKEND, &unsolicited), TC_ACT_SHOT);

    let ct = node.maps.ct.entries().unwrap();
    assert!(ct
        .iter()
        .any(|(k, e)| k.sport == 40020u16.to_be() && e.rx_packets == 1));
}

#[test]
fn connection_tracking_finds_replies_whichever_side_has_the_lower_port() {
    let node = Node::new("ports");
    node.allow(&FRONTEND, PolicyKey::new(0, 0, 0, 0, EGRESS));
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, 0, 0, 0, INGRESS),
    );
    // Servers on a high port (dialled from a low one) and on a low port.
    for (client_port, server_port) in [(700u16, 40030u16), (40031, 443)] {
        let flow = |flags| tcp(FRONTEND.ip, client_port, BACKEND.ip, server_port, flags);
        let back = |flags| tcp(BACKEND.ip, server_port, FRONTEND.ip, client_port, flags);
        assert_eq!(node.send(&FRONTEND, &flow(SYN)), TC_ACT_REDIRECT);
        assert_eq!(node.deliver(&BACKEND, &flow(SYN)), TC_ACT_OK);
        // Neither the backend's egress nor the frontend's ingress allows
        // anything: every later packet passes as part of the connection.
        for flags in [SYN_ACK, ACK, FIN_ACK] {
            assert_eq!(node.send(&BACKEND, &back(flags)), TC_ACT_REDIRECT);
            assert_eq!(node.deliver(&FRONTEND, &back(flags)), TC_ACT_OK);
            assert_eq!(node.send(&FRONTEND, &flow(ACK)), TC_ACT_REDIRECT);
            assert_eq!(node.deliver(&BACKEND, &flow(ACK)), TC_ACT_OK);
        }
        // A SYN the other way opens a new flow, which policy denies.
        assert_eq!(node.send(&BACKEND, &back(SYN)), TC_ACT_SHOT);
    }
    let ct = node.maps.ct.entries().unwrap();
    for port in [700u16, 40031] {
        let (_, e) = ct
            .iter()
            .find(|(k, _)| k.sport == port.to_be() && k.dir == CT_DIR_EGRESS)
            .expect("the client's entry");
        assert_eq!((e.tx_packets, e.rx_packets), (4, 3), "client port {port}");
    }
}

#[test]
fn l3_only_allow_covers_every_port_and_protocol() {
    let node = Node::new("l3");
    node.allow(
        &BACKEND,
        PolicyKey::new(INTRUDER.identity, 0, 0, 0, INGRESS),
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp(INTRUDER.ip, 40030, BACKEND.ip, 22, SYN)),
        TC_ACT_OK
    );
    assert_eq!(
        node.deliver(&BACKEND, &udp(INTRUDER.ip, 40031, BACKEND.ip, 53)),
        TC_ACT_OK
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp(FRONTEND.ip, 40032, BACKEND.ip, 22, SYN)),
        TC_ACT_SHOT
    );
}

#[test]
fn port_wildcard_covers_every_port_of_its_protocol() {
    let node = Node::new("anyport");
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, TCP, 0, 0, INGRESS),
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp(FRONTEND.ip, 40040, BACKEND.ip, 8080, SYN)),
        TC_ACT_OK
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp(FRONTEND.ip, 40041, BACKEND.ip, 22, SYN)),
        TC_ACT_OK
    );
    assert_eq!(
        node.deliver(&BACKEND, &udp(FRONTEND.ip, 40042, BACKEND.ip, 53)),
        TC_ACT_SHOT
    );
}

#[test]
fn deny_wins_over_allow() {
    let node = Node::new("deny");
    node.allow(&BACKEND, PolicyKey::new(0, 0, 0, 0, INGRESS));
    node.deny(
        &BACKEND,
        PolicyKey::new(INTRUDER.identity, TCP, 80, 16, INGRESS),
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp(INTRUDER.ip, 40050, BACKEND.ip, 80, SYN)),
        TC_ACT_SHOT
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp(INTRUDER.ip, 40051, BACKEND.ip, 81, SYN)),
        TC_ACT_OK
    );
}

#[test]
fn spoofed_source_is_dropped() {
    let node = Node::new("spoof");
    node.allow(&FRONTEND, PolicyKey::new(0, 0, 0, 0, EGRESS));
    let spoofed = tcp(Ipv4Addr::new(10, 9, 0, 99), 40060, BACKEND.ip, 80, SYN);
    assert_eq!(node.send(&FRONTEND, &spoofed), TC_ACT_SHOT);
    // Another local endpoint's address is spoofing too.
    let as_backend = tcp(BACKEND.ip, 40061, INTRUDER.ip, 80, SYN);
    assert_eq!(node.send(&FRONTEND, &as_backend), TC_ACT_SHOT);
}

#[test]
fn drops_and_verdicts_are_reported_and_counted() {
    let node = Node::new("events");
    let mut events = EventReader::open(&node.t.root).unwrap();
    events.drain();

    // Nobody listening: the drop happens, its event is not even built.
    events.set_wanted(false).unwrap();
    let unheard = tcp(INTRUDER.ip, 40069, BACKEND.ip, 80, SYN);
    assert_eq!(node.deliver(&BACKEND, &unheard), TC_ACT_SHOT);
    assert!(
        events.drain().is_empty(),
        "events built with nobody listening"
    );

    events.set_wanted(true).unwrap();
    let denied = tcp(INTRUDER.ip, 40070, BACKEND.ip, 80, SYN);
    assert_eq!(node.deliver(&BACKEND, &denied), TC_ACT_SHOT);

    let got = events.drain();
    let verdict = got
        .iter()
        .find(|e| e.kind() == EventKind::PolicyVerdict)
        .expect("verdict event");
    assert_eq!(verdict.verdict, 0);
    let drop = got
        .iter()
        .find(|e| e.kind() == EventKind::Drop)
        .expect("drop event");
    assert_eq!(drop.subtype, 133, "Policy denied");
    assert_eq!(drop.ep_id, BACKEND.id);
    assert_eq!(drop.src_identity, INTRUDER.identity);
    assert_eq!(drop.dst_identity, BACKEND.identity);
    assert_eq!(u16::from_be(drop.dport), 80);

    let metrics = node.maps.metrics.totals().unwrap();
    let policy_drops = metrics
        .iter()
        .find(|(k, _)| k.reason == 133 && k.dir == 0)
        .unwrap();
    assert!(policy_drops.1.packets >= 1);
}

#[test]
fn port_ranges_are_port_prefixes() {
    let node = Node::new("range");
    // 8000-8003: one block of four ports.
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, TCP, 8000, 14, INGRESS),
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp(FRONTEND.ip, 40080, BACKEND.ip, 8000, SYN)),
        TC_ACT_OK
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp(FRONTEND.ip, 40081, BACKEND.ip, 8003, SYN)),
        TC_ACT_OK
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp(FRONTEND.ip, 40082, BACKEND.ip, 8004, SYN)),
        TC_ACT_SHOT
    );
    assert_eq!(
        node.deliver(&BACKEND, &tcp(FRONTEND.ip, 40083, BACKEND.ip, 7999, SYN)),
        TC_ACT_SHOT
    );
}

#[test]
fn wildcard_identity_deny_beats_a_specific_allow() {
    let node = Node::new("anydeny");
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, TCP, 80, 16, INGRESS),
    );
    node.deny(&BACKEND, PolicyKey::new(0, TCP, 0, 0, INGRESS));
    assert_eq!(
        node.deliver(&BACKEND, &tcp(FRONTEND.ip, 40090, BACKEND.ip, 80, SYN)),
        TC_ACT_SHOT
    );
    assert_eq!(
        node.deliver(&BACKEND, &udp(FRONTEND.ip, 40091, BACKEND.ip, 80)),
        TC_ACT_SHOT
    );
}

#[test]
fn identity_from_the_overlay_wins_over_the_source_address() {
    let node = Node::new("vni");
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, TCP, 80, 16, INGRESS),
    );
    let fd = node.prog(&BACKEND).program_fd(TO_CONTAINER).unwrap();
    // A remote pod's address unknown to the ipcache: only the VNI names it.
    let remote = tcp(Ipv4Addr::new(10, 77, 0, 5), 40100, BACKEND.ip, 80, SYN);
    assert_eq!(
        run(fd, &remote).unwrap().retval,
        TC_ACT_SHOT,
        "world is not allowed"
    );
    let as_frontend = run_with_mark(fd, &remote, identity_mark(FRONTEND.identity)).unwrap();
    assert_eq!(as_frontend.retval, TC_ACT_OK);
    // The frontend's own address with the intruder's identity is the intruder.
    let spoofed = tcp(FRONTEND.ip, 40101, BACKEND.ip, 80, SYN);
    let as_intruder = run_with_mark(fd, &spoofed, identity_mark(INTRUDER.identity)).unwrap();
    assert_eq!(as_intruder.retval, TC_ACT_SHOT);
}

#[test]
fn the_overlays_tail_call_enforces_the_same_policy_and_hands_over_to_the_peer() {
    let node = Node::new("tail");
    node.allow(
        &BACKEND,
        PolicyKey::new(FRONTEND.identity, TCP, 80, 16, INGRESS),
    );
    let fd = node.prog(&BACKEND).program_fd(LXC_POLICY).unwrap();
    let veth = 1; // cb[0]: the endpoint's host-side ifindex
    let remote = tcp(Ipv4Addr::new(10, 77, 0, 6), 40200, BACKEND.ip, 80, SYN);
    let allowed = run_tail_called(fd, &remote, identity_mark(FRONTEND.identity), veth).unwrap();
    assert_eq!(allowed.retval, TC_ACT_REDIRECT, "bpf_redirect_peer");
    let intruder = tcp(Ipv4Addr::new(10, 77, 0, 7), 40200, BACKEND.ip, 80, SYN);
    let denied = run_tail_called(fd, &intruder, identity_mark(INTRUDER.identity), veth).unwrap();
    assert_eq!(denied.retval, TC_ACT_SHOT);
    let other_port = tcp(Ipv4Addr::new(10, 77, 0, 6), 40201, BACKEND.ip, 81, SYN);
    let denied = run_tail_called(fd, &other_port, identity_mark(FRONTEND.identity), veth);
    assert_eq!(denied.unwrap().retval, TC_ACT_SHOT);
}

#[test]
fn remote_destinations_are_encapsulated_only_with_an_overlay() {
    let mut node = Node::new("encap");
    let remote_pod = Ipv4Addr::new(10, 77, 1, 9);
    let remote_node = Ipv4Addr::new(192, 0, 2, 77);
    node.maps
        .ipcache
        .upsert(remote_pod, 32, 2000, remote_node)
        .unwrap();
    node.allow(&FRONTEND, PolicyKey::new(0, 0, 0, 0, EGRESS));
    let packet = tcp(FRONTEND.ip, 40110, remote_pod, 80, SYN);
    assert_eq!(
        node.send(&FRONTEND, &packet),
        TC_ACT_OK,
        "no overlay: to the stack"
    );

    let with_overlay = EndpointProgram::load(&node.t.root, FRONTEND.id, 1).unwrap();
    let fd = with_overlay.program_fd(FROM_CONTAINER).unwrap();
    let packet = tcp(FRONTEND.ip, 40111, remote_pod, 80, SYN);
    assert_eq!(
        run(fd, &packet).unwrap().retval,
        TC_ACT_REDIRECT,
        "into the tunnel"
    );
}

#[test]
fn conntrack_is_read_whole_and_swept_of_expired_entries() {
    let t = TestRoot::new("ctgc");
    let mut maps = SharedMaps::open_or_create(&t.root).unwrap();
    let pinned = aya::maps::MapData::from_pin(t.root.map(datapath::maps::CT_MAP)).unwrap();
    let mut raw: aya::maps::HashMap<_, CtKey, CtEntry> =
        aya::maps::HashMap::try_from(aya::maps::Map::LruHashMap(pinned)).unwrap();
    // More entries than one batch reads, every other one expired.
    let now = datapath::maps::ct::monotonic_secs();
    for i in 0..10_000u32 {
        let key = CtKey {
            saddr: [10, 9, 1, (i % 250) as u8],
            daddr: [10, 9, 0, 12],
            sport: (i as u16).to_be(),
            dport: 80u16.to_be(),
            protocol: TCP,
            dir: CT_DIR_EGRESS,
            pad: 0,
        };
        let entry = CtEntry {
            expires: if i % 2 == 0 { 0 } else { now + 600 },
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: i as u64,
            tx_bytes: 0,
            src_identity: 1000,
            flags: 0,
            rev_nat_index: 0,
            backend_id: 0,
            proxy_port: 0,
            pad: 0,
        };
        raw.insert(key, entry, 0).unwrap();
    }
    let all = maps.ct.entries().unwrap();
    assert_eq!(all.len(), 10_000);
    let walked: std::collections::HashMap<_, _> = raw
        .iter()
        .map(|r| r.unwrap())
        .map(|(k, e)| (k, e.tx_packets))
        .collect();
    assert!(all
        .iter()
        .all(|(k, e)| walked.get(k) == Some(&e.tx_packets)));
    assert_eq!(maps.ct.gc().unwrap(), 5_000);
    let left = maps.ct.entries().unwrap();
    assert_eq!(left.len(), 5_000);
    assert!(left.iter().all(|(_, e)| e.tx_packets % 2 == 1));
}

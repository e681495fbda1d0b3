//! NodePort in bpf_host and bpf_lxc on crafted packets (BPF_PROG_TEST_RUN):
//! a client outside the cluster dials the node's address; a local backend
//! gets the flow through its policy and answers from the service's address;
//! another node's backend gets it from the node's address through the
//! tunnel, and its answer goes back to the client translated both ways
//! (TCP and UDP). ClusterIPs are not served to the outside. The same over
//! IPv6 (the node's IPv6 address, an IPv6 external IP). Needs root and
//! bpffs.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use datapath::{
    endpoint::FROM_CONTAINER,
    host::{HostProgram, Overlay},
    maps::{
        lb::{Frontend, ServiceEntry, SVC_FLAG_EXTERNAL_IP, SVC_FLAG_NODEPORT},
        PolicyKey,
    },
    test_run::{run, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
};
use support::v6::*;
use support::*;

const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const PEER_NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const REMOTE_POD: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 5);
const NODE_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 10);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 7);
const EXTERNAL_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xe, 0, 0, 0, 0, 1);
const REMOTE_POD6: Ipv6Addr = Ipv6Addr::new(0xfd00, 77, 1, 0, 0, 0, 0, 5);
const NODE_PORT: u16 = 30080;
const WORLD_ID: u32 = 2;
const WORLD_IPV6_ID: u32 = 10;
const OVERLAY: Overlay = Overlay {
    port: 8472,
    ifindex: 1,
};

/// A dual-stack node whose `frontend`:NODE_PORT (of `flags`) balances over
/// `backend`; REMOTE_POD and REMOTE_POD6 live on PEER_NODE.
fn node(name: &str, flags: u8, frontend: IpAddr, backend: (IpAddr, u16)) -> (Node, HostProgram) {
    let mut node = Node::new(name);
    dual_stack(&mut node);
    for prog in &mut node.progs {
        prog.install_policy_call().unwrap();
    }
    node.maps
        .ipcache
        .upsert(REMOTE_POD, 32, 5000, PEER_NODE)
        .unwrap();
    node.maps
        .ipcache6
        .upsert(REMOTE_POD6, 128, 5000, PEER_NODE)
        .unwrap();
    for (id, proto) in [(1, TCP), (2, UDP)] {
        node.maps
            .lb
            .upsert_backend(id, backend.0, backend.1, proto)
            .unwrap();
        let service = ServiceEntry {
            frontend: Frontend {
                address: frontend,
                port: NODE_PORT,
                proto,
            },
            rev_nat_index: 6 + id as u16,
            flags,
            slots: vec![id],
        };
        node.maps.lb.upsert_service(&service, 0).unwrap();
    }
    let host =
        HostProgram::load_dual_stack(&node.t.root, NODE_IP, Some(NODE_IP6), Some(OVERLAY)).unwrap();
    (node, host)
}

/// Runs the rest of the calling test in a network namespace of its own
/// where IPv6 is forwarded and every address is routed (through lo): the
/// FIB lookups that send answers on need both, and the machine's own
/// namespace may have neither. Only this thread moves.
fn ipv6_forwarding_namespace() {
    // SAFETY: unshare has no memory-safety preconditions; it moves only
    // the calling thread.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare");
    // /proc/sys/net is the calling thread's namespace's.
    std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
        .expect("IPv6 forwarding on in the test's namespace");
    for args in [
        &["link", "set", "lo", "up"][..],
        &["-6", "route", "add", "::/0", "dev", "lo"],
    ] {
        let status = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "ip {args:?}");
    }
}

#[test]
fn a_local_backend_gets_the_client_through_its_policy_and_answers_from_the_node_port() {
    let (node, host) = node(
        "local",
        SVC_FLAG_NODEPORT,
        NODE_IP.into(),
        (BACKEND.ip.into(), 80),
    );
    node.allow(&BACKEND, PolicyKey::new(WORLD_ID, TCP, 80, 16, INGRESS));
    let fd = host.program_fd().unwrap();

    let syn = checked_packet(TCP, CLIENT, 40400, NODE_IP, NODE_PORT, SYN);
    let out = run(fd, &syn).unwrap();
    assert_eq!(out.retval, TC_ACT_REDIRECT, "into the backend's container");
    let seen = inspect(&out);
    assert_eq!(
        (seen.src, seen.sport),
        (CLIENT, 40400),
        "the client as it is"
    );
    assert_eq!((seen.dst, seen.dport), (BACKEND.ip, 80));

    let from_backend = node.prog(&BACKEND).program_fd(FROM_CONTAINER).unwrap();
    let answer = checked_packet(TCP, BACKEND.ip, 80, CLIENT, 40400, SYN_ACK);
    let out = run(from_backend, &answer).unwrap();
    assert_eq!(
        out.retval, TC_ACT_REDIRECT,
        "not to the stack, which would refuse it"
    );
    let seen = inspect(&out);
    assert_eq!(
        (seen.src, seen.sport),
        (NODE_IP, NODE_PORT),
        "from the NodePort"
    );
    assert_eq!((seen.dst, seen.dport), (CLIENT, 40400));

    // The same backend's policy still holds for NodePort clients.
    node.deny(&BACKEND, PolicyKey::new(WORLD_ID, TCP, 80, 16, INGRESS));
    let other = checked_packet(TCP, CLIENT, 40401, NODE_IP, NODE_PORT, SYN);
    assert_eq!(
        run(fd, &other).unwrap().retval,
        TC_ACT_SHOT,
        "denied by policy"
    );
}

#[test]
fn another_nodes_backend_gets_the_flow_from_this_node_and_its_answer_is_translated_back() {
    let (_node, host) = node(
        "remote",
        SVC_FLAG_NODEPORT,
        NODE_IP.into(),
        (REMOTE_POD.into(), 8080),
    );
    let fd = host.program_fd().unwrap();

    let syn = checked_packet(TCP, CLIENT, 40410, NODE_IP, NODE_PORT, SYN);
    let out = run(fd, &syn).unwrap();
    assert_eq!(out.retval, TC_ACT_REDIRECT, "into the tunnel");
    let forwarded = inspect(&out);
    assert_eq!(forwarded.src, NODE_IP, "from the node's address");
    assert!(
        forwarded.sport >= 61000,
        "port {} from the NAT range",
        forwarded.sport
    );
    assert_eq!((forwarded.dst, forwarded.dport), (REMOTE_POD, 8080));

    let ack = checked_packet(TCP, CLIENT, 40410, NODE_IP, NODE_PORT, ACK);
    let again = inspect(&run(fd, &ack).unwrap());
    assert_eq!(
        again.sport, forwarded.sport,
        "every packet of the flow gets the same port"
    );
    let other = checked_packet(TCP, CLIENT, 40411, NODE_IP, NODE_PORT, SYN);
    assert_ne!(
        inspect(&run(fd, &other).unwrap()).sport,
        forwarded.sport,
        "another flow, another port"
    );

    let answer = checked_packet(TCP, REMOTE_POD, 8080, NODE_IP, forwarded.sport, SYN_ACK);
    let out = run(fd, &answer).unwrap();
    assert_eq!(
        out.retval, TC_ACT_REDIRECT,
        "straight back out, not to the stack"
    );
    let back = inspect(&out);
    assert_eq!(
        (back.src, back.sport),
        (NODE_IP, NODE_PORT),
        "from the NodePort"
    );
    assert_eq!((back.dst, back.dport), (CLIENT, 40410), "to the client");

    let stranger = checked_packet(TCP, REMOTE_POD, 8080, NODE_IP, 61000, SYN_ACK);
    let out = run(fd, &stranger).unwrap();
    assert_eq!(
        (out.retval, out.packet),
        (TC_ACT_OK, stranger),
        "no NAT entry: the stack's business"
    );
}

#[test]
fn udp_to_another_nodes_backend_is_translated_both_ways() {
    let (_node, host) = node(
        "remote-udp",
        SVC_FLAG_NODEPORT,
        NODE_IP.into(),
        (REMOTE_POD.into(), 8080),
    );
    let fd = host.program_fd().unwrap();
    let query = checked_packet(UDP, CLIENT, 40430, NODE_IP, NODE_PORT, 0);
    let out = run(fd, &query).unwrap();
    assert_eq!(out.retval, TC_ACT_REDIRECT, "into the tunnel");
    let forwarded = inspect(&out);
    assert_eq!(forwarded.src, NODE_IP);
    assert_eq!((forwarded.dst, forwarded.dport), (REMOTE_POD, 8080));

    let answer = checked_packet(UDP, REMOTE_POD, 8080, NODE_IP, forwarded.sport, 0);
    let out = run(fd, &answer).unwrap();
    assert_eq!(out.retval, TC_ACT_REDIRECT, "straight back out");
    let back = inspect(&out);
    assert_eq!((back.src, back.sport), (NODE_IP, NODE_PORT));
    assert_eq!((back.dst, back.dport), (CLIENT, 40430));
}

#[test]
fn a_cluster_ip_is_not_served_to_clients_outside() {
    let (_node, host) = node("clusterip", 0, NODE_IP.into(), (BACKEND.ip.into(), 80));
    let syn = checked_packet(TCP, CLIENT, 40420, NODE_IP, NODE_PORT, SYN);
    let out = run(host.program_fd().unwrap(), &syn).unwrap();
    assert_eq!((out.retval, out.packet), (TC_ACT_OK, syn));
}

#[test]
fn ipv6_a_local_backend_gets_the_client_through_its_policy_and_answers_from_the_node_port() {
    ipv6_forwarding_namespace();
    let backend = ip6(&BACKEND);
    let (node, host) = node(
        "local6",
        SVC_FLAG_NODEPORT,
        NODE_IP6.into(),
        (backend.into(), 80),
    );
    node.allow(
        &BACKEND,
        PolicyKey::new(WORLD_IPV6_ID, TCP, 80, 16, INGRESS),
    );
    let fd = host.program_fd().unwrap();

    let syn = checked6(TCP, CLIENT6, 40400, NODE_IP6, NODE_PORT, SYN);
    let out = run(fd, &syn).unwrap();
    assert_eq!(out.retval, TC_ACT_REDIRECT, "into the backend's container");
    assert_eq!(
        inspect6(&out),
        (CLIENT6, 40400, backend, 80),
        "the client as it is, to the backend"
    );

    let from_backend = node.prog(&BACKEND).program_fd(FROM_CONTAINER).unwrap();
    let answer = checked6(TCP, backend, 80, CLIENT6, 40400, SYN_ACK);
    let out = run(from_backend, &answer).unwrap();
    assert_eq!(out.retval, TC_ACT_REDIRECT, "routed out, not to the stack");
    assert_eq!(
        inspect6(&out),
        (NODE_IP6, NODE_PORT, CLIENT6, 40400),
        "from the NodePort"
    );

    node.deny(
        &BACKEND,
        PolicyKey::new(WORLD_IPV6_ID, TCP, 80, 16, INGRESS),
    );
    let other = checked6(TCP, CLIENT6, 40401, NODE_IP6, NODE_PORT, SYN);
    assert_eq!(
        run(fd, &other).unwrap().retval,
        TC_ACT_SHOT,
        "denied by policy"
    );
}

/// An IPv6 NodePort and an IPv6 external IP, TCP and UDP, to another node's
/// backend: from the node's IPv6 address and a NAT port, the same port for
/// the flow's later packets, and the answer back from the frontend.
#[test]
fn ipv6_another_nodes_backend_gets_the_flow_from_this_node_and_its_answer_is_translated_back() {
    ipv6_forwarding_namespace();
    let cases = [
        ("remote6-np", SVC_FLAG_NODEPORT, NODE_IP6),
        ("remote6-ext", SVC_FLAG_EXTERNAL_IP, EXTERNAL_IP6),
    ];
    for (name, flags, frontend) in cases {
        let (_node, host) = node(name, flags, frontend.into(), (REMOTE_POD6.into(), 8080));
        let fd = host.program_fd().unwrap();
        for (proto, flags, sport) in [(TCP, SYN, 40410), (UDP, 0, 40430)] {
            let first = checked6(proto, CLIENT6, sport, frontend, NODE_PORT, flags);
            let out = run(fd, &first).unwrap();
            assert_eq!(out.retval, TC_ACT_REDIRECT, "{name}: into the tunnel");
            let (src, nat_port, dst, dport) = inspect6(&out);
            assert_eq!(src, NODE_IP6, "{name}: from the node's IPv6 address");
            assert!(
                nat_port >= 61000,
                "{name}: port {nat_port} from the NAT range"
            );
            assert_eq!((dst, dport), (REMOTE_POD6, 8080));

            let next = checked6(proto, CLIENT6, sport, frontend, NODE_PORT, ACK);
            assert_eq!(
                inspect6(&run(fd, &next).unwrap()).1,
                nat_port,
                "{name}: every packet of the flow gets the same port"
            );

            let answer = checked6(proto, REMOTE_POD6, 8080, NODE_IP6, nat_port, SYN_ACK);
            let out = run(fd, &answer).unwrap();
            assert_eq!(out.retval, TC_ACT_REDIRECT, "{name}: straight back out");
            assert_eq!(
                inspect6(&out),
                (frontend, NODE_PORT, CLIENT6, sport),
                "{name}: from the frontend to the client"
            );
        }
        let stranger = checked6(TCP, REMOTE_POD6, 8080, NODE_IP6, 61000, SYN_ACK);
        let out = run(fd, &stranger).unwrap();
        assert_eq!(
            (out.retval, out.packet),
            (TC_ACT_OK, stranger),
            "no NAT entry: the stack's business"
        );
    }
}

#[test]
fn ipv6_a_cluster_ip_is_not_served_to_clients_outside() {
    let backend = ip6(&BACKEND);
    let (_node, host) = node("clusterip6", 0, NODE_IP6.into(), (backend.into(), 80));
    let syn = checked6(TCP, CLIENT6, 40420, NODE_IP6, NODE_PORT, SYN);
    let out = run(host.program_fd().unwrap(), &syn).unwrap();
    assert_eq!((out.retval, out.packet), (TC_ACT_OK, syn));
}

//! NodePort in bpf_host and bpf_lxc on crafted packets (BPF_PROG_TEST_RUN):
//! a client outside the cluster dials the node's address; a local backend
//! gets the flow through its policy and answers from the service's address;
//! another node's backend gets it from the node's address through the
//! tunnel, and its answer goes back to the client translated both ways
//! (TCP and UDP). ClusterIPs are not served to the outside. Needs root and bpffs.

mod support;

use std::net::Ipv4Addr;

use datapath::{
    endpoint::FROM_CONTAINER,
    host::{HostProgram, Overlay},
    maps::{
        lb::{Frontend, ServiceEntry, SVC_FLAG_NODEPORT},
        PolicyKey,
    },
    test_run::{run, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
};
use support::*;

const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const PEER_NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const REMOTE_POD: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 5);
const NODE_PORT: u16 = 30080;
const WORLD_ID: u32 = 2;
const OVERLAY: Overlay = Overlay {
    port: 8472,
    ifindex: 1,
};

/// A node whose NODE_IP:NODE_PORT (of `flags`) balances over `backend`.
fn node(name: &str, flags: u8, backend: (Ipv4Addr, u16)) -> (Node, HostProgram) {
    let mut node = Node::new(name);
    for prog in &mut node.progs {
        prog.install_policy_call().unwrap();
    }
    node.maps
        .ipcache
        .upsert(REMOTE_POD, 32, 5000, PEER_NODE)
        .unwrap();
    for (id, proto) in [(1, TCP), (2, UDP)] {
        node.maps
            .lb
            .upsert_backend(id, backend.0.into(), backend.1, proto)
            .unwrap();
        let service = ServiceEntry {
            frontend: Frontend {
                address: NODE_IP.into(),
                port: NODE_PORT,
                proto,
            },
            rev_nat_index: 6 + id as u16,
            flags,
            slots: vec![id],
        };
        node.maps.lb.upsert_service(&service, 0).unwrap();
    }
    let host = HostProgram::load(&node.t.root, NODE_IP, Some(OVERLAY)).unwrap();
    (node, host)
}

#[test]
fn a_local_backend_gets_the_client_through_its_policy_and_answers_from_the_node_port() {
    let (node, host) = node("local", SVC_FLAG_NODEPORT, (BACKEND.ip, 80));
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
    let (_node, host) = node("remote", SVC_FLAG_NODEPORT, (REMOTE_POD, 8080));
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
    let (_node, host) = node("remote-udp", SVC_FLAG_NODEPORT, (REMOTE_POD, 8080));
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
    let (_node, host) = node("clusterip", 0, (BACKEND.ip, 80));
    let syn = checked_packet(TCP, CLIENT, 40420, NODE_IP, NODE_PORT, SYN);
    let out = run(host.program_fd().unwrap(), &syn).unwrap();
    assert_eq!((out.retval, out.packet), (TC_ACT_OK, syn));
}

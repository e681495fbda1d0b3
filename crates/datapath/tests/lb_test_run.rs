//! Service load balancing in the endpoint programs, on crafted packets
//! (BPF_PROG_TEST_RUN): DNAT to a backend, stickiness per flow, reverse NAT
//! of replies, checksums kept valid.

mod support;

use std::net::Ipv4Addr;

use datapath::{
    endpoint::{remove_endpoint, EndpointProgram, FROM_CONTAINER, TO_CONTAINER},
    maps::{
        lb::{Frontend, ServiceEntry},
        EndpointInfo, PolicyEntry, PolicyKey, PolicyMap,
    },
    test_run::{run, TC_ACT_OK, TC_ACT_REDIRECT},
    BpfRoot, SharedMaps,
};
use support::{checked_packet, inspect, TCP, UDP};

const CLIENT: (u16, Ipv4Addr, u32) = (21, Ipv4Addr::new(10, 8, 0, 21), 3000);
const BACKENDS: [(u16, Ipv4Addr, u32); 2] = [
    (22, Ipv4Addr::new(10, 8, 0, 22), 3001),
    (23, Ipv4Addr::new(10, 8, 0, 23), 3001),
];
const VIP: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);

struct Lab {
    root: BpfRoot,
    maps: SharedMaps,
    client: EndpointProgram,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (id, _, _) in std::iter::once(CLIENT).chain(BACKENDS) {
            let _ = remove_endpoint(&self.root, id);
        }
        let _ = std::fs::remove_dir_all(self.root.dir());
    }
}

fn lab(name: &str) -> Lab {
    let root = BpfRoot::prepare(format!(
        "/sys/fs/bpf/cilium-test-{}-lb-{name}",
        std::process::id()
    ))
    .unwrap();
    let mut maps = SharedMaps::open_or_create(&root).unwrap();
    for (id, ip, identity) in std::iter::once(CLIENT).chain(BACKENDS) {
        let info = EndpointInfo {
            ifindex: 1,
            lxc_id: id,
            flags: 0,
            mac: [2, 0, 0, 0, 0, id as u8],
            node_mac: [2, 1, 0, 0, 0, id as u8],
            sec_id: identity,
        };
        maps.lxc.upsert(ip, &info).unwrap();
        maps.ipcache
            .upsert(ip, 32, identity, Ipv4Addr::UNSPECIFIED)
            .unwrap();
    }
    let client = EndpointProgram::load(&root, CLIENT.0, 0).unwrap();
    let mut policy = PolicyMap::open(&root, CLIENT.0).unwrap();
    for egress in [true, false] {
        let key = PolicyKey::new(0, 0, 0, 0, egress);
        policy
            .upsert(key, PolicyEntry::verdict(&key, false, 0))
            .unwrap();
    }
    for (i, proto) in [(1u16, TCP), (2, UDP)] {
        for (n, (_, ip, _)) in BACKENDS.iter().enumerate() {
            maps.lb
                .upsert_backend(i as u32 * 10 + n as u32, (*ip).into(), 8080, proto)
                .unwrap();
        }
        let service = ServiceEntry {
            frontend: Frontend {
                address: VIP.into(),
                port: 80,
                proto,
            },
            rev_nat_index: i,
            flags: 0,
            slots: vec![i as u32 * 10, i as u32 * 10 + 1],
        };
        maps.lb.upsert_service(&service, 0).unwrap();
    }
    Lab { root, maps, client }
}

#[test]
fn connections_to_a_vip_reach_a_backend_and_stick_to_it() {
    let lab = lab("stick");
    let from = lab.client.program_fd(FROM_CONTAINER).unwrap();
    let mut chosen = std::collections::BTreeSet::new();
    for sport in 41000..41040 {
        let syn = checked_packet(TCP, CLIENT.1, sport, VIP, 80, 0x02);
        let out = run(from, &syn).unwrap();
        assert_eq!(
            out.retval, TC_ACT_REDIRECT,
            "delivered to the local backend"
        );
        let first = inspect(&out);
        assert_eq!(first.dport, 8080);
        assert!(BACKENDS.iter().any(|(_, ip, _)| *ip == first.dst));
        for _ in 0..3 {
            let again =
                inspect(&run(from, &checked_packet(TCP, CLIENT.1, sport, VIP, 80, 0x10)).unwrap());
            assert_eq!(
                again.dst, first.dst,
                "every packet of a flow goes to one backend"
            );
        }
        chosen.insert(first.dst);
    }
    assert_eq!(chosen.len(), 2, "40 connections spread over both backends");
}

#[test]
fn replies_come_from_the_vip() {
    let lab = lab("revnat");
    let from = lab.client.program_fd(FROM_CONTAINER).unwrap();
    let to = lab.client.program_fd(TO_CONTAINER).unwrap();
    for proto in [TCP, UDP] {
        let sport = 42000 + proto as u16;
        let out = run(from, &checked_packet(proto, CLIENT.1, sport, VIP, 80, 0x02)).unwrap();
        let backend = inspect(&out).dst;
        let reply = checked_packet(proto, backend, 8080, CLIENT.1, sport, 0x12);
        let out = run(to, &reply).unwrap();
        assert_eq!(out.retval, TC_ACT_OK);
        let seen = inspect(&out);
        assert_eq!(
            (seen.src, seen.sport),
            (VIP, 80),
            "proto {proto}: the client sees the VIP"
        );
        assert_eq!((seen.dst, seen.dport), (CLIENT.1, sport));
    }
}

#[test]
fn removed_backend_gets_no_new_flows_and_others_keep_theirs() {
    let mut lab = lab("remove");
    let from = lab.client.program_fd(FROM_CONTAINER).unwrap();
    let mut by_backend: std::collections::BTreeMap<Ipv4Addr, Vec<u16>> = Default::default();
    for sport in 43000..43020 {
        let dst =
            inspect(&run(from, &checked_packet(TCP, CLIENT.1, sport, VIP, 80, 0x02)).unwrap()).dst;
        by_backend.entry(dst).or_default().push(sport);
    }
    // Drop the second backend: one slot left.
    let service = ServiceEntry {
        frontend: Frontend {
            address: VIP.into(),
            port: 80,
            proto: TCP,
        },
        rev_nat_index: 1,
        flags: 0,
        slots: vec![10],
    };
    lab.maps.lb.upsert_service(&service, 2).unwrap();
    lab.maps.lb.remove_backend(11).unwrap();
    let kept = BACKENDS[0].1;
    for sport in &by_backend[&kept] {
        let dst =
            inspect(&run(from, &checked_packet(TCP, CLIENT.1, *sport, VIP, 80, 0x10)).unwrap()).dst;
        assert_eq!(
            dst, kept,
            "established flows to the remaining backend are untouched"
        );
    }
    for sport in 43100..43120 {
        let dst =
            inspect(&run(from, &checked_packet(TCP, CLIENT.1, sport, VIP, 80, 0x02)).unwrap()).dst;
        assert_eq!(dst, kept, "no new connection reaches the removed backend");
    }
}

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
use support::{checked_packet, checksum, inspect, packet, TCP, UDP};

const ICMP: u8 = 1;

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

/// A router between the client and the backend answers with
/// "fragmentation needed" (type 3 code 4), quoting the translated packet
/// (to the backend) as RFC 792 asks: its IP header and first 8 bytes. The
/// client gets it quoting the VIP its socket dialled, with the quoted IP
/// header's checksum and the ICMP checksum valid, so path MTU discovery
/// works through the service. TCP and UDP alike.
#[test]
fn a_fragmentation_needed_about_a_service_flow_quotes_the_vip() {
    let lab = lab("fragneeded");
    let from = lab.client.program_fd(FROM_CONTAINER).unwrap();
    let to = lab.client.program_fd(TO_CONTAINER).unwrap();
    let router = Ipv4Addr::new(192, 0, 2, 254);
    for proto in [TCP, UDP] {
        let sport = 44000 + proto as u16;
        let sent = run(from, &checked_packet(proto, CLIENT.1, sport, VIP, 80, 0x02)).unwrap();
        let backend = inspect(&sent).dst;

        let mut error = vec![3, 4, 0, 0, 0, 0];
        error.extend_from_slice(&1400u16.to_be_bytes());
        error.extend_from_slice(&sent.packet[14..14 + 20 + 8]);
        let sum = checksum(&error);
        error[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut packet = packet(router, CLIENT.1, ICMP, &error);
        let sum = checksum(&packet[14..34]);
        packet[24..26].copy_from_slice(&sum.to_be_bytes());
        let out = run(to, &packet).unwrap();

        assert_eq!(out.retval, TC_ACT_OK, "proto {proto}: related, delivered");
        let icmp = &out.packet[34..];
        assert_eq!(checksum(icmp), 0, "proto {proto}: ICMP checksum valid");
        let quote = &icmp[8..];
        assert_eq!(
            checksum(&quote[..20]),
            0,
            "proto {proto}: the quoted IP header's checksum is valid"
        );
        let quoted_dst = Ipv4Addr::new(quote[16], quote[17], quote[18], quote[19]);
        let quoted_dport = u16::from_be_bytes([quote[22], quote[23]]);
        assert_eq!(
            (quoted_dst, quoted_dport),
            (VIP, 80),
            "proto {proto}: quotes the VIP, not backend {backend}"
        );
        let quoted_src = Ipv4Addr::new(quote[12], quote[13], quote[14], quote[15]);
        let quoted_sport = u16::from_be_bytes([quote[20], quote[21]]);
        assert_eq!(
            (quoted_src, quoted_sport),
            (CLIENT.1, sport),
            "proto {proto}: and the client as it was"
        );
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

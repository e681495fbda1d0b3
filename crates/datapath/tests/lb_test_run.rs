//! Service load balancing in the endpoint programs, on crafted packets
//! (BPF_PROG_TEST_RUN): DNAT to a backend, stickiness per flow, reverse NAT
//! of replies, checksums kept valid.

use std::net::Ipv4Addr;

use datapath::{
    endpoint::{remove_endpoint, EndpointProgram, FROM_CONTAINER, TO_CONTAINER},
    maps::{
        lb::{Frontend, Lb4Backend, ServiceEntry},
        EndpointInfo, PolicyEntry, PolicyKey, PolicyMap,
    },
    test_run::{run, TestRunOutput, TC_ACT_OK, TC_ACT_REDIRECT},
    BpfRoot, SharedMaps,
};

const TCP: u8 = 6;
const UDP: u8 = 17;
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
                .upsert_backend(i as u32 * 10 + n as u32, &Lb4Backend::new(*ip, 8080, proto))
                .unwrap();
        }
        let service = ServiceEntry {
            frontend: Frontend {
                address: VIP,
                port: 80,
                proto,
            },
            rev_nat_index: i,
            slots: vec![i as u32 * 10, i as u32 * 10 + 1],
        };
        maps.lb.upsert_service(&service, 0).unwrap();
    }
    Lab { root, maps, client }
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in bytes.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]) as u32;
        sum += word;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A TCP/UDP packet with correct IP and L4 checksums.
fn packet(proto: u8, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    let mut l4 = if proto == TCP {
        vec![0u8; 20]
    } else {
        vec![0u8; 12]
    };
    l4[0..2].copy_from_slice(&sport.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    if proto == TCP {
        l4[12] = 5 << 4;
        l4[13] = flags;
    } else {
        let len = l4.len() as u16;
        l4[4..6].copy_from_slice(&len.to_be_bytes());
    }
    let csum_at = if proto == TCP { 16 } else { 6 };
    let csum = l4_checksum(proto, src, dst, &l4);
    l4[csum_at..csum_at + 2].copy_from_slice(&csum.to_be_bytes());

    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    ip[2..4].copy_from_slice(&(20 + l4.len() as u16).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());

    let mut p = vec![0u8; 12];
    p.extend_from_slice(&0x0800u16.to_be_bytes());
    p.extend_from_slice(&ip);
    p.extend_from_slice(&l4);
    p
}

fn l4_checksum(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, l4: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(l4);
    checksum(&pseudo)
}

struct Seen {
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
}

/// Addresses of a packet the program left, after checking its checksums.
fn inspect(out: &TestRunOutput) -> Seen {
    let p = &out.packet;
    let ip = &p[14..34];
    assert_eq!(checksum(ip), 0, "IP header checksum stays valid");
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let l4 = &p[34..];
    assert_eq!(
        l4_checksum(ip[9], src, dst, l4),
        0,
        "L4 checksum stays valid"
    );
    Seen {
        src,
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dst,
        dport: u16::from_be_bytes([l4[2], l4[3]]),
    }
}

#[test]
fn connections_to_a_vip_reach_a_backend_and_stick_to_it() {
    let lab = lab("stick");
    let from = lab.client.program_fd(FROM_CONTAINER).unwrap();
    let mut chosen = std::collections::BTreeSet::new();
    for sport in 41000..41040 {
        let syn = packet(TCP, CLIENT.1, sport, VIP, 80, 0x02);
        let out = run(from, &syn).unwrap();
        assert_eq!(
            out.retval, TC_ACT_REDIRECT,
            "delivered to the local backend"
        );
        let first = inspect(&out);
        assert_eq!(first.dport, 8080);
        assert!(BACKENDS.iter().any(|(_, ip, _)| *ip == first.dst));
        for _ in 0..3 {
            let again = inspect(&run(from, &packet(TCP, CLIENT.1, sport, VIP, 80, 0x10)).unwrap());
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
        let out = run(from, &packet(proto, CLIENT.1, sport, VIP, 80, 0x02)).unwrap();
        let backend = inspect(&out).dst;
        let reply = packet(proto, backend, 8080, CLIENT.1, sport, 0x12);
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
        let dst = inspect(&run(from, &packet(TCP, CLIENT.1, sport, VIP, 80, 0x02)).unwrap()).dst;
        by_backend.entry(dst).or_default().push(sport);
    }
    // Drop the second backend: one slot left.
    let service = ServiceEntry {
        frontend: Frontend {
            address: VIP,
            port: 80,
            proto: TCP,
        },
        rev_nat_index: 1,
        slots: vec![10],
    };
    lab.maps.lb.upsert_service(&service, 2).unwrap();
    lab.maps.lb.remove_backend(11).unwrap();
    let kept = BACKENDS[0].1;
    for sport in &by_backend[&kept] {
        let dst = inspect(&run(from, &packet(TCP, CLIENT.1, *sport, VIP, 80, 0x10)).unwrap()).dst;
        assert_eq!(
            dst, kept,
            "established flows to the remaining backend are untouched"
        );
    }
    for sport in 43100..43120 {
        let dst = inspect(&run(from, &packet(TCP, CLIENT.1, sport, VIP, 80, 0x02)).unwrap()).dst;
        assert_eq!(dst, kept, "no new connection reaches the removed backend");
    }
}

//! The fixture the datapath's BPF_PROG_TEST_RUN tests share: a pin
//! directory of their own, three local endpoints with their programs
//! loaded, and crafted packets.
#![allow(dead_code)] // each test binary uses its own part

pub mod v6;

use std::net::Ipv4Addr;

use datapath::{
    endpoint::{remove_endpoint, EndpointProgram, FROM_CONTAINER, TO_CONTAINER},
    maps::{EndpointInfo, PolicyEntry, PolicyKey, PolicyMap},
    test_run::{run, TestRunOutput},
    BpfRoot, SharedMaps,
};

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const INGRESS: bool = false;
pub const EGRESS: bool = true;

/// A pin directory of its own, removed whatever the test's outcome.
pub struct TestRoot {
    pub root: BpfRoot,
}

impl TestRoot {
    pub fn new(name: &str) -> Self {
        let dir = format!("/sys/fs/bpf/cilium-test-{}-{name}", std::process::id());
        TestRoot {
            root: BpfRoot::prepare(dir).expect("bpffs (tests run as root)"),
        }
    }
}

impl Drop for TestRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.root.dir());
    }
}

pub struct Pod {
    pub id: u16,
    pub ip: Ipv4Addr,
    pub identity: u32,
}

pub const FRONTEND: Pod = Pod {
    id: 11,
    ip: Ipv4Addr::new(10, 9, 0, 11),
    identity: 1000,
};
pub const BACKEND: Pod = Pod {
    id: 12,
    ip: Ipv4Addr::new(10, 9, 0, 12),
    identity: 1001,
};
pub const INTRUDER: Pod = Pod {
    id: 13,
    ip: Ipv4Addr::new(10, 9, 0, 13),
    identity: 1002,
};

/// Three local endpoints known to lxc and ipcache, programs loaded for each,
/// every policy map empty (both directions enforced, nothing allowed).
pub struct Node {
    pub t: TestRoot,
    pub maps: SharedMaps,
    pub progs: Vec<EndpointProgram>,
}

impl Node {
    pub fn new(name: &str) -> Self {
        let t = TestRoot::new(name);
        let mut maps = SharedMaps::open_or_create(&t.root).unwrap();
        let mut progs = Vec::new();
        for pod in [&FRONTEND, &BACKEND, &INTRUDER] {
            let info = EndpointInfo {
                ifindex: 1,
                lxc_id: pod.id,
                flags: 0,
                mac: [2, 0, 0, 0, 0, pod.id as u8],
                node_mac: [2, 1, 0, 0, 0, pod.id as u8],
                sec_id: pod.identity,
            };
            maps.lxc.upsert(pod.ip, &info).unwrap();
            maps.ipcache
                .upsert(pod.ip, 32, pod.identity, Ipv4Addr::UNSPECIFIED)
                .unwrap();
            progs.push(EndpointProgram::load(&t.root, pod.id, 0).unwrap());
        }
        Node { t, maps, progs }
    }

    pub fn allow(&self, pod: &Pod, key: PolicyKey) {
        let mut map = PolicyMap::open(&self.t.root, pod.id).unwrap();
        map.upsert(key, PolicyEntry::verdict(&key, false, 0))
            .unwrap();
    }

    pub fn deny(&self, pod: &Pod, key: PolicyKey) {
        let mut map = PolicyMap::open(&self.t.root, pod.id).unwrap();
        map.upsert(key, PolicyEntry::verdict(&key, true, 0))
            .unwrap();
    }

    pub fn prog(&self, pod: &Pod) -> &EndpointProgram {
        &self.progs[(pod.id - FRONTEND.id) as usize]
    }

    /// Sends a packet out of `pod` (its from-container program).
    pub fn send(&self, pod: &Pod, packet: &[u8]) -> u32 {
        let fd = self.prog(pod).program_fd(FROM_CONTAINER).unwrap();
        run(fd, packet).unwrap().retval
    }

    /// Delivers a packet into `pod` (its to-container program).
    pub fn deliver(&self, pod: &Pod, packet: &[u8]) -> u32 {
        let fd = self.prog(pod).program_fd(TO_CONTAINER).unwrap();
        run(fd, packet).unwrap().retval
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for pod in [&FRONTEND, &BACKEND, &INTRUDER] {
            let _ = remove_endpoint(&self.t.root, pod.id);
        }
    }
}

pub const SYN: u8 = 0x02;
pub const SYN_ACK: u8 = 0x12;
pub const ACK: u8 = 0x10;
pub const FIN_ACK: u8 = 0x11;

pub fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    packet(src, dst, TCP, &{
        let mut l4 = vec![0u8; 20];
        l4[0..2].copy_from_slice(&sport.to_be_bytes());
        l4[2..4].copy_from_slice(&dport.to_be_bytes());
        l4[12] = 5 << 4;
        l4[13] = flags;
        l4
    })
}

pub fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    packet(src, dst, UDP, &{
        let mut l4 = vec![0u8; 8 + 4];
        l4[0..2].copy_from_slice(&sport.to_be_bytes());
        l4[2..4].copy_from_slice(&dport.to_be_bytes());
        l4[4..6].copy_from_slice(&12u16.to_be_bytes());
        l4
    })
}

pub fn packet(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 14];
    p[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let total = 20 + l4.len() as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    p.extend_from_slice(&ip);
    p.extend_from_slice(l4);
    p
}

/// The mark bpf_overlay leaves: the identity from the VNI.
pub fn identity_mark(identity: u32) -> u32 {
    ((identity & 0xFFFF) << 16) | 0x0F00 | ((identity >> 16) & 0xFF)
}

pub fn checksum(bytes: &[u8]) -> u16 {
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
pub fn checked_packet(
    proto: u8,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    flags: u8,
) -> Vec<u8> {
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

pub fn l4_checksum(proto: u8, src: Ipv4Addr, dst: Ipv4Addr, l4: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(l4);
    checksum(&pseudo)
}

pub struct Seen {
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

/// Addresses of a packet the program left, after checking its checksums.
pub fn inspect(out: &TestRunOutput) -> Seen {
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

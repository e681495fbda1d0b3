//! Random IPv6 packets against BACKEND's ingress program, in the kernel
//! (BPF_PROG_TEST_RUN), each verdict checked against a model of what the
//! policy means: random extension-header chains, fragments (first ones,
//! later ones of datagrams seen or not), truncated headers and random next
//! headers never get past a deny, and never past default deny. Seeded:
//! a failure names the seed and case to replay. Needs root.

mod support;

use std::collections::HashMap;
use std::net::Ipv6Addr;

use datapath::{
    endpoint::TO_CONTAINER,
    maps::PolicyKey,
    test_run::{run, TC_ACT_OK, TC_ACT_SHOT},
};
use support::v6::*;
use support::*;

/// What an IPv6 address outside the cluster is: world-ipv6.
const WORLD_ID: u32 = 10;
const CASES: usize = 4000;
const SEED: u64 = 0x5eed_0018_1d6f_7a11;

/// xorshift64*: enough randomness, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One policy entry: peer identity (0 = any), protocol (0 = any), port or
/// ICMPv6 type (None = any), deny.
type Rule = (u32, u8, Option<u16>, bool);

const RULES: [Rule; 9] = [
    (FRONTEND.identity, TCP, Some(80), false),
    (FRONTEND.identity, UDP, Some(53), false),
    (FRONTEND.identity, ICMPV6, Some(ECHO_REQUEST as u16), false),
    (INTRUDER.identity, 0, None, false),
    (INTRUDER.identity, TCP, Some(22), true),
    (INTRUDER.identity, ICMPV6, Some(ECHO_REQUEST as u16), true),
    // Other ICMPv6 types allowed by the L3 rule must not open the way.
    (INTRUDER.identity, ICMPV6, Some(139), true),
    (WORLD_ID, UDP, None, false),
    (0, TCP, Some(23), true),
];

/// Deny wins; otherwise some allow must match.
fn policy_allows(identity: u32, proto: u8, port: u16) -> bool {
    let matches = |&(id, p, port_rule, _): &Rule| {
        (id == identity || id == 0)
            && (p == 0 || (p == proto && port_rule.is_none_or(|x| x == port)))
    };
    let hits: Vec<&Rule> = RULES.iter().filter(|r| matches(r)).collect();
    !hits.iter().any(|r| r.3) && !hits.is_empty()
}

/// A datagram's identity for fragment tracking: source, id, the fragment
/// header's next header.
type FragKey = (Ipv6Addr, u32, u8);

/// The L4 view the policy decides on: protocol and port (ICMPv6: type).
type Tuple = (u8, u16);

struct Case {
    src: Ipv6Addr,
    identity: u32,
    exts: Vec<Ext>,
    proto: u8,
    l4: Vec<u8>,
}

impl Case {
    fn packet(&self) -> Vec<u8> {
        packet6(self.src, ip6(&BACKEND), &self.exts, self.proto, &self.l4)
    }

    /// The next header after extension header `i`.
    fn next_after(&self, i: usize) -> u8 {
        self.exts.get(i + 1).map_or(self.proto, Ext::kind)
    }

    /// The model: whether the packet passes, updating the datagrams whose
    /// first fragment passed.
    fn passes(&self, frags: &mut HashMap<FragKey, Tuple>) -> bool {
        let mut first_of = None;
        for (i, ext) in self.exts.iter().enumerate() {
            if *ext == Ext::None || i == 4 {
                return false;
            }
            if let Ext::Frag { offset, more, id } = *ext {
                if first_of.is_some() || self.exts[..i].iter().any(|e| e.kind() == 44) {
                    return false;
                }
                let key = (self.src, id, self.next_after(i));
                if offset != 0 {
                    return frags
                        .get(&key)
                        .is_some_and(|&(proto, port)| policy_allows(self.identity, proto, port));
                }
                first_of = more.then_some(key);
            }
        }
        let needed = match self.proto {
            TCP => 20,
            UDP | ICMPV6 => 8,
            _ => 0,
        };
        if self.l4.len() < needed {
            return false;
        }
        let port = match self.proto {
            TCP | UDP => u16::from_be_bytes([self.l4[2], self.l4[3]]),
            ICMPV6 => self.l4[0] as u16,
            _ => 0,
        };
        if self.proto == ICMPV6 && [NEIGHBOR_SOLICIT, NEIGHBOR_ADVERT].contains(&self.l4[0]) {
            return true;
        }
        let allowed = policy_allows(self.identity, self.proto, port);
        if let (true, Some(key)) = (allowed, first_of) {
            frags.insert(key, (self.proto, port));
        }
        allowed
    }
}

fn random_case(rng: &mut Rng, firsts: &[(Ipv6Addr, u32, u32, u8)]) -> Case {
    let (src, identity) = rng.pick(&[
        (ip6(&FRONTEND), FRONTEND.identity),
        (ip6(&INTRUDER), INTRUDER.identity),
        (WORLD6, WORLD_ID),
    ]);
    let opts = |rng: &mut Rng| {
        let kind = rng.pick(&[NEXTHDR_HOP, NEXTHDR_ROUTING, NEXTHDR_DEST]);
        Ext::Opts(kind, rng.below(3) as u8)
    };
    // The rest of a datagram whose first fragment went before.
    if !firsts.is_empty() && rng.chance(25) {
        let (src, identity, id, nexthdr) = rng.pick(firsts);
        let mut exts: Vec<Ext> = (0..rng.below(3)).map(|_| opts(rng)).collect();
        let offset = 1 + rng.below(180) as u16;
        exts.push(Ext::Frag {
            offset,
            more: rng.chance(50),
            id,
        });
        let l4 = vec![0xa5; 8 * (1 + rng.below(4) as usize)];
        return Case {
            src,
            identity,
            exts,
            proto: nexthdr,
            l4,
        };
    }
    let mut exts = Vec::new();
    for _ in 0..rng.pick(&[0, 0, 1, 1, 2, 3, 4, 4, 5, 6]) {
        exts.push(match rng.below(20) {
            0..=8 => opts(rng),
            9..=11 => Ext::Auth(rng.below(4) as u8),
            12..=18 => Ext::Frag {
                offset: if rng.chance(60) {
                    0
                } else {
                    1 + rng.below(180) as u16
                },
                more: rng.chance(70),
                id: 1 + rng.below(40) as u32,
            },
            _ => Ext::None,
        });
    }
    let proto = rng.pick(&[
        TCP, TCP, TCP, UDP, UDP, ICMPV6, ICMPV6, ICMPV6, 50, 132, 47, 253,
    ]);
    let sport = 1024 + rng.below(60000) as u16;
    let any_port = rng.below(65536) as u16;
    let port = rng.pick(&[22, 23, 53, 80, 81, 443, any_port]);
    let mut l4 = match proto {
        TCP => tcp_l4(sport, port, rng.pick(&[SYN, SYN, ACK, 0])),
        UDP => udp_l4(sport, port),
        ICMPV6 => {
            let types = [ECHO_REQUEST, ECHO_REPLY, NEIGHBOR_SOLICIT, NEIGHBOR_ADVERT];
            let any_type = rng.below(256) as u8;
            let other = [1, PACKET_TOO_BIG, 3, 4, 133, 134, 139, any_type];
            let icmp_type = if rng.chance(60) {
                rng.pick(&types)
            } else {
                rng.pick(&other)
            };
            // Echo id 0 would share its tuple between request and reply.
            icmp6_l4(icmp_type, 1 + rng.below(65535) as u16, &[])
        }
        _ => vec![0x5a; 8 * rng.below(4) as usize],
    };
    if rng.chance(8) {
        l4.truncate(rng.below(l4.len() as u64 + 1) as usize);
    }
    Case {
        src,
        identity,
        exts,
        proto,
        l4,
    }
}

#[test]
fn random_ipv6_packets_never_pass_a_deny() {
    let mut node = Node::new("v6fuzz");
    dual_stack(&mut node);
    for (identity, proto, port, deny) in RULES {
        let key = match port {
            Some(p) => PolicyKey::new(identity, proto, p, 16, INGRESS),
            None => PolicyKey::new(identity, proto, 0, 0, INGRESS),
        };
        if deny {
            node.deny(&BACKEND, key);
        } else {
            node.allow(&BACKEND, key);
        }
    }
    let fd = node.prog(&BACKEND).program_fd(TO_CONTAINER).unwrap();
    let mut rng = Rng(SEED);
    let mut frags = HashMap::new();
    let mut firsts = Vec::new();
    let (mut passed, mut fragments) = (0, 0);
    for n in 0..CASES {
        let case = random_case(&mut rng, &firsts);
        for (i, ext) in case.exts.iter().enumerate() {
            if let Ext::Frag {
                offset: 0,
                more: true,
                id,
            } = *ext
            {
                firsts.push((case.src, case.identity, id, case.next_after(i)));
            }
        }
        fragments += case.exts.iter().any(|e| e.kind() == NEXTHDR_FRAGMENT) as usize;
        let want = case.passes(&mut frags);
        let got = run(fd, &case.packet()).unwrap().retval;
        let expected = if want { TC_ACT_OK } else { TC_ACT_SHOT };
        assert_eq!(
            got, expected,
            "case {n} (seed {SEED:#x}): from {} exts {:?} proto {} l4 {:02x?}",
            case.src, case.exts, case.proto, case.l4
        );
        passed += want as usize;
    }
    // The generator reaches both verdicts and the fragment paths.
    assert!(
        passed > CASES / 10 && passed < CASES * 9 / 10,
        "{passed} passed"
    );
    assert!(fragments > CASES / 5, "{fragments} with fragments");
    assert!(frags.len() > 20, "{} datagrams tracked", frags.len());
}

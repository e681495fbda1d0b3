//! Name → allowed, measured from the pod. The proxy releases an answer
//! only after the agent has made the datapath allow its addresses, so the
//! time an answer spends between the server and the pod bounds the time
//! from "answer leaves the server" to "IP allowed". For each probe name
//! (new to the agent, an address of its own) the bench asks the direct
//! server and the proxied one, alternating which goes first, and takes the
//! difference; then, right after the proxy's answer, it opens a TCP
//! connection to the address (one attempt: it must succeed). The same
//! pair of queries for a name already learned gives the proxy's cost
//! without the learning.
//!
//! The queries come from the bench's own resolver (one UDP socket, one
//! query at a time, timed around `send_to`/`recv_from`) rather than `dig`:
//! a process start per query would add milliseconds of noise to a
//! difference of a few hundred microseconds.

use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use testbed::bench::signals;
use testbed::NetNs;

use crate::names::{Group, NamePlan, DIRECT_SERVER, PROXIED_SERVER, TCP_PORT};

const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One probe name's measurements, µs.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub direct_new: f64,
    pub proxy_new: f64,
    pub direct_known: f64,
    pub proxy_known: f64,
    /// The first TCP handshake to the new name's address, started right
    /// after the proxy's answer arrived; `None` if it failed.
    pub connect: Option<f64>,
}

impl Probe {
    /// What the proxy adds for a name new to the agent.
    pub fn added_new(&self) -> f64 {
        self.proxy_new - self.direct_new
    }

    /// What the proxy adds for a name already learned.
    pub fn added_known(&self) -> f64 {
        self.proxy_known - self.direct_known
    }
}

/// Runs the probes from a thread in the pod's namespace.
pub fn run(pod: &NetNs, plan: &NamePlan) -> Result<Vec<Probe>> {
    let plan = *plan;
    pod.run(move || probe_all(&plan))?
}

/// One query from the pod: `server` must answer `name` with `expected`;
/// the round trip in µs.
pub fn resolve(pod: &NetNs, server: Ipv4Addr, name: &str, expected: Ipv4Addr) -> Result<f64> {
    pod.run(|| Resolver::new()?.ask(server, name, expected))?
}

fn probe_all(plan: &NamePlan) -> Result<Vec<Probe>> {
    let mut resolver = Resolver::new()?;
    let mut probes = Vec::with_capacity(plan.probes);
    for i in 0..plan.probes {
        if signals::stopped() {
            bail!("interrupted: cleaning up");
        }
        let (new, new_ip) = (Group::Probe.name(i), plan.address(Group::Probe, i));
        let known_index = i % plan.steady;
        let (known, known_ip) = (
            Group::Steady.name(known_index),
            plan.address(Group::Steady, known_index),
        );
        let direct_first = i % 2 == 0;
        let mut connect = None;
        let (mut direct_new, mut proxy_new) = (0.0, 0.0);
        for direct in [direct_first, !direct_first] {
            if direct {
                direct_new = resolver.ask(DIRECT_SERVER, &new, new_ip)?;
            } else {
                proxy_new = resolver.ask(PROXIED_SERVER, &new, new_ip)?;
                connect = first_connect(new_ip);
            }
        }
        let (mut direct_known, mut proxy_known) = (0.0, 0.0);
        for direct in [direct_first, !direct_first] {
            if direct {
                direct_known = resolver.ask(DIRECT_SERVER, &known, known_ip)?;
            } else {
                proxy_known = resolver.ask(PROXIED_SERVER, &known, known_ip)?;
            }
        }
        probes.push(Probe {
            direct_new,
            proxy_new,
            direct_known,
            proxy_known,
            connect,
        });
    }
    Ok(probes)
}

/// One handshake attempt; its time in µs.
fn first_connect(ip: Ipv4Addr) -> Option<f64> {
    let start = Instant::now();
    let stream = TcpStream::connect_timeout(&SocketAddr::from((ip, TCP_PORT)), CONNECT_TIMEOUT);
    let took = start.elapsed();
    stream.ok().map(|_| took.as_secs_f64() * 1e6)
}

/// A stub resolver: A queries over UDP, one at a time.
struct Resolver {
    socket: UdpSocket,
    next_id: u16,
    buf: Vec<u8>,
}

impl Resolver {
    fn new() -> Result<Resolver> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.set_read_timeout(Some(QUERY_TIMEOUT))?;
        Ok(Resolver {
            socket,
            next_id: 1,
            buf: vec![0; 1500],
        })
    }

    /// Asks `server` for `name`'s A record, which must be `expected`; the
    /// round trip in µs.
    fn ask(&mut self, server: Ipv4Addr, name: &str, expected: Ipv4Addr) -> Result<f64> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let query = build_query(id, name);
        let to = SocketAddr::from((server, 53));
        let start = Instant::now();
        self.socket.send_to(&query, to)?;
        loop {
            let (len, from) = self
                .socket
                .recv_from(&mut self.buf)
                .with_context(|| format!("no answer from {server} for {name}"))?;
            let took = start.elapsed();
            // A late answer to an earlier query is skipped.
            let Some(answer) = parse_answer(&self.buf[..len]).filter(|a| a.id == id) else {
                continue;
            };
            ensure!(from == to, "{name}: answer from {from}, asked {to}");
            ensure!(
                answer.rcode == 0 && answer.addresses == [expected],
                "{name} at {server}: rcode {}, addresses {:?}, expected {expected}",
                answer.rcode,
                answer.addresses
            );
            return Ok(took.as_secs_f64() * 1e6);
        }
    }
}

fn build_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    // Recursion desired; one question.
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    // Root, type A, class IN.
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

struct Answer {
    id: u16,
    rcode: u8,
    addresses: Vec<Ipv4Addr>,
}

fn parse_answer(msg: &[u8]) -> Option<Answer> {
    let word =
        |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?])) };
    let id = word(0)?;
    let flags = word(2)?;
    let (questions, answers) = (word(4)?, word(6)?);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(msg, at)? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..answers {
        at = skip_name(msg, at)?;
        let (rtype, len) = (word(at)?, word(at + 8)? as usize);
        let data = msg.get(at + 10..at + 10 + len)?;
        if rtype == 1 && len == 4 {
            addresses.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + len;
    }
    Some(Answer {
        id,
        rcode: (flags & 0x0f) as u8,
        addresses,
    })
}

/// The offset after the name at `at` (labels, ended by a root label or a
/// compression pointer).
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l => at += 1 + l as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_answer_to_its_own_query() {
        let query = build_query(0x1234, "p1.probe.test.");
        assert_eq!(query.len(), 12 + 15 + 4);
        // The answer: the query with QR set, one A record whose name is a
        // pointer to the question.
        let mut answer = query.clone();
        answer[2] = 0x81;
        answer[3] = 0x80;
        answer[7] = 1;
        answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 198, 18, 2, 7]);
        let parsed = parse_answer(&answer).unwrap();
        assert_eq!((parsed.id, parsed.rcode), (0x1234, 0));
        assert_eq!(parsed.addresses, [Ipv4Addr::new(198, 18, 2, 7)]);
        // REFUSED, no records; a cut message is no answer.
        let mut refused = query.clone();
        refused[3] = 0x05;
        let parsed = parse_answer(&refused).unwrap();
        assert_eq!((parsed.rcode, parsed.addresses.len()), (5, 0));
        assert!(parse_answer(&answer[..answer.len() - 2]).is_none());
    }
}

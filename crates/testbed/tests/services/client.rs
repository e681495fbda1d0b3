//! The client side, run inside the client pod's namespace: connections to
//! a VIP that ask "who are you?" over several rounds and check which peer
//! address the socket reports.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use testbed::Pod;

/// How long one connect or one answer may take before it counts as failed.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// An open connection and the backend that answered its first round.
pub struct Conn {
    reader: BufReader<TcpStream>,
    pub backend: String,
    /// `getpeername()` on the client's socket.
    pub peer: SocketAddr,
}

impl Conn {
    /// One more round on the same connection: the backend's name.
    pub fn ask(&mut self) -> Result<String> {
        ask(&mut self.reader)
    }
}

fn ask(reader: &mut BufReader<TcpStream>) -> Result<String> {
    reader
        .get_mut()
        .write_all(b"who\n")
        .context("sending a request")?;
    let mut line = String::new();
    reader.read_line(&mut line).context("reading the answer")?;
    if line.is_empty() {
        bail!("the connection was closed");
    }
    Ok(line.trim().to_string())
}

/// Connects from `pod` to `ip:port` within `timeout` and asks once.
pub fn connect(pod: &Pod, ip: Ipv4Addr, port: u16, timeout: Duration) -> Result<Conn> {
    let addr = SocketAddr::from((ip, port));
    let stream = pod
        .namespace()
        .run(move || TcpStream::connect_timeout(&addr, timeout))?
        .with_context(|| format!("{} cannot connect to {addr}", pod.name()))?;
    stream.set_read_timeout(Some(timeout))?;
    let peer = stream.peer_addr()?;
    let mut reader = BufReader::new(stream);
    let backend = ask(&mut reader).with_context(|| format!("{} -> {addr}", pod.name()))?;
    Ok(Conn {
        reader,
        backend,
        peer,
    })
}

/// `n` connections from `pod` to `vip:port`, each asked `rounds` times.
/// Fails unless every round of a connection names the same backend and the
/// socket's peer is the VIP. Returns connections per backend.
pub fn tcp_spread(
    pod: &Pod,
    vip: Ipv4Addr,
    port: u16,
    n: usize,
    rounds: usize,
) -> Result<BTreeMap<String, usize>> {
    let want = SocketAddr::from((vip, port));
    let mut counts = BTreeMap::new();
    for i in 0..n {
        let mut conn =
            connect(pod, vip, port, TIMEOUT).with_context(|| format!("connection {i}"))?;
        if conn.peer != want {
            bail!(
                "connection {i}: getpeername() is {}, not the VIP {want}",
                conn.peer
            );
        }
        for round in 1..rounds {
            let again = conn
                .ask()
                .with_context(|| format!("connection {i}, round {round}"))?;
            if again != conn.backend {
                bail!(
                    "connection {i} moved from {} to {again} in round {round}",
                    conn.backend
                );
            }
        }
        *counts.entry(conn.backend).or_default() += 1;
    }
    Ok(counts)
}

/// Connections that got an answer, per backend, and how many got none.
pub fn tcp_attempts(
    pod: &Pod,
    vip: Ipv4Addr,
    port: u16,
    n: usize,
    timeout: Duration,
) -> (BTreeMap<String, usize>, usize) {
    let mut answered = BTreeMap::new();
    let mut failed = 0;
    for _ in 0..n {
        match connect(pod, vip, port, timeout) {
            Ok(conn) => *answered.entry(conn.backend).or_default() += 1,
            Err(_) => failed += 1,
        }
    }
    (answered, failed)
}

/// Opens connections until one reaches each of `backends` (at most
/// `max_tries`): long-lived connections, one per backend, in that order.
pub fn one_conn_per_backend(
    pod: &Pod,
    vip: Ipv4Addr,
    port: u16,
    backends: &[&str],
    max_tries: usize,
) -> Result<Vec<Conn>> {
    let mut found: BTreeMap<String, Conn> = BTreeMap::new();
    for _ in 0..max_tries {
        if backends.iter().all(|b| found.contains_key(*b)) {
            break;
        }
        let conn = connect(pod, vip, port, TIMEOUT)?;
        found.entry(conn.backend.clone()).or_insert(conn);
    }
    backends
        .iter()
        .map(|b| {
            found
                .remove(*b)
                .with_context(|| format!("no connection reached {b} in {max_tries} tries"))
        })
        .collect()
}

/// `n` UDP sockets in `pod`, each sending `rounds` datagrams to `vip:port`
/// with `sendto` and reading answers with `recvfrom`. Fails unless every
/// answer comes from the VIP and one socket always hears the same backend.
pub fn udp_spread(
    pod: &Pod,
    vip: Ipv4Addr,
    port: u16,
    n: usize,
    rounds: usize,
) -> Result<BTreeMap<String, usize>> {
    let want = SocketAddr::from(SocketAddrV4::new(vip, port));
    pod.namespace().run(move || -> Result<BTreeMap<String, usize>> {
        let mut counts = BTreeMap::new();
        for i in 0..n {
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
            socket.set_read_timeout(Some(TIMEOUT))?;
            let mut first: Option<String> = None;
            for round in 0..rounds {
                let (name, from) = udp_ask(&socket, want)
                    .with_context(|| format!("socket {i}, datagram {round}"))?;
                if from != want {
                    bail!("socket {i}: recvfrom() says the answer came from {from}, not the VIP {want}");
                }
                match &first {
                    None => first = Some(name),
                    Some(f) if *f != name => bail!("socket {i} moved from {f} to {name}"),
                    Some(_) => {}
                }
            }
            *counts.entry(first.unwrap_or_default()).or_default() += 1;
        }
        Ok(counts)
    })?
}

/// One datagram to `to`; the answer and the address `recvfrom` names.
pub fn udp_ask(socket: &UdpSocket, to: SocketAddr) -> Result<(String, SocketAddr)> {
    socket.send_to(b"who", to).context("sendto")?;
    let mut buf = [0u8; 512];
    let (len, from) = socket.recv_from(&mut buf).context("recvfrom")?;
    Ok((String::from_utf8_lossy(&buf[..len]).into_owned(), from))
}

//! One measurement each, from a client namespace to a server pod running
//! a [`ServerSet`](super::servers::ServerSet): request/response latency
//! (sockperf ping-pong over TCP; over IPv6, which Debian 12's sockperf 3.7
//! cannot address, our own ping-pong against an
//! [`EchoServer`](super::servers::EchoServer)), new connections per second
//! (our own connect/read/close loop) and single-stream throughput (iperf3).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::servers::{CONNECT_PORT, IPERF_PORT, SOCKPERF_PORT};
use super::{signals, tools};
use crate::NetNs;

/// sockperf's message size: small requests and responses.
pub const MESSAGE_BYTES: u32 = 64;

/// Round-trip times of one sockperf ping-pong run, in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
}

pub fn latency(client: &NetNs, server: Ipv4Addr, duration: Duration) -> Result<Latency> {
    let (ip, port) = (server.to_string(), SOCKPERF_PORT.to_string());
    let secs = duration.as_secs().max(1).to_string();
    let size = MESSAGE_BYTES.to_string();
    let out = tools::run_in(
        client,
        &[
            "sockperf",
            "ping-pong",
            "--tcp",
            "-i",
            &ip,
            "-p",
            &port,
            "-t",
            &secs,
            "-m",
            &size,
            "--full-rtt",
        ],
    )?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    parse_sockperf(&text)
}

/// Reads `---> percentile 50.000 =  7.129` lines (colour codes aside).
pub fn parse_sockperf(text: &str) -> Result<Latency> {
    let percentile = |which: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.contains(&format!("percentile {which} =")))
            .and_then(|l| l.rsplit('=').next())
            .and_then(|v| v.trim().trim_end_matches("\u{1b}[0m").parse().ok())
    };
    match (percentile("50.000"), percentile("99.000")) {
        (Some(p50_us), Some(p99_us)) => Ok(Latency { p50_us, p99_us }),
        _ => bail!("no 50th/99th percentile in sockperf's output:\n{text}"),
    }
}

/// Round trips of `MESSAGE_BYTES` over one TCP connection (`TCP_NODELAY`)
/// to an [`EchoServer`](super::servers::EchoServer) for `duration`, each
/// timed from the write until the whole echo is read: sockperf's
/// `ping-pong --tcp --full-rtt`, for addresses sockperf 3.7 cannot take.
pub fn ping_pong(client: &NetNs, server: SocketAddr, duration: Duration) -> Result<Latency> {
    let rtts_ns = client
        .run(move || -> std::io::Result<Vec<u64>> {
            let mut conn = TcpStream::connect_timeout(&server, Duration::from_secs(2))?;
            conn.set_nodelay(true)?;
            conn.set_read_timeout(Some(Duration::from_secs(1)))?;
            let message = [0x5au8; MESSAGE_BYTES as usize];
            let mut echo = [0u8; MESSAGE_BYTES as usize];
            let mut rtts = Vec::with_capacity(1 << 20);
            let start = Instant::now();
            while start.elapsed() < duration && !signals::stopped() {
                let sent = Instant::now();
                conn.write_all(&message)?;
                conn.read_exact(&mut echo)?;
                rtts.push(sent.elapsed().as_nanos() as u64);
            }
            Ok(rtts)
        })?
        .with_context(|| format!("TCP ping-pong with {server}"))?;
    latency_of(rtts_ns).with_context(|| format!("no round trip with {server} completed"))
}

/// p50 and p99 of round-trip times in nanoseconds, by nearest rank.
fn latency_of(mut rtts_ns: Vec<u64>) -> Option<Latency> {
    if rtts_ns.is_empty() {
        return None;
    }
    rtts_ns.sort_unstable();
    let at = |q: f64| {
        let rank = ((rtts_ns.len() as f64 * q).ceil() as usize).clamp(1, rtts_ns.len());
        rtts_ns[rank - 1] as f64 / 1e3
    };
    Some(Latency {
        p50_us: at(0.50),
        p99_us: at(0.99),
    })
}

/// One run of the connection loop.
#[derive(Debug, Clone, Copy)]
pub struct ConnRate {
    pub per_second: f64,
    pub failed: u64,
}

/// Connects, reads the server's byte and its close, closes; as fast as one
/// thread can, for `duration`. Each connection is a full handshake, one
/// data segment and both FINs: with a policy, a lookup on the first packet
/// and conntrack entries created and closed.
pub fn conn_rate(client: &NetNs, server: Ipv4Addr, duration: Duration) -> Result<ConnRate> {
    conn_rate_to(client, SocketAddr::from((server, CONNECT_PORT)), duration)
}

/// [`conn_rate`] against an accept server at `addr`.
pub fn conn_rate_to(client: &NetNs, addr: SocketAddr, duration: Duration) -> Result<ConnRate> {
    let (ok, failed, elapsed) = client.run(move || {
        let (mut ok, mut failed) = (0u64, 0u64);
        let start = Instant::now();
        while start.elapsed() < duration && !signals::stopped() {
            if one_connection(addr) {
                ok += 1;
            } else {
                failed += 1;
                if failed > 100 && failed > ok {
                    break;
                }
            }
        }
        (ok, failed, start.elapsed())
    })?;
    if ok == 0 {
        bail!("no connection to {addr} succeeded ({failed} failed)");
    }
    Ok(ConnRate {
        per_second: ok as f64 / elapsed.as_secs_f64(),
        failed,
    })
}

fn one_connection(addr: SocketAddr) -> bool {
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 8];
    let mut got = 0;
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return got == 1,
            Ok(n) => got += n,
            Err(_) => return false,
        }
    }
}

/// iperf3, one TCP stream for `duration` (whole seconds, at least 1), the
/// first second (slow start) run on top and omitted; Gbit/s received.
pub fn throughput_gbps(
    client: &NetNs,
    server: impl Into<IpAddr>,
    duration: Duration,
) -> Result<f64> {
    let (ip, port) = (server.into().to_string(), IPERF_PORT.to_string());
    let secs = duration.as_secs().max(1).to_string();
    let out = client.exec(&[
        "iperf3", "-c", &ip, "-p", &port, "-t", &secs, "-O", "1", "-J",
    ])?;
    // With -J, iperf3 reports its failures inside the JSON too.
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "iperf3 -J printed no JSON (exit {}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    if let Some(error) = json["error"].as_str() {
        bail!("iperf3 to {ip}:{port} failed: {error}");
    }
    if !out.status.success() {
        bail!("iperf3 to {ip}:{port} failed ({}): {json}", out.status);
    }
    let bps = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("no end.sum_received.bits_per_second in {json}"))?;
    Ok(bps / 1e9)
}

/// True if a TCP handshake to `ip:port` completes within `timeout`.
pub fn handshake(
    client: &NetNs,
    ip: impl Into<IpAddr>,
    port: u16,
    timeout: Duration,
) -> Result<bool> {
    let addr = SocketAddr::from((ip.into(), port));
    client.run(move || TcpStream::connect_timeout(&addr, timeout).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sockperf_percentiles() {
        let text = "sockperf: ---> percentile 99.900 =   27.266\n\
                    sockperf: ---> percentile 99.000 =   16.627\n\
                    sockperf: ---> percentile 50.000 =    7.129\n";
        let lat = parse_sockperf(text).unwrap();
        assert_eq!(lat.p50_us, 7.129);
        assert_eq!(lat.p99_us, 16.627);
        assert!(parse_sockperf("nothing").is_err());
    }

    #[test]
    fn ping_pong_percentiles_by_nearest_rank() {
        let lat = latency_of((1..=100).map(|us| us * 1000).collect()).unwrap();
        assert_eq!((lat.p50_us, lat.p99_us), (50.0, 99.0));
        assert!(latency_of(Vec::new()).is_none());
    }
}

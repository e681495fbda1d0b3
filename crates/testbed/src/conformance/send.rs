//! Sending one probe's real packets from a pod, an external namespace or the
//! host itself, and the host's own TCP listener.
//!
//! UDP probes bind a fresh source port from a per-process sequence: a
//! connection-tracking entry left by an allowed probe of an earlier case must
//! never carry a later probe that policy should drop.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::netns;

/// Where a probe starts: a namespace, or the host's (this process's own).
#[derive(Debug, Clone)]
pub enum Origin {
    Netns(PathBuf),
    Host,
}

impl Origin {
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match self {
            Origin::Netns(path) => netns::run_in(path, f).unwrap_or_else(|e| panic!("{e:#}")),
            Origin::Host => f(),
        }
    }
}

/// A TCP connection whose server's line arrives within `timeout`.
pub fn tcp(origin: &Origin, dst: IpAddr, port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from((dst, port));
    origin.run(move || {
        let Ok(conn) = TcpStream::connect_timeout(&addr, timeout) else {
            return false;
        };
        if conn.set_read_timeout(Some(timeout)).is_err() {
            return false;
        }
        let mut line = String::new();
        BufReader::new(conn).read_line(&mut line).is_ok() && !line.trim().is_empty()
    })
}

static UDP_SOURCE: AtomicU32 = AtomicU32::new(0);
/// Below the kernel's ephemeral range (32768-60999), so it never competes
/// with sockets bound to port 0.
const UDP_SOURCE_BASE: u32 = 12_000;
const UDP_SOURCE_SPAN: u32 = 20_000;

fn next_udp_source() -> u16 {
    let n = UDP_SOURCE.fetch_add(1, Ordering::Relaxed);
    let offset = (std::process::id().wrapping_mul(7919) + n) % UDP_SOURCE_SPAN;
    (UDP_SOURCE_BASE + offset) as u16
}

/// A datagram echoed back within `timeout`; also the source port it used.
pub fn udp(origin: &Origin, dst: IpAddr, port: u16, timeout: Duration) -> (bool, u16) {
    origin.run(move || {
        let mut last_port = 0;
        for _ in 0..5 {
            let source = next_udp_source();
            last_port = source;
            let any: IpAddr = match dst {
                IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            };
            let socket = match UdpSocket::bind((any, source)) {
                Ok(s) => s,
                Err(e) if e.kind() == ErrorKind::AddrInUse => continue,
                Err(_) => return (false, source),
            };
            let attempt = || -> std::io::Result<bool> {
                socket.connect((dst, port))?;
                socket.set_read_timeout(Some(timeout))?;
                let payload = format!("probe {source} -> {dst}:{port}");
                socket.send(payload.as_bytes())?;
                let mut buf = [0u8; 256];
                let len = socket.recv(&mut buf)?;
                Ok(&buf[..len] == payload.as_bytes())
            };
            return (attempt().unwrap_or(false), source);
        }
        (false, last_port)
    })
}

/// The ping command available on this node (`ping`, else `busybox ping`).
pub fn find_ping() -> Option<Vec<String>> {
    let works = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works(&["ping", "-V"]) {
        return Some(vec!["ping".into()]);
    }
    if works(&["busybox", "ping", "-c1", "-W1", "127.0.0.1"]) {
        return Some(vec!["busybox".into(), "ping".into()]);
    }
    None
}

/// One echo request (ICMPv6 to an IPv6 address) answered within `wait_secs`.
pub fn icmp(origin: &Origin, ping: &[String], dst: IpAddr, wait_secs: u32) -> bool {
    let mut args: Vec<String> = Vec::new();
    if let Origin::Netns(path) = origin {
        args.extend([
            "nsenter".into(),
            format!("--net={}", path.display()),
            "--".into(),
        ]);
    }
    args.extend(ping.iter().cloned());
    let family = if dst.is_ipv6() { "-6" } else { "-4" };
    args.extend([
        family.into(),
        "-c1".into(),
        format!("-W{wait_secs}"),
        dst.to_string(),
    ]);
    Command::new(&args[0])
        .args(&args[1..])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A TCP listener in the host's namespace on a port the kernel picks, for
/// both families, answering every connection with one line. Stops on drop.
pub struct HostListener {
    port: u16,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl HostListener {
    pub fn start() -> Result<HostListener> {
        // `[::]` takes IPv4 too (bindv6only is off).
        let listener = TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0))
            .context("cannot listen on TCP in the host namespace")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            let _ = conn.set_nonblocking(false);
                            let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
                            let _ = conn.write_all(b"host\n");
                            let _ = conn.shutdown(Shutdown::Write);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Ok(HostListener {
            port,
            stop,
            worker: Some(worker),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for HostListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// The namespace path of a probe origin that is a named namespace.
pub fn netns_origin(path: &Path) -> Origin {
    Origin::Netns(path.to_path_buf())
}

//! What a client talks to in a server pod: sockperf and iperf3 as real
//! tools, plus our own accept-and-close listener for the connection rate
//! and enforcement probes, and our own echo server for request/response
//! latency over IPv6 (which sockperf 3.7 cannot address).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::tools::NsProcess;
use crate::NetNs;

pub const SOCKPERF_PORT: u16 = 11111;
pub const IPERF_PORT: u16 = 5201;
pub const CONNECT_PORT: u16 = 7000;
/// The IPv6 servers: the IPv4 ones stay plain IPv4 sockets, as they were.
pub const CONNECT6_PORT: u16 = 7006;
pub const ECHO6_PORT: u16 = 11116;

/// Accepts connections, writes one byte and closes: the server closes
/// first, so TIME_WAIT lands on the server and the client's ports never run
/// out during a connection-rate loop. Stops on drop.
pub struct AcceptServer {
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl AcceptServer {
    pub fn start(netns: &NetNs, port: u16) -> Result<AcceptServer> {
        AcceptServer::start_on(netns, Ipv4Addr::UNSPECIFIED.into(), port)
    }

    /// On `[::]` (which takes IPv4 too).
    pub fn start6(netns: &NetNs, port: u16) -> Result<AcceptServer> {
        AcceptServer::start_on(netns, Ipv6Addr::UNSPECIFIED.into(), port)
    }

    fn start_on(netns: &NetNs, ip: IpAddr, port: u16) -> Result<AcceptServer> {
        let listener = netns
            .run(move || TcpListener::bind((ip, port)))?
            .with_context(|| format!("cannot listen on TCP {port} in netns {}", netns.name()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if !readable(&listener, 100) {
                        continue;
                    }
                    if let Ok((mut conn, _)) = listener.accept() {
                        let _ = conn.write_all(b"x");
                    }
                }
            })
        };
        Ok(AcceptServer {
            stop,
            worker: Some(worker),
        })
    }
}

/// poll(2) on the listener, so that the loop notices `stop` without a
/// busy accept on a non-blocking socket.
fn readable(listener: &TcpListener, timeout_ms: i32) -> bool {
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut fd, 1, timeout_ms) > 0 }
}

impl Drop for AcceptServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Echoes whatever each connection sends, one thread per connection (the
/// ping-pong client holds one); listens on `[::]`. Stops on drop.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl EchoServer {
    pub fn start6(netns: &NetNs, port: u16) -> Result<EchoServer> {
        let listener = netns
            .run(move || TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)))?
            .with_context(|| format!("cannot listen on TCP {port} in netns {}", netns.name()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if !readable(&listener, 100) {
                        continue;
                    }
                    if let Ok((conn, _)) = listener.accept() {
                        let stop = stop.clone();
                        std::thread::spawn(move || echo(conn, &stop));
                    }
                }
            })
        };
        Ok(EchoServer {
            stop,
            worker: Some(worker),
        })
    }
}

fn echo(mut conn: std::net::TcpStream, stop: &AtomicBool) {
    let _ = conn.set_nodelay(true);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// sockperf, iperf3 and the accept server in one server pod.
pub struct ServerSet {
    _sockperf: NsProcess,
    _iperf: NsProcess,
    _accept: AcceptServer,
}

impl ServerSet {
    pub fn start(netns: &NetNs) -> Result<ServerSet> {
        let port = SOCKPERF_PORT.to_string();
        let mut sockperf = NsProcess::spawn(
            netns,
            &["sockperf", "server", "--tcp", "-i", "0.0.0.0", "-p", &port],
        )?;
        let port = IPERF_PORT.to_string();
        let mut iperf = NsProcess::spawn(netns, &["iperf3", "-s", "-p", &port])?;
        let accept = AcceptServer::start(netns, CONNECT_PORT)?;
        wait_listening(netns, &[SOCKPERF_PORT, IPERF_PORT, CONNECT_PORT])?;
        sockperf.check_running()?;
        iperf.check_running()?;
        Ok(ServerSet {
            _sockperf: sockperf,
            _iperf: iperf,
            _accept: accept,
        })
    }
}

/// Waits until `ss` shows a TCP listener on every port inside `netns`.
pub fn wait_listening(netns: &NetNs, ports: &[u16]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = netns.exec(&["ss", "-Htln"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let missing: Vec<u16> = ports
            .iter()
            .copied()
            .filter(|p| !text.contains(&format!(":{p} ")))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "nothing listens on TCP {missing:?} in netns {} after 5 s",
                netns.name()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

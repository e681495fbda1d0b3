//! TCP and UDP endpoints living inside a pod's namespace. The sockets are
//! created on a thread that joined the namespace and keep it afterwards, so
//! the serving loops run on ordinary threads.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::netns::NetNs;

/// How often serving loops look at their stop flag.
const POLL: Duration = Duration::from_millis(5);

/// Accepts connections on `0.0.0.0:port`, answers each with one line and
/// closes it. Stops on drop.
pub struct TcpServer {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl TcpServer {
    pub fn start(netns: &NetNs, port: u16, greeting: String) -> Result<TcpServer> {
        let listener = netns
            .run(move || {
                // `[::]` takes IPv4 too (bindv6only is off): one server for
                // both families of a dual-stack pod.
                TcpListener::bind((Ipv6Addr::UNSPECIFIED, port))
                    .or_else(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
            })?
            .with_context(|| format!("cannot listen on TCP {port} in netns {}", netns.name()))?;
        listener.set_nonblocking(true)?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            answer(conn, greeting.as_bytes());
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
            })
        };
        Ok(TcpServer {
            port,
            accepted,
            stop,
            worker: Some(worker),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far: a connection dropped by policy never
    /// gets here.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

fn answer(mut conn: TcpStream, greeting: &[u8]) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = conn.write_all(greeting);
    let _ = conn.shutdown(Shutdown::Write);
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Echoes every datagram on `[::]:port` (both families; `0.0.0.0:port`
/// where IPv6 is missing) back to its sender. Stops on drop.
pub struct UdpServer {
    port: u16,
    received: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl UdpServer {
    pub fn start(netns: &NetNs, port: u16) -> Result<UdpServer> {
        let socket = netns
            .run(move || {
                UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port))
                    .or_else(|_| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)))
            })?
            .with_context(|| format!("cannot bind UDP {port} in netns {}", netns.name()))?;
        socket.set_read_timeout(Some(POLL * 4))?;
        let received = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((len, from)) = socket.recv_from(&mut buf) {
                        received.fetch_add(1, Ordering::Relaxed);
                        let _ = socket.send_to(&buf[..len], from);
                    }
                }
            })
        };
        Ok(UdpServer {
            port,
            received,
            stop,
            worker: Some(worker),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Datagrams received so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Connects from `netns` to `ip:port` and reads one line; `None` if the
/// handshake or the line does not arrive within `timeout` each.
pub fn tcp_request(
    netns: &NetNs,
    ip: impl Into<IpAddr>,
    port: u16,
    timeout: Duration,
) -> Option<String> {
    let addr = SocketAddr::from((ip.into(), port));
    netns
        .run(move || -> Option<String> {
            let conn = TcpStream::connect_timeout(&addr, timeout).ok()?;
            conn.set_read_timeout(Some(timeout)).ok()?;
            let mut line = String::new();
            BufReader::new(conn).read_line(&mut line).ok()?;
            let line = line.trim().to_string();
            (!line.is_empty()).then_some(line)
        })
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Sends one datagram from `netns` to `ip:port`; true if the same bytes
/// come back within `timeout`.
pub fn udp_roundtrip(netns: &NetNs, ip: impl Into<IpAddr>, port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from((ip.into(), port));
    netns
        .run(move || -> bool {
            let attempt = || -> std::io::Result<bool> {
                let socket = match addr {
                    SocketAddr::V4(_) => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?,
                    SocketAddr::V6(_) => UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?,
                };
                socket.connect(addr)?;
                socket.set_read_timeout(Some(timeout))?;
                let payload = format!("ping {addr}");
                socket.send(payload.as_bytes())?;
                let mut buf = [0u8; 2048];
                let len = socket.recv(&mut buf)?;
                Ok(&buf[..len] == payload.as_bytes())
            };
            attempt().unwrap_or(false)
        })
        .unwrap_or_else(|e| panic!("{e:#}"))
}

//! The measured traffic: a server answering one request per connection,
//! and a client opening connection after connection (connect, request,
//! response, close with RST so no TIME_WAIT piles up), timing each.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use testbed::bench::signals;
use testbed::NetNs;

/// Accept loops on `ports` in `netns`; stopped on drop.
pub struct Server {
    listeners: Vec<(i32, Option<JoinHandle<()>>)>,
}

impl Server {
    pub fn start(netns: &NetNs, ports: &[u16]) -> Result<Server> {
        let mut listeners = Vec::new();
        for &port in ports {
            let listener = netns
                .run(move || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))?
                .with_context(|| format!("cannot listen on {port} in {}", netns.name()))?;
            let fd = listener.as_raw_fd();
            let worker = std::thread::spawn(move || {
                // A blocking accept: shutdown() in Drop wakes it with an error.
                while let Ok((conn, _)) = listener.accept() {
                    answer(conn);
                }
            });
            listeners.push((fd, Some(worker)));
        }
        Ok(Server { listeners })
    }
}

fn answer(mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 64];
    if matches!(conn.read(&mut buf), Ok(n) if n > 0) {
        let _ = conn.write_all(b"ok\n");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for (fd, worker) in &mut self.listeners {
            // SAFETY: the listener is alive until its worker ends.
            unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
            if let Some(w) = worker.take() {
                let _ = w.join();
            }
        }
    }
}

/// One measurement: completed transactions and their latencies.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub seconds: f64,
    pub ok: usize,
    pub errors: usize,
    /// Connect + request + response, microseconds.
    pub latencies_us: Vec<f64>,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds.max(1e-9)
    }
}

/// Connection after connection from `netns` to `target` for `duration`.
pub fn run(netns: &NetNs, target: SocketAddrV4, duration: Duration) -> Result<Run> {
    netns.run(move || {
        let addr = SocketAddr::V4(target);
        let mut out = Run::default();
        let started = Instant::now();
        while started.elapsed() < duration && !signals::stopped() {
            let t0 = Instant::now();
            match transaction(&addr) {
                Ok(()) => {
                    out.ok += 1;
                    out.latencies_us.push(t0.elapsed().as_secs_f64() * 1e6);
                }
                Err(_) => out.errors += 1,
            }
        }
        out.seconds = started.elapsed().as_secs_f64();
        out
    })
}

fn transaction(addr: &SocketAddr) -> std::io::Result<()> {
    let mut conn = TcpStream::connect_timeout(addr, Duration::from_secs(1))?;
    conn.set_read_timeout(Some(Duration::from_secs(1)))?;
    conn.set_nodelay(true)?;
    conn.write_all(b"x\n")?;
    let mut buf = [0u8; 8];
    let n = conn.read(&mut buf)?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a properly sized option value.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    Ok(())
}

//! The attacker: small UDP datagrams from one pod to a port the victim's
//! policy denies, from a thread of this process. Every datagram reaches the
//! victim's `cil_to_container` as a new flow (a denied flow gets no
//! conntrack entry) and is dropped there, with a policy-verdict and a drop
//! event into the ring.
//!
//! The socket is created inside the attacker's namespace and keeps it, so
//! the sending loop runs on an ordinary thread. It is connected once: one
//! source port, so on the attacker's own side the flow is established after
//! the first datagram and only the victim's side reports events.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use testbed::NetNs;

use testbed::bench::procstat;

/// The smallest useful datagram: a 60-byte frame on the wire.
const PAYLOAD: [u8; 18] = *b"cilium-bench-flood";
/// How often a paced sender catches up with its schedule.
const PACE_TICK: Duration = Duration::from_micros(200);

/// How the flood sends.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Datagrams per second; `None` = as fast as one thread can.
    pub per_second: Option<u64>,
    /// Stop after this many datagrams; `None` = until dropped.
    pub count: Option<u64>,
}

/// A running flood; stops (and joins its thread) on drop.
pub struct Flood {
    sent: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    tid: Arc<AtomicI32>,
    done: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl Flood {
    pub fn start(attacker: &NetNs, target: SocketAddr, shape: Shape) -> Result<Flood> {
        let socket = attacker
            .run(move || -> std::io::Result<UdpSocket> {
                let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                socket.connect(target)?;
                Ok(socket)
            })?
            .with_context(|| format!("cannot open a UDP socket to {target} in the attacker pod"))?;
        let sent = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let tid = Arc::new(AtomicI32::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (sent, errors, tid, done, stop) = (
                sent.clone(),
                errors.clone(),
                tid.clone(),
                done.clone(),
                stop.clone(),
            );
            std::thread::Builder::new()
                .name("flood".into())
                .spawn(move || {
                    // SAFETY: gettid has no preconditions.
                    tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
                    send_loop(&socket, shape, &sent, &errors, &stop);
                    done.store(true, Ordering::Relaxed);
                })
                .context("cannot start the flood thread")?
        };
        Ok(Flood {
            sent,
            errors,
            tid,
            done,
            stop,
            worker: Some(worker),
        })
    }

    /// Datagrams handed to the kernel so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Sends the kernel refused (ENOBUFS and the like).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// CPU seconds of the sending thread (the kernel's send path, and the
    /// BPF programs run on the way, included when they run in its context).
    pub fn cpu_seconds(&self) -> f64 {
        match self.tid.load(Ordering::Relaxed) {
            0 => 0.0,
            tid => procstat::own_thread_cpu_seconds(tid).unwrap_or(0.0),
        }
    }

    /// Waits until a counted flood has sent everything.
    pub fn wait_done(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.done.load(Ordering::Relaxed) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

fn send_loop(
    socket: &UdpSocket,
    shape: Shape,
    sent: &AtomicU64,
    errors: &AtomicU64,
    stop: &AtomicBool,
) {
    let started = Instant::now();
    let limit = shape.count.unwrap_or(u64::MAX);
    let mut n = 0u64;
    while n < limit && !stop.load(Ordering::Relaxed) {
        // Up to the schedule (paced), or a batch between looks at `stop`.
        let due = match shape.per_second {
            Some(rate) => ((rate as f64 * started.elapsed().as_secs_f64()) as u64).min(limit),
            None => (n + 256).min(limit),
        };
        while n < due {
            if socket.send(&PAYLOAD).is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            n += 1;
        }
        sent.store(n, Ordering::Relaxed);
        if shape.per_second.is_some() {
            std::thread::sleep(PACE_TICK);
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

//! Backends that say who they are: every request line (TCP) or datagram
//! (UDP) is answered with the pod's name, so a test knows which backend a
//! connection reached, round after round on the same connection.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use testbed::Pod;

/// How often serving loops look at their stop flag.
const POLL: Duration = Duration::from_millis(20);

/// TCP on `0.0.0.0:port` in a pod: one thread per connection answering
/// each line with the pod's name. Stops (and closes every connection) on drop.
pub struct NamedTcpServer {
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl NamedTcpServer {
    pub fn start(pod: &Pod, port: u16) -> Result<NamedTcpServer> {
        let listener = pod
            .namespace()
            .run(move || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))?
            .with_context(|| format!("pod {}: cannot listen on TCP {port}", pod.name()))?;
        listener.set_nonblocking(true)?;
        let name = format!("{}\n", pod.name());
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut conns = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            let (name, stop) = (name.clone(), stop.clone());
                            conns.push(std::thread::spawn(move || serve(conn, &name, &stop)));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                        Err(_) => std::thread::sleep(POLL),
                    }
                    conns.retain(|c: &JoinHandle<()>| !c.is_finished());
                }
                for c in conns {
                    let _ = c.join();
                }
            })
        };
        Ok(NamedTcpServer {
            accepted,
            stop,
            worker: Some(worker),
        })
    }

    /// Connections accepted so far (a connection dropped by policy never
    /// gets here).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

fn serve(conn: TcpStream, name: &str, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(POLL));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) if line.ends_with('\n') => {
                line.clear();
                if writer.write_all(name.as_bytes()).is_err() {
                    return;
                }
            }
            // A partial line stays in `line` until the rest arrives.
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

impl Drop for NamedTcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// UDP on `0.0.0.0:port` in a pod answering every datagram with the pod's
/// name. Stops on drop.
pub struct NamedUdpServer {
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl NamedUdpServer {
    pub fn start(pod: &Pod, port: u16) -> Result<NamedUdpServer> {
        let socket = pod
            .namespace()
            .run(move || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)))?
            .with_context(|| format!("pod {}: cannot bind UDP {port}", pod.name()))?;
        socket.set_read_timeout(Some(POLL))?;
        let name = pod.name().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = socket.recv_from(&mut buf) {
                        let _ = socket.send_to(name.as_bytes(), from);
                    }
                }
            })
        };
        Ok(NamedUdpServer {
            stop,
            worker: Some(worker),
        })
    }
}

impl Drop for NamedUdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

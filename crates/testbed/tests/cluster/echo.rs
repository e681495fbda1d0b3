//! Echo traffic across nodes: a greeting-then-echo server, a bulk transfer
//! (full-size packets through the overlay) and a long-lived chatty
//! connection counting failed round trips.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use testbed::cluster::ClusterPod;

/// An echo server in the pod: every connection gets a greeting line (what
/// `tcp_connect` waits for), then its lines back.
pub fn serve_echo(pod: &ClusterPod, port: u16) {
    let listener = pod
        .namespace()
        .run(move || TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap())
        .unwrap();
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                if conn.write_all(b"echo\n").is_err() {
                    return;
                }
                let mut line = String::new();
                while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                    if conn.write_all(line.as_bytes()).is_err() {
                        break;
                    }
                    line.clear();
                }
            });
        }
    });
}

/// Sends 256 KiB through the echo server and checks it comes back: full
/// 1500-byte pod packets must fit the underlay once VXLAN wraps them.
pub fn bulk_echo(from: &ClusterPod, to: Ipv4Addr, port: u16) -> Result<(), String> {
    let conn = from
        .namespace()
        .run(move || TcpStream::connect_timeout(&(to, port).into(), Duration::from_secs(2)))
        .unwrap()
        .map_err(|e| format!("connect: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut greeting = String::new();
    reader
        .read_line(&mut greeting)
        .map_err(|e| format!("greeting: {e}"))?;
    let payload: String = (0..256 * 1024)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let line = payload + "\n";
    let writer = {
        let mut conn = conn.try_clone().unwrap();
        let line = line.clone();
        thread::spawn(move || conn.write_all(line.as_bytes()))
    };
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .map_err(|e| format!("reading the echo: {e} after {} bytes", answer.len()))?;
    writer.join().unwrap().map_err(|e| format!("write: {e}"))?;
    if answer != line {
        return Err(format!(
            "echo differs: {} bytes back of {}",
            answer.len(),
            line.len()
        ));
    }
    Ok(())
}

/// A long-lived connection exchanging a line every 20 ms, counting
/// round trips that failed. Stops on drop.
pub struct Chatter {
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl Chatter {
    pub fn start(from: &ClusterPod, to: Ipv4Addr, port: u16) -> Chatter {
        let conn = from
            .namespace()
            .run(move || TcpStream::connect_timeout(&(to, port).into(), Duration::from_secs(2)))
            .unwrap()
            .unwrap_or_else(|e| {
                panic!(
                    "{} cannot open a connection to {to}:{port}: {e}",
                    from.name()
                )
            });
        conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (ok, failed, stop) = (ok.clone(), failed.clone(), stop.clone());
            thread::spawn(move || chat(conn, &ok, &failed, &stop))
        };
        Chatter {
            ok,
            failed,
            stop,
            worker: Some(worker),
        }
    }

    pub fn ok(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }
}

fn chat(conn: TcpStream, ok: &AtomicUsize, failed: &AtomicUsize, stop: &AtomicBool) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    let mut greeting = String::new();
    if reader.read_line(&mut greeting).is_err() {
        failed.fetch_add(1, Ordering::Relaxed);
    }
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let msg = format!("ping {n}\n");
        let mut answer = String::new();
        let echoed = conn.write_all(msg.as_bytes()).is_ok()
            && reader.read_line(&mut answer).is_ok()
            && answer == msg;
        if echoed { ok } else { failed }.fetch_add(1, Ordering::Relaxed);
        thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Chatter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

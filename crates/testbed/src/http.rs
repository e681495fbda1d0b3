//! A small HTTP/1.1 origin server inside a pod: every request (any method,
//! any path) gets `200 OK` with the body `<name> <METHOD> <path>\n`, on
//! keep-alive connections. Enough to tell from a client's side whether a
//! request reached the application, and what it looked like when it did.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::netns::NetNs;

const POLL: Duration = Duration::from_millis(5);
/// Longest request head or body the server reads.
const MAX_LEN: usize = 1 << 20;

pub struct HttpServer {
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn start(netns: &NetNs, port: u16, name: &str) -> Result<HttpServer> {
        let listener = netns
            // [::] serves both families where the pod has IPv6.
            .run(move || {
                TcpListener::bind((Ipv6Addr::UNSPECIFIED, port))
                    .or_else(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))
            })?
            .with_context(|| format!("cannot listen on TCP {port} in netns {}", netns.name()))?;
        listener.set_nonblocking(true)?;
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (requests, stop, name) = (requests.clone(), stop.clone(), name.to_string());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (requests, name) = (requests.clone(), name.clone());
                            std::thread::spawn(move || serve(conn, &name, &requests));
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
            })
        };
        Ok(HttpServer {
            requests,
            stop,
            worker: Some(worker),
        })
    }

    /// Requests that reached the server so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Answers requests on one connection until the client closes it.
fn serve(conn: TcpStream, name: &str, requests: &AtomicUsize) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let Some((method, path, body_len, close)) = read_head(&mut reader) else {
            return;
        };
        let mut body = vec![0; body_len.min(MAX_LEN)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.fetch_add(1, Ordering::Relaxed);
        let text = format!("{name} {method} {path}\n");
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(response.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// Method, target, Content-Length and whether the client asked to close.
fn read_head(reader: &mut impl BufRead) -> Option<(String, String, usize, bool)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let (mut body_len, mut close, mut total) = (0, false, line.len());
    loop {
        let mut header = String::new();
        total += reader.read_line(&mut header).ok()?;
        if total > MAX_LEN {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            return Some((method, path, body_len, close));
        }
        let (key, value) = header.split_once(':')?;
        match key.trim().to_ascii_lowercase().as_str() {
            "content-length" => body_len = value.trim().parse().ok()?,
            "connection" => close = value.trim().eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
}

//! The responder peers probe: a tiny HTTP/1.1 server whose only page is
//! `GET /hello`. The agent runs it on the node's health port, and
//! `cilium-health responder` runs it inside a health endpoint's namespace.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Cilium's `--cluster-health-port`.
pub const DEFAULT_PORT: u16 = 4240;
pub const HELLO_PATH: &str = "/hello";

/// A request head larger than this is refused.
const MAX_HEAD: usize = 8 * 1024;
/// A client gets this long to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections served at once; more are closed right away, so a flood
/// cannot exhaust the host's threads.
const MAX_CONNECTIONS: usize = 64;

/// A listener on every address of both families (`[::]`, which takes
/// IPv4 too unless the host set bindv6only); IPv4 alone where the kernel
/// has no IPv6.
pub fn listen_all(port: u16) -> io::Result<TcpListener> {
    match TcpListener::bind((std::net::Ipv6Addr::UNSPECIFIED, port)) {
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port))
        }
        other => other,
    }
}

/// Serves connections until accepting fails for good (the listener was
/// closed); one short-lived thread per connection.
pub fn serve(listener: TcpListener) -> io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if is_transient(&e) => continue,
            Err(e) => return Err(e),
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            continue; // dropped: closed
        }
        let active = active.clone();
        let spawned = std::thread::Builder::new()
            .name("health-responder".into())
            .spawn(move || {
                let _ = handle(stream);
                active.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            // The closure (and its count) was dropped with the error.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::WouldBlock
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn handle(mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, reason, body) = answer(&head);
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// The answer to a request head: (status, reason, body).
pub fn answer(head: &[u8]) -> (u16, &'static str, &'static str) {
    let text = String::from_utf8_lossy(head);
    let mut parts = text.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (parts.next(), parts.next());
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    match (method, path) {
        (Some("GET" | "HEAD"), Some(HELLO_PATH)) => (200, "OK", "hello\n"),
        (Some(_), Some(HELLO_PATH)) => (405, "Method Not Allowed", "only GET /hello\n"),
        (Some(_), Some(_)) => (404, "Not Found", "only GET /hello\n"),
        _ => (400, "Bad Request", "not an HTTP request\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hello_is_served() {
        assert_eq!(answer(b"GET /hello HTTP/1.1\r\n\r\n").0, 200);
        assert_eq!(answer(b"GET /hello?x=1 HTTP/1.1\r\n\r\n").0, 200);
        assert_eq!(answer(b"POST /hello HTTP/1.1\r\n\r\n").0, 405);
        assert_eq!(answer(b"GET / HTTP/1.1\r\n\r\n").0, 404);
        assert_eq!(answer(b"").0, 400);
    }

    #[test]
    fn the_http_probe_succeeds_against_the_responder() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || serve(listener));
        let rtt = crate::http_probe::hello(
            std::net::Ipv4Addr::LOCALHOST.into(),
            port,
            Duration::from_secs(2),
        )
        .unwrap();
        assert!(rtt < Duration::from_secs(2));
    }

    #[test]
    fn the_http_probe_reports_a_closed_port() {
        // Bind then drop: the port is (almost certainly) closed now.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = crate::http_probe::hello(
            std::net::Ipv4Addr::LOCALHOST.into(),
            port,
            Duration::from_secs(2),
        )
        .unwrap_err();
        assert!(err.to_string().contains("connect 127.0.0.1:"), "{err}");
    }
}

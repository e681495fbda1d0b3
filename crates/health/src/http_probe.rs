//! The HTTP probe: a TCP connection to the peer's health port and
//! `GET /hello`, which only a live responder answers with 200. It proves
//! more than the ICMP echo: the path carries TCP and the peer's agent (or
//! health endpoint) is up.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::error::ProbeError;
use crate::responder::HELLO_PATH;

/// Longest status line we wait for.
const MAX_STATUS_LINE: usize = 1024;

/// The time from the connection attempt to the response's status line.
pub fn hello(ip: IpAddr, port: u16, timeout: Duration) -> Result<Duration, ProbeError> {
    let addr = SocketAddr::from((ip, port));
    let started = Instant::now();
    let deadline = started + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|error| {
        if error.kind() == std::io::ErrorKind::TimedOut {
            ProbeError::Timeout(timeout)
        } else {
            ProbeError::Connect { addr, error }
        }
    })?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let io = |what: &str| {
        let what = format!("{what} http://{addr}{HELLO_PATH}");
        move |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                ProbeError::Timeout(timeout)
            }
            _ => ProbeError::io(what, e),
        }
    };
    stream
        .set_write_timeout(Some(left()))
        .map_err(io("sending"))?;
    let request =
        format!("GET {HELLO_PATH} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: cilium-health\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(io("sending"))?;
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < MAX_STATUS_LINE {
        stream
            .set_read_timeout(Some(left()))
            .map_err(io("reading"))?;
        let n = stream.read(&mut buf).map_err(io("reading"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let status_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    if status_code(&status_line) == Some(200) {
        Ok(started.elapsed())
    } else {
        Err(ProbeError::BadAnswer {
            addr,
            path: HELLO_PATH,
            status_line,
        })
    }
}

/// The code of an `HTTP/1.x NNN reason` status line.
fn status_code(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        assert_eq!(status_code("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status_code("HTTP/1.0 404 Not Found"), Some(404));
        assert_eq!(status_code("SSH-2.0-OpenSSH"), None);
        assert_eq!(status_code(""), None);
    }
}

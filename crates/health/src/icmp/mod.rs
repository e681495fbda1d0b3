//! An ICMP echo over a raw socket (needs CAP_NET_RAW): one request, then
//! wait for the reply carrying our id and sequence, or an ICMP error
//! quoting our request, or the deadline. IPv4 addresses get ICMP, IPv6
//! ones ICMPv6.

pub mod packet;
pub mod v6;

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use crate::error::ProbeError;
use packet::Answer;

/// `SOL_RAW` / `ICMP_FILTER` from linux/icmp.h: a mask of ICMP types the
/// socket should not receive.
const SOL_RAW: libc::c_int = 255;
const ICMP_FILTER: libc::c_int = 1;

const PAYLOAD: &[u8] = b"cilium-health probe";

/// Every probe of this process gets its own id, so concurrent probes on
/// their own sockets (which all see every reply) cannot take each other's.
static NEXT_ID: AtomicU16 = AtomicU16::new(0);

/// Sends one echo request to `target`; the round-trip time of its reply.
pub fn ping(target: IpAddr, timeout: Duration) -> Result<Duration, ProbeError> {
    let id = (std::process::id() as u16).wrapping_add(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    match target {
        IpAddr::V4(ip) => ping4(ip, id, timeout),
        IpAddr::V6(ip) => v6::ping(ip, id, timeout),
    }
}

fn ping4(target: Ipv4Addr, id: u16, timeout: Duration) -> Result<Duration, ProbeError> {
    let seq = 1;
    let socket = raw_icmp_socket()?;
    let request = packet::echo_request(id, seq, PAYLOAD);
    let send = |socket: &OwnedFd| send_to(socket, &request, target);
    exchange(
        &socket,
        "ICMP",
        target.into(),
        timeout,
        send,
        |socket, buf| {
            let n = recv(socket, buf)?;
            Ok(match packet::match_answer(&buf[..n], target, id, seq) {
                Some(Answer::Reply) => Heard::Reply,
                Some(Answer::Error {
                    icmp_type,
                    code,
                    from,
                }) => Heard::Error(ProbeError::IcmpError {
                    kind: packet::describe_error(icmp_type, code),
                    icmp_type,
                    code,
                    from: from.into(),
                }),
                None => Heard::Other,
            })
        },
    )
}

/// What one message received on a probe's socket says about its request.
enum Heard {
    Reply,
    /// An ICMP error quoting the request.
    Error(ProbeError),
    /// Someone else's traffic.
    Other,
}

/// One echo exchange on a raw `socket` of `family` ("ICMP", "ICMPv6"):
/// `send` the request to `target`, then `receive` messages until one is
/// the reply (its round-trip time) or an error about the request, or the
/// deadline passes.
fn exchange(
    socket: &OwnedFd,
    family: &str,
    target: IpAddr,
    timeout: Duration,
    send: impl FnOnce(&OwnedFd) -> io::Result<()>,
    mut receive: impl FnMut(&OwnedFd, &mut [u8]) -> io::Result<Heard>,
) -> Result<Duration, ProbeError> {
    let started = Instant::now();
    send(socket).map_err(|e| ProbeError::io(format!("sending an {family} echo to {target}"), e))?;
    let deadline = started + timeout;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !wait_readable(socket, left)? {
            return Err(ProbeError::Timeout(timeout));
        }
        match receive(socket, &mut buf) {
            Ok(Heard::Reply) => return Ok(started.elapsed()),
            Ok(Heard::Error(error)) => return Err(error),
            Ok(Heard::Other) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => return Err(ProbeError::io(format!("receiving {family}"), e)),
        }
    }
}

fn raw_icmp_socket() -> Result<OwnedFd, ProbeError> {
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::IPPROTO_ICMP,
        )
    };
    if fd < 0 {
        return Err(ProbeError::io(
            "opening a raw ICMP socket (needs CAP_NET_RAW)",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // Only echo replies and the errors that can quote our request; the
    // rest of the host's ICMP traffic stays out of this socket. Best
    // effort: matching filters what the kernel lets through anyway.
    let blocked: u32 = !((1 << packet::ECHO_REPLY)
        | (1 << packet::DEST_UNREACHABLE)
        | (1 << packet::TIME_EXCEEDED));
    // SAFETY: the option value is a u32 that lives across the call.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            SOL_RAW,
            ICMP_FILTER,
            (&blocked as *const u32).cast(),
            mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    Ok(socket)
}

fn send_to(socket: &OwnedFd, packet: &[u8], target: Ipv4Addr) -> io::Result<()> {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(target.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: packet and addr are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&addr as *const libc::sockaddr_in).cast(),
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn recv(socket: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of its length.
    let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Whether the socket became readable within `timeout`.
fn wait_readable(socket: &OwnedFd, timeout: Duration) -> Result<bool, ProbeError> {
    let mut fds = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Round up, so a sub-millisecond remainder still waits.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut fds, 1, ms) };
    match ready {
        n if n > 0 => Ok(true),
        0 => Ok(false),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(true) // the caller's loop re-checks the deadline
            } else {
                Err(ProbeError::io("waiting for ICMP", e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn pings_loopback_when_allowed_raw_sockets() {
        if !is_root() {
            eprintln!("skipped: raw ICMP sockets need root");
            return;
        }
        let localhost = IpAddr::from(Ipv4Addr::LOCALHOST);
        let rtt = ping(localhost, Duration::from_secs(2)).unwrap();
        assert!(rtt < Duration::from_secs(2));
        // Many probes at once each get their own reply.
        let all: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| ping(localhost, Duration::from_secs(2))))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(all.iter().all(Result::is_ok), "{all:?}");
    }
}

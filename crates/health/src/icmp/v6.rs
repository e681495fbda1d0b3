//! ICMPv6 echo over a raw ICMPv6 socket: the kernel fills in the checksum
//! (it covers the IPv6 pseudo-header, which only the kernel knows) and
//! delivers ICMPv6 messages without their IPv6 header, the sender in the
//! socket address instead.

use std::io;
use std::mem;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::packet::{echo_ids, echo_message};
use super::Heard;
use crate::error::ProbeError;

pub const DEST_UNREACHABLE: u8 = 1;
pub const TIME_EXCEEDED: u8 = 3;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;

const ICMP_HEADER_LEN: usize = 8;
const IPV6_HEADER_LEN: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;

/// What a received ICMPv6 message says about our echo request to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Reply,
    Error { icmp_type: u8, code: u8 },
}

/// An echo request; its checksum is left to the kernel.
pub fn echo_request(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    echo_message(ECHO_REQUEST, id, seq, payload)
}

/// Matches an ICMPv6 message from `from` against our request to `target`.
pub fn match_answer(
    message: &[u8],
    from: Ipv6Addr,
    target: Ipv6Addr,
    id: u16,
    seq: u16,
) -> Option<Answer> {
    if message.len() < ICMP_HEADER_LEN {
        return None;
    }
    let (icmp_type, code) = (message[0], message[1]);
    match icmp_type {
        ECHO_REPLY => (from == target && echo_ids(message) == (id, seq)).then_some(Answer::Reply),
        DEST_UNREACHABLE | TIME_EXCEEDED => {
            // The error quotes as much of our request as fits: its IPv6
            // header, then (no extension headers from us) the echo request.
            let quoted = &message[ICMP_HEADER_LEN..];
            if quoted.len() < IPV6_HEADER_LEN + ICMP_HEADER_LEN
                || quoted[0] >> 4 != 6
                || quoted[6] != NEXT_HEADER_ICMPV6
            {
                return None;
            }
            let dst: [u8; 16] = quoted[24..40].try_into().ok()?;
            let request = &quoted[IPV6_HEADER_LEN..];
            let ours = Ipv6Addr::from(dst) == target
                && request[0] == ECHO_REQUEST
                && echo_ids(request) == (id, seq);
            ours.then_some(Answer::Error { icmp_type, code })
        }
        _ => None,
    }
}

/// A human name for an ICMPv6 error (RFC 4443).
pub fn describe_error(icmp_type: u8, code: u8) -> &'static str {
    match (icmp_type, code) {
        (DEST_UNREACHABLE, 0) => "no route to destination",
        (DEST_UNREACHABLE, 1) => "administratively prohibited",
        (DEST_UNREACHABLE, 3) => "address unreachable",
        (DEST_UNREACHABLE, 4) => "port unreachable",
        (DEST_UNREACHABLE, _) => "destination unreachable",
        (TIME_EXCEEDED, _) => "hop limit exceeded",
        _ => "ICMPv6 error",
    }
}

/// Sends one echo request to `target`; the round-trip time of its reply.
pub fn ping(target: Ipv6Addr, id: u16, timeout: Duration) -> Result<Duration, ProbeError> {
    let seq = 1;
    let socket = raw_icmpv6_socket()?;
    let request = echo_request(id, seq, super::PAYLOAD);
    let send = |socket: &OwnedFd| send_to(socket, &request, target);
    super::exchange(
        &socket,
        "ICMPv6",
        target.into(),
        timeout,
        send,
        |socket, buf| {
            let (n, from) = recv_from(socket, buf)?;
            Ok(match match_answer(&buf[..n], from, target, id, seq) {
                Some(Answer::Reply) => Heard::Reply,
                Some(Answer::Error { icmp_type, code }) => Heard::Error(ProbeError::IcmpError {
                    kind: describe_error(icmp_type, code),
                    icmp_type,
                    code,
                    from: from.into(),
                }),
                None => Heard::Other,
            })
        },
    )
}

fn raw_icmpv6_socket() -> Result<OwnedFd, ProbeError> {
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::IPPROTO_ICMPV6,
        )
    };
    if fd < 0 {
        return Err(ProbeError::io(
            "opening a raw ICMPv6 socket (needs CAP_NET_RAW)",
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr(target: Ipv6Addr) -> libc::sockaddr_in6 {
    // SAFETY: an all-zero sockaddr_in6 is valid; the fields follow.
    let mut addr: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    addr.sin6_addr.s6_addr = target.octets();
    addr
}

fn send_to(socket: &OwnedFd, packet: &[u8], target: Ipv6Addr) -> io::Result<()> {
    let addr = sockaddr(target);
    // SAFETY: packet and addr are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&addr as *const libc::sockaddr_in6).cast(),
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn recv_from(socket: &OwnedFd, buf: &mut [u8]) -> io::Result<(usize, Ipv6Addr)> {
    let mut from = sockaddr(Ipv6Addr::UNSPECIFIED);
    let mut len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: buf and from are valid for writes of their lengths.
    let n = unsafe {
        libc::recvfrom(
            socket.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut from as *mut libc::sockaddr_in6).cast(),
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((n as usize, Ipv6Addr::from(from.sin6_addr.s6_addr)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x12);
    const ME: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);

    fn reply_to(request: &[u8]) -> Vec<u8> {
        let mut reply = request.to_vec();
        reply[0] = ECHO_REPLY;
        reply
    }

    fn ipv6_header(src: Ipv6Addr, dst: Ipv6Addr, payload_len: u16) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&payload_len.to_be_bytes());
        h.extend_from_slice(&[NEXT_HEADER_ICMPV6, 64]);
        h.extend_from_slice(&src.octets());
        h.extend_from_slice(&dst.octets());
        h
    }

    #[test]
    fn matches_only_our_reply_from_the_target() {
        let request = echo_request(42, 1, b"cilium-health");
        let reply = reply_to(&request);
        assert_eq!(
            match_answer(&reply, TARGET, TARGET, 42, 1),
            Some(Answer::Reply)
        );
        assert_eq!(match_answer(&reply, TARGET, TARGET, 43, 1), None);
        assert_eq!(
            match_answer(&reply, ME, TARGET, 42, 1),
            None,
            "other source"
        );
        assert_eq!(match_answer(&request, TARGET, TARGET, 42, 1), None);
        assert_eq!(match_answer(&reply[..4], TARGET, TARGET, 42, 1), None);
    }

    #[test]
    fn recognises_an_error_quoting_our_request() {
        let request = echo_request(42, 1, b"cilium-health");
        let mut error = vec![DEST_UNREACHABLE, 3, 0, 0, 0, 0, 0, 0];
        error.extend(ipv6_header(ME, TARGET, request.len() as u16));
        error.extend_from_slice(&request);
        let router = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
        assert_eq!(
            match_answer(&error, router, TARGET, 42, 1),
            Some(Answer::Error {
                icmp_type: DEST_UNREACHABLE,
                code: 3
            })
        );
        assert_eq!(
            match_answer(&error, router, ME, 42, 1),
            None,
            "other target"
        );
        assert_eq!(match_answer(&error, router, TARGET, 42, 2), None);
        assert_eq!(describe_error(DEST_UNREACHABLE, 3), "address unreachable");
    }

    #[test]
    fn pings_ipv6_loopback_when_allowed_raw_sockets() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: raw ICMPv6 sockets need root");
            return;
        }
        match ping(Ipv6Addr::LOCALHOST, 4242, Duration::from_secs(2)) {
            Ok(rtt) => assert!(rtt < Duration::from_secs(2)),
            // A namespace without IPv6 on lo cannot send at all.
            Err(ProbeError::Io { error, .. })
                if error.raw_os_error() == Some(libc::EADDRNOTAVAIL)
                    || error.raw_os_error() == Some(libc::ENETUNREACH) =>
            {
                eprintln!("skipped: no IPv6 loopback here");
            }
            Err(e) => panic!("{e}"),
        }
    }
}

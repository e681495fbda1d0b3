//! The sockets of a DNS redirect besides its TCP listener: the UDP socket
//! queries arrive on, and the way answers leave it.
//!
//! Transparent mode: the UDP socket is `IP_TRANSPARENT` on 0.0.0.0:port with
//! `IP_RECVORIGDSTADDR`, so each datagram the datapath assigns to it
//! (`bpf_sk_assign`) comes with the address the pod sent it to. Answers must
//! come from that address, port included, without binding it (the server
//! may be local, and many answers leave from one address at once): they go
//! out of a raw UDP socket, `IP_TRANSPARENT`, with the source address in
//! `IP_PKTINFO` and the UDP header written here, as Cilium's DNS proxy does.
//!
//! Fixed-upstream mode (TESTS/DEBUG ONLY, as for the other parsers): UDP on
//! 127.0.0.1:port, answers sent from that socket, every query forwarded to
//! the configured address.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};

use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::listener::ListenMode;

/// Largest datagram taken (and the largest a server may answer with).
pub const MAX_DATAGRAM: usize = 65535;

/// Binds the redirect's UDP socket for `port` in `mode`.
pub fn bind_udp(port: u16, mode: ListenMode) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    let ip = match mode {
        ListenMode::Transparent => {
            socket.set_ip_transparent_v4(true)?;
            set_int_option(&socket, libc::SOL_IP, libc::IP_RECVORIGDSTADDR, 1)?;
            Ipv4Addr::UNSPECIFIED
        }
        ListenMode::FixedUpstream(_) => Ipv4Addr::LOCALHOST,
    };
    socket.bind(&SockAddr::from(SocketAddr::from((ip, port))))?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

fn set_int_option(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to a c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One datagram: its length, sender, and where it was sent to
/// (`IP_ORIGDSTADDR`, present on transparent sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    pub len: usize,
    pub source: SocketAddrV4,
    pub original_dst: Option<SocketAddrV4>,
}

/// Receives one datagram into `buf` with its original destination.
pub async fn recv(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Datagram> {
    socket
        .async_io(Interest::READABLE, || recvmsg(socket.as_raw_fd(), buf))
        .await
}

fn recvmsg(fd: libc::c_int, buf: &mut [u8]) -> io::Result<Datagram> {
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: all-zero is a valid sockaddr_in and msghdr.
    let mut source: libc::sockaddr_in = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut source as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 16]>() as _;
    // SAFETY: msg points at live buffers of the lengths it states.
    let len = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_TRUNC) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut original_dst = None;
    // SAFETY: the kernel filled msg_control up to msg_controllen; the CMSG
    // macros walk it within those bounds.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            if header.cmsg_level == libc::SOL_IP
                && header.cmsg_type == libc::IP_ORIGDSTADDR
                && header.cmsg_len as usize
                    >= libc::CMSG_LEN(size_of::<libc::sockaddr_in>() as u32) as usize
            {
                let addr: libc::sockaddr_in =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                original_dst = Some(v4(&addr));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Datagram {
        // MSG_TRUNC: the real length, so an oversized datagram is seen as one.
        len: len as usize,
        source: v4(&source),
        original_dst,
    })
}

fn v4(addr: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
        u16::from_be(addr.sin_port),
    )
}

/// Sends answers from any address and port (transparent mode).
#[derive(Debug)]
pub struct RawReplySocket {
    socket: Socket,
    /// The `SO_MARK` set now (0 = none).
    mark: AtomicU32,
}

impl RawReplySocket {
    pub fn open() -> io::Result<Self> {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP))?;
        socket.set_ip_transparent_v4(true)?;
        // A raw UDP socket gets a copy of every UDP datagram to its address:
        // bound to loopback and filtered to nothing, it gets none.
        socket.bind(&SockAddr::from(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))))?;
        socket.attach_filter(&[SockFilter::new(0x06, 0, 0, 0)])?;
        socket.set_nonblocking(true)?;
        Ok(RawReplySocket {
            socket,
            mark: AtomicU32::new(0),
        })
    }

    /// Sends `payload` as a UDP datagram from `from` to `to`. A full socket
    /// buffer drops the answer, as the network may.
    pub fn send(
        &self,
        from: SocketAddrV4,
        to: SocketAddrV4,
        payload: &[u8],
        mark: Option<u32>,
    ) -> io::Result<()> {
        let mark = mark.unwrap_or(0);
        if self.mark.swap(mark, Ordering::Relaxed) != mark {
            self.socket.set_mark(mark)?;
        }
        let datagram = udp_datagram(from, to, payload)?;
        let mut control = [0u64; 8];
        // SAFETY: all-zero is a valid in_pktinfo, sockaddr_in and msghdr.
        let mut pktinfo: libc::in_pktinfo = unsafe { zeroed() };
        pktinfo.ipi_spec_dst.s_addr = u32::from(*from.ip()).to_be();
        let mut dst: libc::sockaddr_in = unsafe { zeroed() };
        dst.sin_family = libc::AF_INET as libc::sa_family_t;
        dst.sin_addr.s_addr = u32::from(*to.ip()).to_be();
        let mut iov = libc::iovec {
            iov_base: datagram.as_ptr() as *mut libc::c_void,
            iov_len: datagram.len(),
        };
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&mut dst as *mut libc::sockaddr_in).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: the control buffer (64 bytes) holds one cmsghdr with an
        // in_pktinfo (CMSG_SPACE = 32 on 64-bit); msg points at live data.
        let sent = unsafe {
            let space = libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as usize;
            debug_assert!(space <= size_of::<[u64; 8]>());
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_IP;
            (*cmsg).cmsg_type = libc::IP_PKTINFO;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), pktinfo);
            libc::sendmsg(self.socket.as_raw_fd(), &msg, 0)
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The UDP header and payload, checksummed over the IPv4 pseudo-header.
pub fn udp_datagram(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> io::Result<Vec<u8>> {
    let len = u16::try_from(8 + payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "answer too large for UDP"))?;
    let mut datagram = Vec::with_capacity(usize::from(len));
    datagram.extend_from_slice(&from.port().to_be_bytes());
    datagram.extend_from_slice(&to.port().to_be_bytes());
    datagram.extend_from_slice(&len.to_be_bytes());
    datagram.extend_from_slice(&[0, 0]);
    datagram.extend_from_slice(payload);
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&from.ip().octets());
    add(&to.ip().octets());
    add(&[0, libc::IPPROTO_UDP as u8]);
    add(&len.to_be_bytes());
    add(&datagram);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // RFC 768: a computed zero is sent as all ones (zero means "none").
    let checksum = match !(sum as u16) {
        0 => 0xffff,
        checksum => checksum,
    };
    datagram[6..8].copy_from_slice(&checksum.to_be_bytes());
    Ok(datagram)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_checksums_verify() {
        let from: SocketAddrV4 = "192.0.2.53:53".parse().unwrap();
        let to: SocketAddrV4 = "10.0.0.7:40000".parse().unwrap();
        for payload in [&b"odd"[..], b"even", b""] {
            let datagram = udp_datagram(from, to, payload).unwrap();
            assert_eq!(datagram.len(), 8 + payload.len());
            assert_eq!(&datagram[0..2], &53u16.to_be_bytes());
            // Summing everything, checksum included, gives all ones.
            let mut sum: u32 = 0;
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&from.ip().octets());
            bytes.extend_from_slice(&to.ip().octets());
            bytes.extend_from_slice(&[0, 17]);
            bytes.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
            bytes.extend_from_slice(&datagram);
            for pair in bytes.chunks(2) {
                sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
            }
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            assert_eq!(sum, 0xffff);
        }
    }

    #[tokio::test]
    async fn fixed_mode_datagrams_report_their_sender() {
        let socket =
            bind_udp(0, ListenMode::FixedUpstream("127.0.0.1:1".parse().unwrap())).unwrap();
        let addr = socket.local_addr().unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"hello", addr).unwrap();
        let mut buf = [0u8; 64];
        let datagram = recv(&socket, &mut buf).await.unwrap();
        assert_eq!(&buf[..datagram.len], b"hello");
        assert_eq!(
            SocketAddr::V4(datagram.source),
            client.local_addr().unwrap()
        );
        assert_eq!(datagram.original_dst, None);
    }
}

//! The sockets of a DNS redirect besides its TCP listener: the UDP socket
//! queries arrive on, and the way answers leave it.
//!
//! Transparent mode: the UDP socket is `IP_TRANSPARENT` on 0.0.0.0:port with
//! `IP_RECVORIGDSTADDR` (and its IPv6 twin on [::]:port, IPv6 only, with
//! `IPV6_TRANSPARENT` and `IPV6_RECVORIGDSTADDR`), so each datagram the
//! datapath assigns to it (`bpf_sk_assign`) comes with the address the pod
//! sent it to. Answers must come from that address, port included, without
//! binding it (the server may be local, and many answers leave from one
//! address at once): they go out of a raw UDP socket of their family,
//! transparent, with the source address in `IP_PKTINFO` / `IPV6_PKTINFO` and
//! the UDP header written here, as Cilium's DNS proxy does.
//!
//! Fixed-upstream mode (TESTS/DEBUG ONLY, as for the other parsers): UDP on
//! 127.0.0.1:port, answers sent from that socket, every query forwarded to
//! the configured address.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};

use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::listener::{bind_socket_v4, bind_transparent_socket_v6, ListenMode};

/// Largest datagram taken (and the largest a server may answer with).
pub const MAX_DATAGRAM: usize = 65535;

/// Binds the redirect's UDP socket for `port` in `mode`.
pub fn bind_udp(port: u16, mode: ListenMode) -> io::Result<UdpSocket> {
    let socket = bind_socket_v4(Type::DGRAM, Protocol::UDP, port, mode, |socket| {
        set_int_option(socket, libc::SOL_IP, libc::IP_RECVORIGDSTADDR, 1)
    })?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// The IPv6 twin of a transparent UDP socket: `[::]:port`, IPv6 only.
/// `None` on a host without IPv6.
pub fn bind_udp_transparent_v6(port: u16) -> io::Result<Option<UdpSocket>> {
    let Some(socket) = bind_transparent_socket_v6(Type::DGRAM, Protocol::UDP, port, |socket| {
        set_int_option(socket, libc::SOL_IPV6, libc::IPV6_RECVORIGDSTADDR, 1)
    })?
    else {
        return Ok(None);
    };
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into()).map(Some)
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
/// (`IP_ORIGDSTADDR` / `IPV6_ORIGDSTADDR`, present on transparent sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    pub len: usize,
    pub source: SocketAddr,
    pub original_dst: Option<SocketAddr>,
}

/// Datagrams taken (or sent) per system call at most.
pub const BATCH: usize = 16;

/// Room for a batch of datagrams, `MAX_DATAGRAM` bytes each. Allocated
/// zeroed, so the pages of a slot no datagram ever filled are never
/// touched: a batch costs what its datagrams use.
pub struct RecvBatch {
    buf: Vec<u8>,
    got: Vec<Datagram>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            buf: vec![0; BATCH * MAX_DATAGRAM],
            got: Vec::with_capacity(BATCH),
        }
    }
}

impl RecvBatch {
    /// The datagrams of the last receive.
    pub fn datagrams(&self) -> &[Datagram] {
        &self.got
    }

    /// The bytes of datagram `index` (cut to `MAX_DATAGRAM`).
    pub fn bytes(&self, index: usize) -> &[u8] {
        &self.buf[self.slot(index)]
    }

    pub fn bytes_mut(&mut self, index: usize) -> &mut [u8] {
        let slot = self.slot(index);
        &mut self.buf[slot]
    }

    fn slot(&self, index: usize) -> std::ops::Range<usize> {
        let start = index * MAX_DATAGRAM;
        start..start + self.got[index].len.min(MAX_DATAGRAM)
    }
}

/// Receives up to `BATCH` datagrams (at least one) with their original
/// destinations; how many. A pending socket error (an ICMP port
/// unreachable on a connected socket) wakes it too, and is returned.
pub async fn recv_batch(socket: &UdpSocket, batch: &mut RecvBatch) -> io::Result<usize> {
    socket
        .async_io(Interest::READABLE | Interest::ERROR, || {
            recvmmsg(socket.as_raw_fd(), batch)
        })
        .await
}

fn recvmmsg(fd: libc::c_int, batch: &mut RecvBatch) -> io::Result<usize> {
    // u64s keep each control buffer aligned for cmsghdr.
    let mut controls = [[0u64; 16]; BATCH];
    // SAFETY: all-zero is a valid sockaddr_in6, iovec and mmsghdr.
    // (sockaddr_in6 holds a sockaddr_in too.)
    let mut sources: [libc::sockaddr_in6; BATCH] = unsafe { zeroed() };
    let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    for (i, slot) in batch.buf.chunks_mut(MAX_DATAGRAM).enumerate() {
        iovs[i] = libc::iovec {
            iov_base: slot.as_mut_ptr().cast(),
            iov_len: slot.len(),
        };
        let msg = &mut msgs[i].msg_hdr;
        msg.msg_name = (&mut sources[i] as *mut libc::sockaddr_in6).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        msg.msg_iov = &mut iovs[i];
        msg.msg_iovlen = 1;
        msg.msg_control = controls[i].as_mut_ptr().cast();
        msg.msg_controllen = size_of::<[u64; 16]>() as _;
    }
    // SAFETY: every header points at live buffers of the lengths it states.
    let got = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            BATCH as libc::c_uint,
            libc::MSG_TRUNC,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    batch.got.clear();
    for (msg, source) in msgs.iter().zip(&sources).take(got as usize) {
        // SAFETY: the kernel wrote a sockaddr of the socket's family.
        let Some(source) = (unsafe { socket_addr(source) }) else {
            continue;
        };
        batch.got.push(Datagram {
            // MSG_TRUNC: the real length, so an oversized datagram is seen
            // as one.
            len: msg.msg_len as usize,
            source,
            // SAFETY: the kernel filled this message's control buffer.
            original_dst: unsafe { original_dst(&msg.msg_hdr) },
        });
    }
    Ok(got as usize)
}

/// `IP_ORIGDSTADDR` or `IPV6_ORIGDSTADDR` from a received message's
/// control data.
///
/// # Safety
/// `msg` was filled by the kernel: `msg_control` holds `msg_controllen`
/// valid bytes.
unsafe fn original_dst(msg: &libc::msghdr) -> Option<SocketAddr> {
    let mut found = None;
    // SAFETY: the CMSG macros walk the control data within its length.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            let fits =
                |size: usize| header.cmsg_len as usize >= libc::CMSG_LEN(size as u32) as usize;
            if header.cmsg_level == libc::SOL_IP
                && header.cmsg_type == libc::IP_ORIGDSTADDR
                && fits(size_of::<libc::sockaddr_in>())
            {
                let addr: libc::sockaddr_in =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                found = Some(SocketAddr::V4(v4(&addr)));
            } else if header.cmsg_level == libc::SOL_IPV6
                && header.cmsg_type == libc::IPV6_ORIGDSTADDR
                && fits(size_of::<libc::sockaddr_in6>())
            {
                let addr: libc::sockaddr_in6 =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                found = Some(SocketAddr::V6(v6(&addr)));
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    found
}

/// The address in a `sockaddr_in6`-sized buffer the kernel filled with a
/// sockaddr of either family; `None` for another family.
///
/// # Safety
/// `addr` holds a sockaddr the kernel wrote (`sockaddr_in` or
/// `sockaddr_in6` by its family field).
unsafe fn socket_addr(addr: &libc::sockaddr_in6) -> Option<SocketAddr> {
    match i32::from(addr.sin6_family) {
        libc::AF_INET => {
            // SAFETY: a sockaddr_in fits in the buffer and is what it holds.
            let v4_addr: libc::sockaddr_in =
                unsafe { std::ptr::read_unaligned((addr as *const libc::sockaddr_in6).cast()) };
            Some(SocketAddr::V4(v4(&v4_addr)))
        }
        libc::AF_INET6 => Some(SocketAddr::V6(v6(addr))),
        _ => None,
    }
}

fn v4(addr: &libc::sockaddr_in) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
        u16::from_be(addr.sin_port),
    )
}

fn v6(addr: &libc::sockaddr_in6) -> SocketAddrV6 {
    SocketAddrV6::new(
        Ipv6Addr::from(addr.sin6_addr.s6_addr),
        u16::from_be(addr.sin6_port),
        addr.sin6_flowinfo,
        addr.sin6_scope_id,
    )
}

/// Sends answers from any address and port (transparent mode): a raw UDP
/// socket per family (IPv6 only where the host has it).
#[derive(Debug)]
pub struct RawReplySocket {
    v4: RawFamilySocket,
    v6: Option<RawFamilySocket>,
}

/// One family's raw UDP socket.
#[derive(Debug)]
struct RawFamilySocket {
    socket: Socket,
    /// The `SO_MARK` set now (0 = none).
    mark: AtomicU32,
}

impl RawFamilySocket {
    fn open(domain: Domain) -> io::Result<Self> {
        let socket = Socket::new(domain, Type::RAW, Some(Protocol::UDP))?;
        // A raw UDP socket gets a copy of every UDP datagram to its address:
        // bound to loopback and filtered to nothing, it gets none.
        let loopback = if domain == Domain::IPV6 {
            socket.set_ip_transparent_v6(true)?;
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            socket.set_ip_transparent_v4(true)?;
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        socket.bind(&SockAddr::from(SocketAddr::new(loopback, 0)))?;
        socket.attach_filter(&[SockFilter::new(0x06, 0, 0, 0)])?;
        socket.set_nonblocking(true)?;
        Ok(RawFamilySocket {
            socket,
            mark: AtomicU32::new(0),
        })
    }

    /// Sends `(from, to, payload)` datagrams, all of this socket's family.
    fn send_all(&self, replies: &[(SocketAddr, SocketAddr, &[u8])], mark: u32) -> io::Result<()> {
        if self.mark.swap(mark, Ordering::Relaxed) != mark {
            self.socket.set_mark(mark)?;
        }
        let mut first_error = None;
        for chunk in replies.chunks(BATCH) {
            let datagrams = chunk
                .iter()
                .map(|(from, to, payload)| udp_datagram(*from, *to, payload))
                .collect::<io::Result<Vec<_>>>()?;
            let mut controls = [[0u64; 8]; BATCH];
            // SAFETY: all-zero is a valid sockaddr_in6, iovec and mmsghdr.
            let mut dsts: [libc::sockaddr_in6; BATCH] = unsafe { zeroed() };
            let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
            for (i, ((from, to, _), datagram)) in chunk.iter().zip(&datagrams).enumerate() {
                iovs[i] = libc::iovec {
                    iov_base: datagram.as_ptr() as *mut libc::c_void,
                    iov_len: datagram.len(),
                };
                let msg = &mut msgs[i].msg_hdr;
                msg.msg_name = (&mut dsts[i] as *mut libc::sockaddr_in6).cast();
                msg.msg_iov = &mut iovs[i];
                msg.msg_iovlen = 1;
                msg.msg_control = controls[i].as_mut_ptr().cast();
                // SAFETY: the destination buffer holds either sockaddr, the
                // control buffer (64 bytes) one cmsghdr with either pktinfo
                // (CMSG_SPACE is 32 or 40 on 64-bit).
                unsafe { address_message(msg, &mut dsts[i], from.ip(), to.ip()) };
            }
            let failed = send_mmsg(self.socket.as_raw_fd(), &mut msgs[..chunk.len()]);
            if let Some((_, err)) = failed.into_iter().next() {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Points `msg` at `to` (written into `dst`) with `from` as the source
/// address in its control data (`IP_PKTINFO` / `IPV6_PKTINFO`).
///
/// # Safety
/// `msg.msg_control` points at 64 writable bytes aligned for cmsghdr.
unsafe fn address_message(
    msg: &mut libc::msghdr,
    dst: &mut libc::sockaddr_in6,
    from: IpAddr,
    to: IpAddr,
) {
    // SAFETY: the caller's control buffer holds one cmsghdr with its data.
    unsafe {
        match (from, to) {
            (IpAddr::V4(from), IpAddr::V4(to)) => {
                let sin = (dst as *mut libc::sockaddr_in6).cast::<libc::sockaddr_in>();
                (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sin).sin_addr.s_addr = u32::from(to).to_be();
                msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
                let mut pktinfo: libc::in_pktinfo = zeroed();
                pktinfo.ipi_spec_dst.s_addr = u32::from(from).to_be();
                msg.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as _;
                let cmsg = libc::CMSG_FIRSTHDR(msg);
                (*cmsg).cmsg_level = libc::SOL_IP;
                (*cmsg).cmsg_type = libc::IP_PKTINFO;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), pktinfo);
            }
            (from, to) => {
                let (IpAddr::V6(from), IpAddr::V6(to)) = (ipv6_of(from), ipv6_of(to)) else {
                    unreachable!("ipv6_of gives IPv6 addresses");
                };
                dst.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                dst.sin6_addr.s6_addr = to.octets();
                msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
                let mut pktinfo: libc::in6_pktinfo = zeroed();
                pktinfo.ipi6_addr.s6_addr = from.octets();
                msg.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as _;
                let cmsg = libc::CMSG_FIRSTHDR(msg);
                (*cmsg).cmsg_level = libc::SOL_IPV6;
                (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), pktinfo);
            }
        }
    }
}

fn ipv6_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

impl RawReplySocket {
    pub fn open() -> io::Result<Self> {
        let v6 = match RawFamilySocket::open(Domain::IPV6) {
            Ok(socket) => Some(socket),
            // A host without IPv6 has no IPv6 clients either.
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
                ) =>
            {
                None
            }
            Err(err) => return Err(err),
        };
        Ok(RawReplySocket {
            v4: RawFamilySocket::open(Domain::IPV4)?,
            v6,
        })
    }

    /// Sends each `(from, to, payload)` as a UDP datagram from `from` to
    /// `to`, with `mark`, in as few calls as the kernel takes (one batch
    /// per family). A full socket buffer drops the rest, as the network
    /// may; the first error is returned. A pair of mixed families is an
    /// error.
    pub fn send_all(
        &self,
        replies: &[(SocketAddr, SocketAddr, &[u8])],
        mark: Option<u32>,
    ) -> io::Result<()> {
        let mark = mark.unwrap_or(0);
        let (v4, v6): (Vec<_>, Vec<_>) = replies.iter().partition(|(from, _, _)| from.is_ipv4());
        if v4.iter().any(|(_, to, _)| !to.is_ipv4()) || v6.iter().any(|(_, to, _)| to.is_ipv4()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a DNS answer's addresses must be of one family",
            ));
        }
        let mut result = Ok(());
        if !v4.is_empty() {
            result = self.v4.send_all(&v4, mark);
        }
        if !v6.is_empty() {
            let sent = match &self.v6 {
                Some(socket) => socket.send_all(&v6, mark),
                None => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "no IPv6 on this host for an IPv6 answer",
                )),
            };
            result = result.and(sent);
        }
        result
    }
}

/// `sendmmsg` until every message went; the ones that did not, with why:
/// one the kernel refuses is skipped, a full socket buffer drops the rest
/// (`WouldBlock`).
pub fn send_mmsg(fd: libc::c_int, msgs: &mut [libc::mmsghdr]) -> Vec<(usize, io::Error)> {
    let mut failed = Vec::new();
    let mut sent = 0;
    while sent < msgs.len() {
        // SAFETY: the headers point at live buffers of the lengths they state.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                msgs[sent..].as_mut_ptr(),
                (msgs.len() - sent) as libc::c_uint,
                0,
            )
        };
        if n >= 0 {
            sent += n as usize;
            continue;
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            failed.extend((sent..msgs.len()).map(|i| (i, io::ErrorKind::WouldBlock.into())));
            break;
        }
        failed.push((sent, err));
        sent += 1;
    }
    failed
}

/// The UDP header and payload, checksummed over the pseudo-header of the
/// addresses' family (RFC 768 for IPv4, RFC 8200 section 8.1 for IPv6).
pub fn udp_datagram(from: SocketAddr, to: SocketAddr, payload: &[u8]) -> io::Result<Vec<u8>> {
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
    match (from.ip(), to.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            add(&src.octets());
            add(&dst.octets());
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            add(&src.octets());
            add(&dst.octets());
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "UDP addresses of two families",
            ))
        }
    }
    // Both pseudo-headers sum the same protocol and length words.
    add(&[0, libc::IPPROTO_UDP as u8]);
    add(&len.to_be_bytes());
    add(&datagram);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // RFC 768: a computed zero is sent as all ones (zero means "none", which
    // IPv6 does not even allow).
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

    /// The one's-complement sum of `bytes` as 16-bit words.
    fn ones_sum(bytes: &[u8]) -> u32 {
        let mut sum: u32 = bytes
            .chunks(2)
            .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum
    }

    #[test]
    fn udp_checksums_verify() {
        let from: SocketAddr = "192.0.2.53:53".parse().unwrap();
        let to: SocketAddr = "10.0.0.7:40000".parse().unwrap();
        for payload in [&b"odd"[..], b"even", b""] {
            let datagram = udp_datagram(from, to, payload).unwrap();
            assert_eq!(datagram.len(), 8 + payload.len());
            assert_eq!(&datagram[0..2], &53u16.to_be_bytes());
            // Summing everything, checksum included, gives all ones.
            let mut bytes = Vec::new();
            for ip in [from.ip(), to.ip()] {
                let IpAddr::V4(ip) = ip else { unreachable!() };
                bytes.extend_from_slice(&ip.octets());
            }
            bytes.extend_from_slice(&[0, 17]);
            bytes.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
            bytes.extend_from_slice(&datagram);
            assert_eq!(ones_sum(&bytes), 0xffff);
        }
    }

    #[test]
    fn udp_checksums_verify_over_the_ipv6_pseudo_header() {
        let from: SocketAddr = "[2001:db8::53]:53".parse().unwrap();
        let to: SocketAddr = "[f00d::a0a:0:0:7]:40000".parse().unwrap();
        for payload in [&b"odd"[..], b"even", b""] {
            let datagram = udp_datagram(from, to, payload).unwrap();
            // RFC 8200 8.1: source, destination, 32-bit length, 24 zero
            // bits and the next header.
            let mut bytes = Vec::new();
            for ip in [from.ip(), to.ip()] {
                let IpAddr::V6(ip) = ip else { unreachable!() };
                bytes.extend_from_slice(&ip.octets());
            }
            bytes.extend_from_slice(&(datagram.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, 17]);
            bytes.extend_from_slice(&datagram);
            assert_eq!(ones_sum(&bytes), 0xffff);
        }
        assert!(udp_datagram(from, "10.0.0.7:1".parse().unwrap(), b"x").is_err());
    }

    #[tokio::test]
    async fn fixed_mode_datagrams_report_their_sender() {
        let socket =
            bind_udp(0, ListenMode::FixedUpstream("127.0.0.1:1".parse().unwrap())).unwrap();
        let addr = socket.local_addr().unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"hello", addr).unwrap();
        client.send_to(b"world!", addr).unwrap();
        let mut batch = RecvBatch::default();
        let mut got = Vec::new();
        while got.len() < 2 {
            let n = recv_batch(&socket, &mut batch).await.unwrap();
            for i in 0..n {
                let datagram = batch.datagrams()[i];
                assert_eq!(datagram.source, client.local_addr().unwrap());
                assert_eq!(datagram.original_dst, None);
                got.push(batch.bytes_mut(i).to_vec());
            }
        }
        assert_eq!(got, [&b"hello"[..], b"world!"]);
    }
}

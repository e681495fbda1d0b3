//! Sockets: the redirect's listener and the upstream connection.
//!
//! Production listeners are transparent (`IP_TRANSPARENT` on 0.0.0.0:port,
//! and `IPV6_TRANSPARENT` on [::]:port, IPv6 only, beside it): the datapath
//! assigns them connections addressed to a pod, so the accepted socket's
//! local address *is* the original destination. The fixed-upstream
//! mode exists only for tests and debugging without a datapath: it listens on
//! 127.0.0.1 and sends every connection to one configured address.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// How a redirect's listener learns where a connection was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenMode {
    /// Datapath redirect: original destination = the accepted socket's local address.
    Transparent,
    /// Tests only: every connection goes to this address.
    FixedUpstream(SocketAddr),
}

/// Binds the listener for `port` in `mode`.
pub fn bind(port: u16, mode: ListenMode) -> io::Result<TcpListener> {
    listening(bind_socket_v4(
        Type::STREAM,
        Protocol::TCP,
        port,
        mode,
        |_| Ok(()),
    )?)
}

/// The IPv6 twin of a transparent listener: `[::]:port`, IPv6 only (the
/// IPv4 socket keeps IPv4, whose addresses stay plain IPv4 everywhere).
/// `None` on a host without IPv6.
pub fn bind_transparent_v6(port: u16) -> io::Result<Option<TcpListener>> {
    bind_transparent_socket_v6(Type::STREAM, Protocol::TCP, port, |_| Ok(()))?
        .map(listening)
        .transpose()
}

fn listening(socket: Socket) -> io::Result<TcpListener> {
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// An IPv4 socket bound to `port` as `mode` wants it: on 0.0.0.0 with
/// `IP_TRANSPARENT` (and the options `transparent` sets, before binding),
/// or on loopback for a fixed upstream. Shared by the TCP and UDP redirects.
pub(crate) fn bind_socket_v4(
    ty: Type,
    protocol: Protocol,
    port: u16,
    mode: ListenMode,
    transparent: impl FnOnce(&Socket) -> io::Result<()>,
) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, ty, Some(protocol))?;
    socket.set_reuse_address(true)?;
    let ip = match mode {
        ListenMode::Transparent => {
            socket.set_ip_transparent_v4(true)?;
            transparent(&socket)?;
            Ipv4Addr::UNSPECIFIED
        }
        ListenMode::FixedUpstream(_) => Ipv4Addr::LOCALHOST,
    };
    socket.bind(&SockAddr::from(SocketAddr::new(IpAddr::V4(ip), port)))?;
    Ok(socket)
}

/// The IPv6 twin of [`bind_socket_v4`] in transparent mode: `[::]:port`,
/// IPv6 only, `IPV6_TRANSPARENT` (and the options `extra` sets, before
/// binding). `None` on a host without IPv6.
pub(crate) fn bind_transparent_socket_v6(
    ty: Type,
    protocol: Protocol,
    port: u16,
    extra: impl FnOnce(&Socket) -> io::Result<()>,
) -> io::Result<Option<Socket>> {
    let socket = match Socket::new(Domain::IPV6, ty, Some(protocol)) {
        Ok(socket) => socket,
        Err(err) if err.raw_os_error() == Some(libc::EAFNOSUPPORT) => return Ok(None),
        Err(err) => return Err(err),
    };
    socket.set_only_v6(true)?;
    socket.set_reuse_address(true)?;
    socket.set_ip_transparent_v6(true)?;
    extra(&socket)?;
    let addr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
    match socket.bind(&SockAddr::from(addr)) {
        Ok(()) => Ok(Some(socket)),
        Err(err) if err.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Where the client meant to connect.
pub fn original_destination(stream: &TcpStream, mode: ListenMode) -> io::Result<SocketAddr> {
    match mode {
        ListenMode::Transparent => stream.local_addr(),
        ListenMode::FixedUpstream(addr) => Ok(addr),
    }
}

/// How the proxy's own upstream connections are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct UpstreamOptions {
    /// Connect from this address (transparent bind, so the destination sees
    /// the original client's IP); `None` = the node's address.
    pub source: Option<IpAddr>,
    /// `SO_MARK` on the socket, so the datapath (or a test's netfilter rule)
    /// recognises proxy traffic and does not redirect it back to the proxy.
    pub mark: Option<u32>,
}

/// A non-blocking socket of `kind` towards `dst`, marked and bound as
/// `options` say.
pub fn upstream_socket(
    dst: SocketAddr,
    kind: Type,
    protocol: Protocol,
    options: UpstreamOptions,
) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(dst), kind, Some(protocol))?;
    if let Some(mark) = options.mark {
        socket.set_mark(mark)?;
    }
    if let Some(src) = options.source {
        match src {
            IpAddr::V4(_) => socket.set_ip_transparent_v4(true)?,
            IpAddr::V6(_) => socket.set_ip_transparent_v6(true)?,
        }
        socket.bind(&SockAddr::from(SocketAddr::new(src, 0)))?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Connects to `dst` as `options` say.
pub async fn connect_upstream(dst: SocketAddr, options: UpstreamOptions) -> io::Result<TcpStream> {
    let socket = upstream_socket(dst, Type::STREAM, Protocol::TCP, options)?;
    let std_stream: std::net::TcpStream = socket.into();
    let stream = TcpSocket::from_std_stream(std_stream).connect(dst).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

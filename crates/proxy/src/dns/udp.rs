//! DNS over UDP: the redirect's datagram loop and one task per query. An
//! allowed query goes to its original destination from a fresh socket of
//! the node's (marked like every proxy upstream socket), and the server's
//! answer, once admitted, goes back to the pod from the address it asked.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Protocol, Type};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use super::exchange::{admit_answer, answers, judge, server_failure, Judgement};
use super::listener::{recv, RawReplySocket, MAX_DATAGRAM};
use super::wire::Message;
use super::{DnsRuntime, FORWARD_TIMEOUT};
use crate::filter::ConnContext;
use crate::listener::{ListenMode, UpstreamOptions};
use crate::redirect::{upstream_options, ProxyState, RedirectShared};

/// Queries in flight per redirect; more are dropped (the client retries).
const MAX_IN_FLIGHT: usize = 4096;

/// How answers reach the client.
#[derive(Debug, Clone)]
pub enum ReplyPath {
    /// From the original destination's address (transparent mode).
    Raw(Arc<RawReplySocket>),
    /// From the listening socket itself (fixed-upstream test mode).
    Listener(Arc<std::net::UdpSocket>),
}

impl ReplyPath {
    pub fn for_mode(mode: ListenMode, socket: &UdpSocket) -> std::io::Result<Self> {
        match mode {
            ListenMode::Transparent => Ok(ReplyPath::Raw(Arc::new(RawReplySocket::open()?))),
            ListenMode::FixedUpstream(_) => {
                // A second handle on the same socket, usable from any thread
                // (non-blocking: a full buffer drops the answer).
                let fd = socket2::SockRef::from(socket).try_clone()?;
                Ok(ReplyPath::Listener(Arc::new(fd.into())))
            }
        }
    }

    fn send(&self, ctx: &ConnContext, mark: Option<u32>, payload: &[u8]) {
        let result = match (self, ctx.original_dst, ctx.client) {
            (ReplyPath::Raw(raw), SocketAddr::V4(from), SocketAddr::V4(to)) => {
                raw.send(from, to, payload, mark)
            }
            (ReplyPath::Raw(_), _, _) => Ok(()),
            (ReplyPath::Listener(socket), _, to) => socket.send_to(payload, to).map(|_| ()),
        };
        if let Err(err) = result {
            if err.kind() != std::io::ErrorKind::WouldBlock {
                eprintln!("cilium-proxy: dns answer to {}: {err}", ctx.client);
            }
        }
    }
}

/// Receives the redirect's datagrams until the listener is removed.
pub async fn serve(
    socket: UdpSocket,
    reply: ReplyPath,
    mode: ListenMode,
    shared: Arc<RedirectShared>,
    state: ProxyState,
) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let datagram = match recv(&socket, &mut buf).await {
            Ok(datagram) => datagram,
            Err(err) => {
                eprintln!(
                    "cilium-proxy: dns receive on port {}: {err}",
                    shared.settings().proxy_port
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let original_dst = match (mode, datagram.original_dst) {
            (ListenMode::FixedUpstream(addr), _) => addr,
            (ListenMode::Transparent, Some(addr)) => SocketAddr::V4(addr),
            (ListenMode::Transparent, None) => continue,
        };
        let client = SocketAddr::V4(datagram.source);
        let ctx = ConnContext {
            client,
            original_dst,
            src_identity: state.lookup_identity(client.ip()),
            dst_identity: state.lookup_identity(original_dst.ip()),
            redirect: shared.clone(),
            log: state.log.clone(),
        };
        if datagram.len > buf.len() {
            // Larger than any DNS message over UDP: cut, so malformed.
            judge(&ctx, &state.dns, &[]);
            continue;
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            continue;
        };
        let query = buf[..datagram.len].to_vec();
        let dns = state.dns.clone();
        let reply = reply.clone();
        crate::workers::spawn(async move {
            handle_query(ctx, dns, reply, query).await;
            drop(permit);
        });
    }
}

async fn handle_query(ctx: ConnContext, dns: Arc<DnsRuntime>, reply: ReplyPath, query: Vec<u8>) {
    let mark = ctx.redirect.settings().upstream_mark;
    let message = match judge(&ctx, &dns, &query) {
        Judgement::Drop => return,
        Judgement::Answer(answer) => return reply.send(&ctx, mark, &answer),
        Judgement::Forward(message) => message,
    };
    match forward(&ctx, &dns, &message, &query).await {
        Ok(Some(answer)) => reply.send(&ctx, mark, &answer),
        // Malformed answers were counted; the client asks again.
        Ok(None) => {}
        Err(err) => {
            eprintln!(
                "cilium-proxy: dns query from {} to {}: {err}",
                ctx.client, ctx.original_dst
            );
            reply.send(&ctx, mark, &server_failure(&query, &message));
        }
    }
}

/// Sends the query to the original destination and waits for its answer
/// (ignoring datagrams that do not answer it); `None` when the server's
/// answer was malformed.
async fn forward(
    ctx: &ConnContext,
    dns: &DnsRuntime,
    message: &Message,
    query: &[u8],
) -> std::io::Result<Option<Vec<u8>>> {
    let upstream = upstream_socket(ctx.original_dst, upstream_options(ctx))?;
    upstream.connect(ctx.original_dst).await?;
    upstream.send(query).await?;
    // Filled as received, never zeroed first: most answers are small.
    let mut buf = Vec::with_capacity(MAX_DATAGRAM);
    let exchange = async {
        loop {
            buf.clear();
            upstream.recv_buf(&mut buf).await?;
            if answers(message, &buf) {
                return Ok::<_, std::io::Error>(buf.as_slice().to_vec());
            }
        }
    };
    let answer = tokio::time::timeout(FORWARD_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
    Ok(admit_answer(ctx, dns, message, &answer)
        .await
        .then_some(answer))
}

fn upstream_socket(dst: SocketAddr, options: UpstreamOptions) -> std::io::Result<UdpSocket> {
    let socket = crate::listener::upstream_socket(dst, Type::DGRAM, Protocol::UDP, options)?;
    UdpSocket::from_std(socket.into())
}

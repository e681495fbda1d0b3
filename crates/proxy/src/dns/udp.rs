//! DNS over UDP: the redirect's datagram loop. An allowed query goes to its
//! original destination through the upstream sockets (`upstream`), and the
//! server's answer, once admitted, goes back to the pod from the address it
//! asked.

use std::sync::Arc;

use tokio::net::UdpSocket;

use super::exchange::{judge, Judgement};
use super::listener::{recv_batch, RawReplySocket, RecvBatch, MAX_DATAGRAM};
use super::upstream::InFlight;
use crate::access_log::Transport;
use crate::filter::ConnContext;
use crate::listener::ListenMode;
use crate::redirect::{ProxyState, RedirectShared};

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

    /// The same sockets (so answers for both can go in one call).
    pub fn same_as(&self, other: &ReplyPath) -> bool {
        match (self, other) {
            (ReplyPath::Raw(a), ReplyPath::Raw(b)) => Arc::ptr_eq(a, b),
            (ReplyPath::Listener(a), ReplyPath::Listener(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Sends `payload` to the client of `ctx`.
    pub fn send(&self, ctx: &ConnContext, mark: Option<u32>, payload: &[u8]) {
        self.send_all(mark, &[(ctx, payload)]);
    }

    /// Sends each answer to its client, in as few calls as the kernel
    /// takes.
    pub fn send_all(&self, mark: Option<u32>, answers: &[(&ConnContext, &[u8])]) {
        let result = match self {
            ReplyPath::Raw(raw) => {
                let datagrams: Vec<_> = answers
                    .iter()
                    .map(|(ctx, payload)| (ctx.original_dst, ctx.client, *payload))
                    .collect();
                raw.send_all(&datagrams, mark)
            }
            ReplyPath::Listener(socket) => {
                let mut first_error = Ok(());
                for (ctx, payload) in answers {
                    if let Err(err) = socket.send_to(payload, ctx.client) {
                        first_error = first_error.and(Err(err));
                    }
                }
                first_error
            }
        };
        if let Err(err) = result {
            if err.kind() != std::io::ErrorKind::WouldBlock {
                eprintln!("cilium-proxy: dns answers: {err}");
            }
        }
    }
}

/// Receives the redirect's datagrams until the listener is removed. Each
/// is judged here; an allowed query goes upstream (`upstream`), whose
/// receiving task answers the client.
pub async fn serve(
    socket: UdpSocket,
    reply: ReplyPath,
    mode: ListenMode,
    shared: Arc<RedirectShared>,
    state: ProxyState,
) {
    let mut batch = RecvBatch::default();
    loop {
        let received = match recv_batch(&socket, &mut batch).await {
            Ok(received) => received,
            Err(err) => {
                eprintln!(
                    "cilium-proxy: dns receive on port {}: {err}",
                    shared.settings().proxy_port
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut forwards = Vec::with_capacity(received);
        for index in 0..received {
            let datagram = batch.datagrams()[index];
            let original_dst = match (mode, datagram.original_dst) {
                (ListenMode::FixedUpstream(addr), _) => addr,
                (ListenMode::Transparent, Some(addr)) => addr,
                (ListenMode::Transparent, None) => continue,
            };
            let ctx = state.context(&shared, datagram.source, original_dst, Transport::Udp);
            if datagram.len > MAX_DATAGRAM {
                // Larger than any DNS message over UDP: cut, so malformed.
                judge(&ctx, &state.dns, &[]);
                continue;
            }
            let query = batch.bytes_mut(index);
            let mark = ctx.redirect.settings().upstream_mark;
            match judge(&ctx, &state.dns, query) {
                Judgement::Drop => {}
                Judgement::Answer(answer) => reply.send(&ctx, mark, &answer),
                Judgement::Forward(message) => forwards.push(InFlight {
                    ctx,
                    message,
                    query: query.to_vec(),
                    reply: reply.clone(),
                }),
            }
        }
        state.dns.upstreams.forward_all(&state.dns, forwards);
    }
}

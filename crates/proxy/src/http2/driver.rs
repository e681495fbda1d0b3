//! The task of one HTTP/2 client connection: it polls the client
//! connection, the upstream connection and every stream itself, in a loop,
//! until none of them can move. A request thus goes from the client's
//! socket through the policy to the upstream's socket (and its response
//! back) without spawning a task, waking another one, or crossing threads.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::net::TcpStream;

use super::coalesce::Coalescing;
use super::prefixed::Prefixed;
use super::upstream::{Upstream, UpstreamConnection};
use crate::filter::ConnContext;
use crate::http1::proxy::ProxyError;

/// Passes of the loop in one poll before the task yields to others (a
/// busy connection must not starve the rest of its worker thread, and
/// tokio's cooperative budget only refills when the task is scheduled).
const PASSES_PER_POLL: usize = 32;

/// Serves one client connection (`preread`: bytes already read from it)
/// until the client goes away and its last stream has ended.
pub async fn serve(client: TcpStream, preread: Bytes, ctx: ConnContext) -> Result<(), ProxyError> {
    let mut connection = h2::server::Builder::new()
        .initial_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::CONNECTION_WINDOW)
        .handshake(Prefixed::new(preread, client))
        .await?;
    let upstream = Upstream::new(ctx);
    let mut streams = FuturesUnordered::new();
    let mut upstream_connection: Option<UpstreamConnection> = None;
    let mut accepting = true;
    let coalescing = Arc::new(Coalescing::default());
    let waker = coalescing.waker();
    let result = poll_fn(|task_cx| {
        coalescing.start_poll(task_cx.waker());
        let cx = &mut Context::from_waker(&waker);
        for _ in 0..PASSES_PER_POLL {
            // The order batches writes: every request the client has sent
            // is accepted and judged, then the upstream connection is
            // polled once (one write for all that went out, and it reads
            // the responses that are in); the responses relayed then go to
            // the client in one write on the next pass.
            while accepting {
                match connection.poll_accept(cx) {
                    Poll::Ready(Some(Ok((request, respond)))) => {
                        streams.push(super::stream::handle(request, respond, &upstream));
                    }
                    Poll::Ready(Some(Err(err))) => {
                        coalescing.end_poll();
                        return Poll::Ready(Err(err.into()));
                    }
                    Poll::Ready(None) => accepting = false,
                    Poll::Pending => break,
                }
            }
            while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
            // A stream that has just connected hands the connection over;
            // it must be polled before this task sleeps, or nothing would
            // ever wake the task for it.
            if let Some(made) = upstream.take_connection() {
                upstream_connection = Some(made);
            }
            if let Some(conn) = upstream_connection.as_mut() {
                if Pin::new(conn).poll(cx).is_ready() {
                    // Closed or broken: its streams see the error, later
                    // ones connect again.
                    upstream_connection = None;
                    upstream.connection_ended();
                }
            }
            while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
            if let Some(made) = upstream.take_connection() {
                // Made just now: poll it on the next pass.
                upstream_connection = Some(made);
                continue;
            }
            if !accepting && streams.is_empty() {
                coalescing.end_poll();
                return Poll::Ready(Ok(()));
            }
            // Anything woken during this pass (a frame queued, bytes
            // arrived) gets another pass; otherwise sleep.
            if coalescing.try_sleep() {
                return Poll::Pending;
            }
        }
        coalescing.end_poll();
        task_cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
    drop(streams);
    // Without request handles the upstream connection says GOAWAY and
    // closes; a broken one just ends.
    let leftover = upstream.into_connection();
    if let Some(conn) = upstream_connection.or(leftover) {
        let _ = conn.await;
    }
    result
}

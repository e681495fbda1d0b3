//! Allowed UDP queries go to their servers through long-lived sockets: one
//! per (pod address, server, mark), bound like every proxy upstream socket
//! (the server sees the pod's address) and connected to the server. Each
//! socket's queries carry ids of its own, drawn at random among the free
//! ones, so answers find their query and an off-path guess of the id is as
//! hard as the pod's own resolver makes it; the client's id is put back in
//! the answer. A socket serves new queries for `ROTATE_AFTER` (a fresh
//! port then), and closes once its last query is answered or timed out.
//!
//! A query costs a share of one `sendmmsg` and one `recvmmsg` (the queries
//! and answers that arrive together go in one call each): no socket, bind,
//! connect, epoll registration, task or timer of its own, which is what
//! the proxy's hot path spent most of its time on.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Protocol, Type};
use tokio::net::UdpSocket;

use super::exchange::{inspect_answer, server_failure, Admission};
use super::listener::{recv_batch, send_mmsg, RecvBatch, BATCH};
use super::udp::ReplyPath;
use super::wire::{self, Message};
use super::{DnsRuntime, FORWARD_TIMEOUT};
use crate::filter::ConnContext;
use crate::listener::UpstreamOptions;
use crate::redirect::upstream_options;

/// A socket takes new queries this long; then a new one (new port) does.
const ROTATE_AFTER: Duration = Duration::from_secs(10);

/// Queries in flight per socket; beyond, another socket takes over (ids
/// stay easy to draw and hard to guess).
const MAX_PER_SOCKET: usize = 4096;

/// Queries in flight in all; beyond, new ones are dropped (the clients
/// retry), so a flood towards a silent server cannot grow memory.
const MAX_IN_FLIGHT: usize = 65536;

/// How often a socket looks for queries that got no answer.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    server: SocketAddr,
    options: UpstreamOptions,
}

/// One forwarded query waiting for its answer.
pub struct InFlight {
    pub ctx: ConnContext,
    pub message: Message,
    /// The query as the client sent it (a SERVFAIL echoes it).
    pub query: Vec<u8>,
    pub reply: ReplyPath,
}

impl InFlight {
    fn fail(&self) {
        self.send(&server_failure(&self.query, &self.message));
    }

    fn send(&self, answer: &[u8]) {
        let mark = self.ctx.redirect.settings().upstream_mark;
        self.reply.send(&self.ctx, mark, answer);
    }
}

/// Every redirect's upstream sockets.
#[derive(Default)]
pub struct UpstreamPool {
    sockets: Mutex<HashMap<Key, Arc<Upstream>>>,
    in_flight: Arc<AtomicUsize>,
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPool")
            .field("sockets", &lock(&self.sockets).len())
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl UpstreamPool {
    /// Sends each query to its original destination, the queries for one
    /// socket in one call; their answers (or SERVFAILs) reach the clients
    /// through their reply paths.
    pub fn forward_all(&self, dns: &Arc<DnsRuntime>, queries: Vec<InFlight>) {
        let mut group = Vec::new();
        let mut group_key = None;
        for query in queries {
            let key = Key {
                server: query.ctx.original_dst,
                options: upstream_options(&query.ctx),
            };
            if group_key != Some(key) {
                if let Some(previous) = group_key {
                    self.forward_group(dns, previous, std::mem::take(&mut group));
                }
                group_key = Some(key);
            }
            group.push(query);
        }
        if let Some(key) = group_key {
            self.forward_group(dns, key, group);
        }
    }

    fn forward_group(&self, dns: &Arc<DnsRuntime>, key: Key, mut queries: Vec<InFlight>) {
        let room = MAX_IN_FLIGHT.saturating_sub(self.in_flight.load(Ordering::Relaxed));
        queries.truncate(room);
        // A socket that closed since it was looked up hands the queries
        // back once; the next one is new.
        for _ in 0..2 {
            if queries.is_empty() {
                return;
            }
            let upstream = match self.socket_for(dns, key) {
                Ok(upstream) => upstream,
                Err(err) => {
                    eprintln!(
                        "cilium-proxy: dns upstream socket for {}: {err}",
                        key.server
                    );
                    return queries.iter().for_each(InFlight::fail);
                }
            };
            queries = upstream.send_all(queries);
        }
    }

    /// The socket taking new queries for `key`, opened when there is none
    /// or the last one retired.
    fn socket_for(&self, dns: &Arc<DnsRuntime>, key: Key) -> io::Result<Arc<Upstream>> {
        let mut sockets = lock(&self.sockets);
        if let Some(upstream) = sockets.get(&key) {
            if upstream.takes_queries() {
                return Ok(upstream.clone());
            }
            upstream.retired.store(true, Ordering::Release);
        }
        let upstream = Upstream::open(key, self.in_flight.clone())?;
        sockets.insert(key, upstream.clone());
        drop(sockets);
        let (receiving, dns) = (upstream.clone(), dns.clone());
        crate::workers::spawn(async move { receive(receiving, dns).await });
        Ok(upstream)
    }

    /// Forgets `upstream` unless a newer socket took its place.
    fn remove(&self, upstream: &Arc<Upstream>) {
        let mut sockets = lock(&self.sockets);
        if sockets
            .get(&upstream.key)
            .is_some_and(|s| Arc::ptr_eq(s, upstream))
        {
            sockets.remove(&upstream.key);
        }
    }

    /// Sockets open now.
    pub fn len(&self) -> usize {
        lock(&self.sockets).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Upstream {
    key: Key,
    /// Sends from any thread; the receiving task has its own handle.
    socket: std::net::UdpSocket,
    opened: Instant,
    retired: AtomicBool,
    pending: Mutex<Pending>,
    /// Draws ids: a keyed hash of a counter, the key random per socket.
    ids: RandomState,
    draws: AtomicU64,
    /// The pool's count of queries in flight.
    in_flight: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Pending {
    /// Our id -> the query it stands for, with when it was sent.
    queries: HashMap<u16, (InFlight, Instant)>,
    /// The receiving task ended: nothing sent now would be answered.
    closed: bool,
}

impl Upstream {
    fn open(key: Key, in_flight: Arc<AtomicUsize>) -> io::Result<Arc<Upstream>> {
        let socket =
            crate::listener::upstream_socket(key.server, Type::DGRAM, Protocol::UDP, key.options)?;
        socket.connect(&key.server.into())?;
        Ok(Arc::new(Upstream {
            key,
            socket: socket.into(),
            opened: Instant::now(),
            retired: AtomicBool::new(false),
            pending: Mutex::default(),
            ids: RandomState::new(),
            draws: AtomicU64::new(0),
            in_flight,
        }))
    }

    fn takes_queries(&self) -> bool {
        !self.retired.load(Ordering::Acquire)
            && self.opened.elapsed() < ROTATE_AFTER
            && lock(&self.pending).queries.len() < MAX_PER_SOCKET
    }

    /// Gives each query a free id of this socket and sends them; hands
    /// them back if the socket has closed.
    fn send_all(&self, queries: Vec<InFlight>) -> Vec<InFlight> {
        let mut datagrams = Vec::with_capacity(queries.len());
        {
            let mut pending = lock(&self.pending);
            if pending.closed {
                return queries;
            }
            let now = Instant::now();
            for query in queries {
                let id = loop {
                    let draw = self.draws.fetch_add(1, Ordering::Relaxed);
                    let id = self.ids.hash_one(draw) as u16;
                    if !pending.queries.contains_key(&id) {
                        break id;
                    }
                };
                let mut bytes = query.query.clone();
                bytes[..2].copy_from_slice(&id.to_be_bytes());
                pending.queries.insert(id, (query, now));
                datagrams.push((id, bytes));
            }
            self.in_flight.fetch_add(datagrams.len(), Ordering::Relaxed);
        }
        for chunk in datagrams.chunks(BATCH) {
            // SAFETY: all-zero is a valid iovec and mmsghdr.
            let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (i, (_, bytes)) in chunk.iter().enumerate() {
                iovs[i] = libc::iovec {
                    iov_base: bytes.as_ptr() as *mut libc::c_void,
                    iov_len: bytes.len(),
                };
                msgs[i].msg_hdr.msg_iov = &mut iovs[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            let fd = self.socket.as_raw_fd();
            for (i, err) in send_mmsg(fd, &mut msgs[..chunk.len()]) {
                let Some(query) = self.take(chunk[i].0) else {
                    continue;
                };
                // A full socket buffer drops the query; the client retries.
                if err.kind() != io::ErrorKind::WouldBlock {
                    eprintln!(
                        "cilium-proxy: dns query from {} to {}: {err}",
                        query.ctx.client, query.ctx.original_dst
                    );
                    query.fail();
                }
            }
        }
        Vec::new()
    }

    fn take(&self, id: u16) -> Option<InFlight> {
        let (query, _) = lock(&self.pending).queries.remove(&id)?;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        Some(query)
    }

    /// A datagram from the server: the answer to one of our queries, its
    /// client's id put back. Returned when it goes to the client now; held
    /// (until the agent allowed its addresses) by a task of its own.
    fn answer(&self, dns: &Arc<DnsRuntime>, bytes: &mut [u8]) -> Option<InFlight> {
        let Ok(header) = wire::parse_header(bytes) else {
            dns.count_malformed();
            return None;
        };
        if !header.is_response() {
            return None;
        }
        // None: late (the query timed out) or not ours.
        let query = self.take(header.id)?;
        bytes[..2].copy_from_slice(&query.message.header.id.to_be_bytes());
        match inspect_answer(&query.ctx, dns, &query.message, bytes) {
            Admission::Drop => None,
            Admission::Now => Some(query),
            Admission::Hold(notice) => {
                let (dns, answer) = (dns.clone(), bytes.to_vec());
                tokio::spawn(async move {
                    dns.gate.hold(notice, dns.settings.max_delay).await;
                    query.send(&answer);
                });
                None
            }
        }
    }

    /// Queries `FORWARD_TIMEOUT` old get SERVFAIL; all of them when the
    /// server refused (`failed`). With `close`, once none is left the
    /// socket takes no more. Returns how many are still in flight.
    fn sweep(&self, failed: bool, close: bool) -> usize {
        let now = Instant::now();
        let mut pending = lock(&self.pending);
        let expired: Vec<u16> = pending
            .queries
            .iter()
            .filter(|(_, (_, sent))| failed || now.duration_since(*sent) >= FORWARD_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        let gone: Vec<InFlight> = expired
            .iter()
            .filter_map(|id| pending.queries.remove(id).map(|(query, _)| query))
            .collect();
        self.in_flight.fetch_sub(gone.len(), Ordering::Relaxed);
        let left = pending.queries.len();
        pending.closed |= close && left == 0;
        drop(pending);
        for query in gone {
            eprintln!(
                "cilium-proxy: dns query from {} to {}: no answer",
                query.ctx.client, query.ctx.original_dst
            );
            query.fail();
        }
        left
    }
}

/// The socket's answers, until it has retired (rotated) and nothing is in
/// flight.
async fn receive(upstream: Arc<Upstream>, dns: Arc<DnsRuntime>) {
    let socket = match upstream.socket.try_clone().and_then(UdpSocket::from_std) {
        Ok(socket) => socket,
        Err(err) => {
            eprintln!("cilium-proxy: dns upstream socket: {err}");
            upstream.retired.store(true, Ordering::Release);
            upstream.sweep(true, true);
            return;
        }
    };
    let mut batch = RecvBatch::default();
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            received = recv_batch(&socket, &mut batch) => match received {
                Ok(received) => {
                    let ready: Vec<(usize, InFlight)> = (0..received)
                        .filter_map(|i| Some((i, upstream.answer(&dns, batch.bytes_mut(i))?)))
                        .collect();
                    reply_all(&batch, &ready);
                }
                // The server's port is closed (ICMP): every query to it
                // fails now rather than after the timeout.
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                    upstream.sweep(true, false);
                }
                Err(err) => {
                    eprintln!("cilium-proxy: dns upstream receive: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = sweep.tick() => {
                let rotated = upstream.opened.elapsed() >= ROTATE_AFTER;
                if rotated || upstream.retired.load(Ordering::Acquire) {
                    upstream.retired.store(true, Ordering::Release);
                    dns.upstreams.remove(&upstream);
                    if upstream.sweep(false, true) == 0 {
                        return;
                    }
                } else {
                    upstream.sweep(false, false);
                }
            }
        }
    }
}

/// Sends the answers in `batch` to the clients of their queries, those
/// leaving one reply path with one mark in one call.
fn reply_all(batch: &RecvBatch, ready: &[(usize, InFlight)]) {
    let mut rest = ready;
    while let Some((_, first)) = rest.first() {
        let mark = first.ctx.redirect.settings().upstream_mark;
        let same = rest
            .iter()
            .take_while(|(_, q)| {
                q.reply.same_as(&first.reply) && q.ctx.redirect.settings().upstream_mark == mark
            })
            .count();
        let answers: Vec<(&ConnContext, &[u8])> = rest[..same]
            .iter()
            .map(|(i, query)| (&query.ctx, batch.bytes(*i)))
            .collect();
        first.reply.send_all(mark, &answers);
        rest = &rest[same..];
    }
}

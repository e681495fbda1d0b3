//! The proxy's running state: one listener task per redirect (serving its
//! IPv4 and IPv6 sockets; a DNS redirect's its UDP sockets too), the ipcache, the access log and what DNS
//! redirects share. Commands from the control socket land here. Updating a
//! redirect swaps its policy in place (open connections see it on their next
//! request); only a changed listen mode rebinds the listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use tokio::task::JoinHandle;

use crate::access_log::{AccessLog, Transport};
use crate::control::protocol::{Direction, Parser, Redirect, SourceBind, Status, PROTOCOL_VERSION};
use crate::dns::{DnsRuntime, DnsSettings};
use crate::filter::ConnContext;
use crate::ipcache::{Ipcache, IpcacheEntry};
use crate::listener::{self, ListenMode, UpstreamOptions};
use crate::policy::CompiledPolicy;

/// The parts of a redirect a connection reads at each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectSettings {
    pub proxy_port: u16,
    pub parser: Parser,
    pub direction: Direction,
    pub endpoint_id: u64,
    pub source_bind: SourceBind,
    pub upstream_mark: Option<u32>,
    pub mark_with_identity: bool,
}

/// State shared by a redirect's listener and its connections.
#[derive(Debug)]
pub struct RedirectShared {
    settings: RwLock<RedirectSettings>,
    policy: RwLock<Arc<CompiledPolicy>>,
}

impl RedirectShared {
    pub fn new(settings: RedirectSettings, policy: CompiledPolicy) -> Self {
        RedirectShared {
            settings: RwLock::new(settings),
            policy: RwLock::new(Arc::new(policy)),
        }
    }

    pub fn settings(&self) -> RedirectSettings {
        *self.settings.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn policy(&self) -> Arc<CompiledPolicy> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update(&self, settings: RedirectSettings, policy: CompiledPolicy) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
    }
}

#[derive(Debug)]
struct RunningRedirect {
    mode: ListenMode,
    /// Whether it listens for UDP too (parser dns).
    udp: bool,
    shared: Arc<RedirectShared>,
    accept_task: JoinHandle<()>,
}

impl Drop for RunningRedirect {
    fn drop(&mut self) {
        // Stops accepting; connections already open keep running.
        self.accept_task.abort();
    }
}

/// Everything the proxy runs; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct ProxyState {
    redirects: Arc<Mutex<HashMap<u16, RunningRedirect>>>,
    ipcache: Arc<RwLock<Ipcache>>,
    pub log: AccessLog,
    pub dns: Arc<DnsRuntime>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("redirect {port}: {source}")]
    Policy {
        port: u16,
        source: crate::policy::CompileError,
    },
    #[error("redirect {port}: cannot listen: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error(transparent)]
    Prefix(#[from] crate::ipcache::PrefixError),
}

fn compile(redirect: &Redirect) -> Result<CompiledPolicy, StateError> {
    CompiledPolicy::compile(&redirect.policies).map_err(|source| StateError::Policy {
        port: redirect.proxy_port,
        source,
    })
}

impl ProxyState {
    pub fn new(dns: DnsSettings) -> Self {
        ProxyState {
            dns: DnsRuntime::new(dns),
            ..ProxyState::default()
        }
    }

    /// Adds or updates a redirect. Must run inside a tokio runtime.
    pub fn upsert_redirect(&self, redirect: &Redirect) -> Result<(), StateError> {
        let policy = compile(redirect)?;
        self.install(redirect, policy)
    }

    fn install(&self, redirect: &Redirect, policy: CompiledPolicy) -> Result<(), StateError> {
        let port = redirect.proxy_port;
        let settings = RedirectSettings {
            proxy_port: port,
            parser: redirect.parser,
            direction: redirect.direction,
            endpoint_id: redirect.endpoint_id,
            source_bind: redirect.source_bind,
            upstream_mark: redirect.upstream_mark,
            mark_with_identity: redirect.mark_with_identity,
        };
        let mode = match redirect.fixed_upstream {
            Some(addr) => ListenMode::FixedUpstream(addr),
            None => ListenMode::Transparent,
        };
        let udp = redirect.parser == Parser::Dns;
        let mut redirects = self.redirects.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = redirects.get(&port) {
            if running.mode == mode && running.udp == udp {
                running.shared.update(settings, policy);
                return Ok(());
            }
            // Different mode: free the port before binding again.
            redirects.remove(&port);
        }
        let bind_error = |source| StateError::Bind { port, source };
        let listener = listener::bind(port, mode).map_err(bind_error)?;
        let listener6 = match mode {
            ListenMode::Transparent => listener::bind_transparent_v6(port).map_err(bind_error)?,
            ListenMode::FixedUpstream(_) => None,
        };
        let shared = Arc::new(RedirectShared::new(settings, policy));
        let accept4 = accept_loop(listener, mode, shared.clone(), self.clone());
        let accept6 = listener6.map(|l| accept_loop(l, mode, shared.clone(), self.clone()));
        let accept = async move {
            match accept6 {
                Some(accept6) => {
                    tokio::join!(accept4, accept6);
                }
                None => accept4.await,
            }
        };
        let accept_task = if udp {
            let socket = crate::dns::listener::bind_udp(port, mode).map_err(bind_error)?;
            let socket6 = match mode {
                ListenMode::Transparent => {
                    crate::dns::listener::bind_udp_transparent_v6(port).map_err(bind_error)?
                }
                ListenMode::FixedUpstream(_) => None,
            };
            let reply = crate::dns::udp::ReplyPath::for_mode(mode, &socket).map_err(bind_error)?;
            let datagrams6 = socket6.map(|socket6| {
                crate::dns::udp::serve(socket6, reply.clone(), mode, shared.clone(), self.clone())
            });
            let datagrams =
                crate::dns::udp::serve(socket, reply, mode, shared.clone(), self.clone());
            tokio::spawn(async move {
                match datagrams6 {
                    Some(datagrams6) => {
                        tokio::join!(accept, datagrams, datagrams6);
                    }
                    None => {
                        tokio::join!(accept, datagrams);
                    }
                }
            })
        } else {
            tokio::spawn(accept)
        };
        redirects.insert(
            port,
            RunningRedirect {
                mode,
                udp,
                shared,
                accept_task,
            },
        );
        Ok(())
    }

    pub fn remove_redirect(&self, port: u16) {
        self.redirects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&port);
    }

    /// Replaces the whole state. Every redirect is compiled before anything
    /// changes, so a bad policy leaves the previous state intact.
    pub fn sync(&self, redirects: &[Redirect], ipcache: &[IpcacheEntry]) -> Result<(), StateError> {
        let compiled = redirects
            .iter()
            .map(|r| compile(r).map(|p| (r, p)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut cache = Ipcache::default();
        for entry in ipcache {
            cache.upsert(entry)?;
        }
        *self.ipcache.write().unwrap_or_else(|e| e.into_inner()) = cache;
        let wanted: Vec<u16> = redirects.iter().map(|r| r.proxy_port).collect();
        self.redirects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|port, _| wanted.contains(port));
        let mut first_error = None;
        for (redirect, policy) in compiled {
            if let Err(err) = self.install(redirect, policy) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    pub fn ipcache_upsert(&self, entries: &[IpcacheEntry]) -> Result<(), StateError> {
        let mut cache = self.ipcache.write().unwrap_or_else(|e| e.into_inner());
        for entry in entries {
            cache.upsert(entry)?;
        }
        Ok(())
    }

    pub fn ipcache_delete(&self, prefixes: &[String]) -> Result<(), StateError> {
        let mut cache = self.ipcache.write().unwrap_or_else(|e| e.into_inner());
        for prefix in prefixes {
            cache.remove(prefix)?;
        }
        Ok(())
    }

    /// What a connection or datagram of redirect `shared` from `client` to
    /// `original_dst` is judged and logged with.
    pub fn context(
        &self,
        shared: &Arc<RedirectShared>,
        client: SocketAddr,
        original_dst: SocketAddr,
        transport: Transport,
    ) -> ConnContext {
        ConnContext {
            client,
            original_dst,
            transport,
            src_identity: self.lookup_identity(client.ip()),
            dst_identity: self.lookup_identity(original_dst.ip()),
            redirect: shared.clone(),
            log: self.log.clone(),
        }
    }

    pub fn lookup_identity(&self, addr: std::net::IpAddr) -> u32 {
        self.ipcache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(addr)
    }

    pub fn status(&self) -> Status {
        let mut redirects: Vec<u16> = self
            .redirects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        redirects.sort_unstable();
        Status {
            version: PROTOCOL_VERSION,
            pid: std::process::id(),
            redirects,
            ipcache_entries: self.ipcache.read().unwrap_or_else(|e| e.into_inner()).len(),
            requests: self.log.counters().snapshot(),
            dns_malformed: self.dns.malformed(),
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    mode: ListenMode,
    shared: Arc<RedirectShared>,
    state: ProxyState,
) {
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                eprintln!(
                    "cilium-proxy: accept on port {}: {err}",
                    shared.settings().proxy_port
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(original_dst) = listener::original_destination(&stream, mode) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Handed to a worker's own runtime (`workers`): off this runtime's
        // reactor here, onto the worker's in the task.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                eprintln!("cilium-proxy: connection from {client}: {err}");
                continue;
            }
        };
        let ctx = state.context(&shared, client, original_dst, Transport::Tcp);
        let dns = state.dns.clone();
        crate::workers::spawn(async move {
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(err) => {
                    eprintln!("cilium-proxy: connection from {client}: {err}");
                    return;
                }
            };
            let result = match ctx.redirect.settings().parser {
                Parser::Http => crate::http1::proxy::serve(stream, ctx)
                    .await
                    .map_err(anyhow::Error::from),
                Parser::Kafka => crate::kafka::proxy::serve(stream, ctx).await,
                Parser::Dns => crate::dns::tcp::serve(stream, ctx, &dns).await,
            };
            if let Err(err) = result {
                // Expected for malformed input and peers that go away.
                eprintln!("cilium-proxy: connection from {client}: {err}");
            }
        });
    }
}

/// How to connect upstream for a connection of this redirect.
pub fn upstream_options(ctx: &ConnContext) -> UpstreamOptions {
    let settings = ctx.redirect.settings();
    UpstreamOptions {
        source: match settings.source_bind {
            SourceBind::Node => None,
            SourceBind::Original => Some(ctx.client.ip()),
        },
        mark: settings.upstream_mark.map(|mark| {
            if settings.mark_with_identity {
                identity_mark(mark, ctx.src_identity)
            } else {
                mark
            }
        }),
    }
}

/// Cilium's proxy mark layout: identity bits 15..0 in the top half, bits
/// 23..16 in the lowest byte, the magic in between.
pub fn identity_mark(magic: u32, identity: u32) -> u32 {
    ((identity & 0xffff) << 16) | magic | ((identity >> 16) & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_marks_use_ciliums_layout() {
        assert_eq!(identity_mark(0x0a00, 0x0001_2345), 0x2345_0a01);
        assert_eq!(identity_mark(0x0b00, 2), 0x0002_0b00);
    }
}

//! Whose socket a socket LB translation was for. Cilium's trace-sock event
//! names the socket's cgroup and Hubble finds the pod by it (skipping events
//! of unknown cgroups); this agent knows no pod cgroups, but it knows each
//! endpoint's network namespace, and the datapath reports the socket's
//! namespace cookie — the same number `SO_NETNS_COOKIE` gives any socket
//! opened in that namespace. So the source is the endpoint whose namespace
//! has the event's cookie, with its address of the event's family; events
//! of other namespaces (host processes) are skipped, as Cilium skips them.
//!
//! On the reverse path (recvmsg/getpeername) the peer is the source and
//! the endpoint the destination, as in Cilium's sock parser.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::models::MonitorEvent;

use crate::daemon::Daemon;

/// An unknown namespace re-reads the endpoints, at most this often.
const MISS_REFRESH: Duration = Duration::from_millis(200);

/// `SO_NETNS_COOKIE` (asm-generic, so x86-64 and arm64).
const SO_NETNS_COOKIE: libc::c_int = 71;

#[derive(Debug, Clone, PartialEq)]
struct SockEndpoint {
    id: u16,
    identity: u32,
    ipv4: Option<IpAddr>,
    ipv6: Option<IpAddr>,
}

pub struct SockSources {
    daemon: Arc<Daemon>,
    by_cookie: HashMap<u64, SockEndpoint>,
    /// Each endpoint's namespace path and its cookie, so a refresh only
    /// enters namespaces it has not seen.
    cookies: HashMap<u16, (String, u64)>,
    refreshed: Option<Instant>,
}

impl SockSources {
    pub fn new(daemon: Arc<Daemon>) -> Self {
        SockSources {
            daemon,
            by_cookie: HashMap::new(),
            cookies: HashMap::new(),
            refreshed: None,
        }
    }

    /// The event with its sides filled in, or `None` when its socket is no
    /// local endpoint's.
    pub fn resolve(&mut self, ev: &MonitorEvent) -> Option<MonitorEvent> {
        let cookie = ev.sock.as_ref()?.netns_cookie;
        if !self.by_cookie.contains_key(&cookie)
            && self.refreshed.is_none_or(|t| t.elapsed() >= MISS_REFRESH)
        {
            self.refresh();
        }
        let ep = self.by_cookie.get(&cookie)?;
        named(ev, ep)
    }

    fn refresh(&mut self) {
        self.refreshed = Some(Instant::now());
        let mut by_cookie = HashMap::new();
        let mut cookies = HashMap::new();
        for ep in self.daemon.endpoint_list() {
            let net = &ep.status.networking;
            if net.netns.is_empty() {
                continue;
            }
            let cookie = match self.cookies.get(&ep.id) {
                Some((path, cookie)) if *path == net.netns => *cookie,
                _ => match netns_cookie(Path::new(&net.netns)) {
                    Ok(cookie) => cookie,
                    // Gone meanwhile, or not a namespace: not a source.
                    Err(_) => continue,
                },
            };
            cookies.insert(ep.id, (net.netns.clone(), cookie));
            let first = |get: fn(&api::models::AddressPair) -> Option<&String>| {
                net.addressing
                    .iter()
                    .find_map(|a| get(a)?.parse::<IpAddr>().ok())
            };
            by_cookie.insert(
                cookie,
                SockEndpoint {
                    id: ep.id,
                    identity: ep.status.identity.id,
                    ipv4: first(|a| a.ipv4.as_ref()),
                    ipv6: first(|a| a.ipv6.as_ref()),
                },
            );
        }
        self.by_cookie = by_cookie;
        self.cookies = cookies;
    }
}

/// The event as a flow's sides: on the forward path the endpoint sends to
/// the (pre or post translation) destination; on the reverse path that
/// address answers the endpoint. The source port is unknown (0).
fn named(ev: &MonitorEvent, ep: &SockEndpoint) -> Option<MonitorEvent> {
    let ipv6 = ev.dst_ip.contains(':');
    let own = if ipv6 { ep.ipv6 } else { ep.ipv4 }?;
    let reverse = ev
        .sock
        .as_ref()
        .is_some_and(|s| s.xlate_point.ends_with("-rev"));
    let mut out = ev.clone();
    out.endpoint = ep.id;
    if reverse {
        out.direction = "ingress".into();
        out.src_ip = ev.dst_ip.clone();
        out.src_port = ev.dst_port;
        out.src_identity = ev.dst_identity;
        out.dst_ip = own.to_string();
        out.dst_port = 0;
        out.dst_identity = ep.identity;
    } else {
        out.direction = "egress".into();
        out.src_ip = own.to_string();
        out.src_port = 0;
        out.src_identity = ep.identity;
    }
    Some(out)
}

/// The cookie of the network namespace at `path`: a socket opened inside
/// it, on a thread that enters it and ends.
fn netns_cookie(path: &Path) -> std::io::Result<u64> {
    let ns = std::fs::File::open(path)?;
    cni::plumbing::netns::run_in(&ns, path, || {
        socket_netns_cookie().map_err(|e| cni::CniError::plumbing("SO_NETNS_COOKIE", e.to_string()))
    })
    .map_err(|e| std::io::Error::other(e.to_string()))
}

fn socket_netns_cookie() -> std::io::Result<u64> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket(2); the fd is owned (and closed) below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is not owned elsewhere.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cookie`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::models::SockTrace;

    fn event(point: &str, dst: &str) -> MonitorEvent {
        MonitorEvent {
            kind: api::models::monitor_kind::TRACE_SOCK.into(),
            dst_ip: dst.into(),
            dst_port: 80,
            dst_identity: 2,
            protocol: 6,
            sock: Some(SockTrace {
                xlate_point: point.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn client() -> SockEndpoint {
        SockEndpoint {
            id: 7,
            identity: 1234,
            ipv4: Some("10.0.0.5".parse().unwrap()),
            ipv6: None,
        }
    }

    #[test]
    fn forward_translations_come_from_the_endpoint() {
        let out = named(&event("pre-xlate-fwd", "10.96.0.10"), &client()).unwrap();
        assert_eq!(
            (out.src_ip.as_str(), out.src_port, out.src_identity),
            ("10.0.0.5", 0, 1234)
        );
        assert_eq!((out.dst_ip.as_str(), out.dst_port), ("10.96.0.10", 80));
        assert_eq!((out.endpoint, out.direction.as_str()), (7, "egress"));
    }

    #[test]
    fn reverse_translations_answer_the_endpoint() {
        let out = named(&event("post-xlate-rev", "10.96.0.10"), &client()).unwrap();
        assert_eq!(
            (out.src_ip.as_str(), out.src_port, out.src_identity),
            ("10.96.0.10", 80, 2)
        );
        assert_eq!(
            (out.dst_ip.as_str(), out.dst_port, out.dst_identity),
            ("10.0.0.5", 0, 1234)
        );
    }

    #[test]
    fn an_endpoint_without_the_events_family_is_no_source() {
        assert_eq!(
            named(&event("pre-xlate-fwd", "fd00:96::1"), &client()),
            None
        );
    }

    #[test]
    fn this_namespace_has_a_cookie() {
        let ours = netns_cookie(Path::new("/proc/self/ns/net")).unwrap();
        assert_ne!(ours, 0);
        assert_eq!(ours, socket_netns_cookie().unwrap());
    }
}

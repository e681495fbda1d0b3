//! The monitor hub: reads the datapath's event ring and fans events out to
//! every `cilium monitor` client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::models::{monitor_kind, MonitorEvent};
use datapath::{
    events::{
        ct_state_text, drop_reason_text, match_type_text, observation_point_text, xlate_point_text,
    },
    Event, EventKind, EventReader, RingEvent,
};
use tokio::{
    io::unix::AsyncFd,
    sync::{broadcast, watch},
};

/// Subscribers that fall this far behind lose the oldest events.
const BACKLOG: usize = 4096;
/// How often the datapath's lost-event count is read while events flow.
const LOST_CHECK: Duration = Duration::from_millis(100);
/// The pause after a drain, so that the next one takes what came meanwhile
/// (a flow reaches its clients at most this much later).
const GATHER: Duration = Duration::from_millis(1);
/// A drain this large goes on at once: the ring is filling fast.
const BATCH_NOW: usize = 1024;

#[derive(Clone)]
pub struct MonitorHub {
    tx: broadcast::Sender<Arc<MonitorEvent>>,
    closed: watch::Sender<bool>,
    /// Bumped on every new subscriber, so producers that only work for
    /// listeners (the proxy's access log) start at once.
    subscribed: watch::Sender<u64>,
}

impl MonitorHub {
    pub fn new() -> Self {
        MonitorHub {
            tx: broadcast::channel(BACKLOG).0,
            closed: watch::channel(false).0,
            subscribed: watch::channel(0).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<MonitorEvent>> {
        let rx = self.tx.subscribe();
        self.subscribed.send_modify(|n| *n += 1);
        rx
    }

    /// Whether some monitor client is connected now.
    pub fn has_listeners(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Changes whenever a client subscribes.
    pub fn subscriptions(&self) -> watch::Receiver<u64> {
        self.subscribed.subscribe()
    }

    /// Resolves once the agent shuts down, so open streams can end.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closed.subscribe();
        async move {
            let _ = rx.wait_for(|closed| *closed).await;
        }
    }

    /// Sends an event that does not come from the datapath (the proxy's).
    pub fn publish(&self, event: MonitorEvent) {
        let _ = self.tx.send(Arc::new(event));
    }

    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// Drains the ring as it becomes readable, for as long as the agent runs
    /// and some client listens. With nobody listening the programs are told
    /// to build no events (like Cilium's monitor, which costs nothing
    /// without consumers): the agent costs the datapath no wake-ups and a
    /// connection no event work. A new client starts from a ring emptied of
    /// what happened before it came.
    pub async fn run(self, mut reader: EventReader) -> std::io::Result<()> {
        // A previous agent may have left the switch on.
        reader.set_wanted(false).map_err(std::io::Error::other)?;
        let mut producing = false;
        // SAFETY: the reader owns the ring's fd and keeps it open, unchanged,
        // for as long as the AsyncFd holds it.
        let mut fd = unsafe { AsyncFd::register(reader)? };
        let mut subscriptions = self.subscriptions();
        let mut lost_before = fd.get_ref().lost_in_ring();
        let mut lost_checked = Instant::now();
        // One buffer for every drain: a batch's vector grown anew each time
        // made glibc consolidate its free lists on every large free.
        let mut events = Vec::with_capacity(BATCH_NOW);
        loop {
            let listening = self.has_listeners();
            if listening != producing {
                fd.get_mut()
                    .set_wanted(listening)
                    .map_err(std::io::Error::other)?;
                producing = listening;
                if listening {
                    fd.get_mut().drain();
                    lost_before = fd.get_ref().lost_in_ring();
                }
            }
            if !listening {
                let _ = subscriptions.changed().await;
                continue;
            }
            let mut guard = tokio::select! {
                guard = fd.readable_mut() => guard?,
                // Re-check now and then whether anyone still listens.
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
            };
            guard.get_inner_mut().drain_into(&mut events);
            // Reading the lost count is a bpf() syscall: once per
            // LOST_CHECK, not once per drain.
            let lost = (lost_checked.elapsed() >= LOST_CHECK).then(|| {
                lost_checked = Instant::now();
                guard.get_inner().lost_in_ring()
            });
            guard.clear_ready();
            // The ring overflowed while the agent was not scheduled: every
            // client hears how many events nobody will ever see.
            if let Some(lost) = lost.filter(|lost| *lost > lost_before) {
                let _ = self.tx.send(Arc::new(MonitorEvent {
                    kind: monitor_kind::LOST.into(),
                    lost: lost - lost_before,
                    ..Default::default()
                }));
                lost_before = lost;
            }
            let batch = events.len();
            for ev in events.drain(..) {
                // A client that left meanwhile is not an error.
                let _ = self.tx.send(Arc::new(to_model(&ev)));
            }
            // A burst (the ring overflowing) leaves no large buffer behind.
            events.shrink_to(BATCH_NOW);
            // Under load, let events gather in the ring for a moment rather
            // than waking for every few: one wake-up then carries a batch.
            if batch < BATCH_NOW {
                tokio::time::sleep(GATHER).await;
            }
        }
    }
}

impl Default for MonitorHub {
    fn default() -> Self {
        Self::new()
    }
}

pub fn to_model(ev: &RingEvent) -> MonitorEvent {
    let kind = match ev.kind() {
        EventKind::Drop => monitor_kind::DROP,
        EventKind::Trace => monitor_kind::TRACE,
        EventKind::PolicyVerdict => monitor_kind::POLICY_VERDICT,
        EventKind::TraceSock => monitor_kind::TRACE_SOCK,
        EventKind::Unknown(_) => monitor_kind::DEBUG,
    };
    let is = |k: EventKind| ev.kind() == k;
    MonitorEvent {
        kind: kind.into(),
        timestamp_ns: ev.timestamp,
        cpu: ev.cpu,
        endpoint: ev.ep_id,
        ifindex: ev.ifindex,
        src_identity: ev.src_identity,
        dst_identity: ev.dst_identity,
        reason: if is(EventKind::Drop) { ev.subtype } else { 0 },
        reason_text: if is(EventKind::Drop) {
            drop_reason_text(ev.subtype).into()
        } else {
            String::new()
        },
        observation_point: if is(EventKind::Trace) {
            observation_point_text(ev.subtype).into()
        } else {
            String::new()
        },
        verdict: if is(EventKind::PolicyVerdict) {
            if ev.verdict == 1 { "allow" } else { "deny" }.into()
        } else {
            String::new()
        },
        direction: if ev.dir == 1 { "egress" } else { "ingress" }.into(),
        match_type: match_type_text(ev.match_type).into(),
        ct_state: ct_state_text(ev.ct_state).into(),
        protocol: ev.protocol,
        src_ip: ev.src_ip().to_string(),
        dst_ip: ev.dst_ip().to_string(),
        src_port: u16::from_be(ev.sport),
        dst_port: u16::from_be(ev.dport),
        tcp_flags: tcp_flags(ev),
        length: ev.length,
        sock: ev.sock.map(|ids| api::models::SockTrace {
            xlate_point: xlate_point_text(ev.subtype).into(),
            cookie: ids.sock_cookie,
            netns_cookie: ids.netns_cookie,
            cgroup_id: ids.cgroup_id,
        }),
        // Labels and local endpoints: each stream adds them (api/monitor_stream.rs).
        ..Default::default()
    }
}

/// A proxy access-log record as a monitor event of kind "l7".
pub fn l7_model(ev: &proxy::access_log::AccessLogEvent) -> MonitorEvent {
    use proxy::access_log::{L7Protocol, L7Verdict};
    let split = |addr: &str| -> (String, u16) {
        match addr.parse::<std::net::SocketAddr>() {
            Ok(a) => (a.ip().to_string(), a.port()),
            Err(_) => (addr.to_string(), 0),
        }
    };
    let (src_ip, src_port) = split(&ev.src);
    let (dst_ip, dst_port) = split(&ev.dst);
    MonitorEvent {
        kind: monitor_kind::L7.into(),
        timestamp_ns: ev.time_ms.saturating_mul(1_000_000),
        endpoint: u16::try_from(ev.endpoint_id).unwrap_or(0),
        src_identity: ev.src_identity,
        dst_identity: ev.dst_identity,
        verdict: match ev.verdict {
            L7Verdict::Forwarded => "allow",
            L7Verdict::Denied | L7Verdict::Error => "deny",
        }
        .into(),
        direction: ev.direction.clone(),
        protocol: ev.transport.protocol_number(),
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        l7: Some(api::models::L7Record {
            protocol: match ev.protocol {
                L7Protocol::Http => "http",
                L7Protocol::Http2 => "http2",
                L7Protocol::Kafka => "kafka",
                L7Protocol::Dns => "dns",
            }
            .into(),
            verdict: format!("{:?}", ev.verdict),
            method: ev.method.clone(),
            path: ev.path.clone(),
            host: ev.host.clone().unwrap_or_default(),
            topics: ev.topics.clone(),
            status: ev.status,
            proxy_port: ev.proxy_port,
            dns: ev.dns.as_ref().map(|d| api::models::L7Dns {
                kind: match d.kind {
                    proxy::access_log::DnsMessageKind::Request => "request",
                    proxy::access_log::DnsMessageKind::Response => "response",
                }
                .into(),
                query: d.query.clone(),
                qtypes: d.qtypes.clone(),
                rcode: d.rcode,
                ips: d.ips.clone(),
                ttl: d.ttl,
                cnames: d.cnames.clone(),
            }),
        }),
        ..Default::default()
    }
}

fn tcp_flags(ev: &Event) -> Vec<String> {
    if ev.protocol != 6 {
        return Vec::new();
    }
    [
        (0x02, "SYN"),
        (0x10, "ACK"),
        (0x01, "FIN"),
        (0x04, "RST"),
        (0x08, "PSH"),
    ]
    .into_iter()
    .filter(|(bit, _)| ev.tcp_flags & bit != 0)
    .map(|(_, name)| name.to_string())
    .collect()
}

#[cfg(test)]
mod drop_reason_tests {
    /// `cilium monitor` and Hubble name a drop code alike: every code our
    /// datapath names carries Cilium's text for that code.
    #[test]
    fn datapath_drop_codes_carry_ciliums_texts() {
        for code in 1..=u8::MAX {
            let ours = datapath::events::drop_reason_text(code);
            if ours != "Unknown reason" {
                assert_eq!(
                    ours,
                    hubble::names::drop_reason_text(u32::from(code)),
                    "code {code}"
                );
            }
        }
    }
}

//! `/v1/monitor`: datapath events as newline-delimited JSON, until the
//! client goes away. Each stream names both sides of every event (identity
//! labels, local endpoints), filters on the agent's side, and tells its
//! client how many events it lost when it fell behind, as a
//! `{"kind":"lost","lost":N}` line. A slow client only ever loses its own
//! events: the hub never waits for it.

use std::net::IpAddr;
use std::sync::{atomic::Ordering, Arc};
use std::time::{Duration, Instant};

use api::models::{monitor_kind, MonitorEvent};
use axum::{
    body::{Body, Bytes},
    extract::{RawQuery, State},
    response::Response,
    Extension,
};
use futures_util::stream;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use super::{monitor_filter::Filter, AppState};
use crate::daemon::{observe::MonitorContext, Daemon};
use crate::error::AgentError;
use crate::metrics::Registry;

/// How long a stream trusts its view of identities and endpoints.
const CONTEXT_TTL: Duration = Duration::from_secs(2);
/// An unknown identity refreshes the view, at most this often.
const MISS_REFRESH: Duration = Duration::from_millis(100);

/// Names the sides of events from a periodically refreshed snapshot, so
/// the daemon's lock is taken rarely, not per event.
struct Namer {
    daemon: Arc<Daemon>,
    context: MonitorContext,
    taken: Instant,
}

impl Namer {
    fn new(daemon: Arc<Daemon>) -> Self {
        let context = daemon.monitor_context();
        Namer {
            daemon,
            context,
            taken: Instant::now(),
        }
    }

    fn refresh_if(&mut self, older_than: Duration) {
        if self.taken.elapsed() >= older_than {
            self.context = self.daemon.monitor_context();
            self.taken = Instant::now();
        }
    }

    fn name(&mut self, ev: &MonitorEvent) -> MonitorEvent {
        self.refresh_if(CONTEXT_TTL);
        let known =
            |ctx: &MonitorContext, id: u32| id == 0 || ctx.identity_labels.contains_key(&id);
        if !known(&self.context, ev.src_identity) || !known(&self.context, ev.dst_identity) {
            self.refresh_if(MISS_REFRESH);
        }
        name_event(&self.context, ev)
    }
}

/// The event with labels and local endpoints filled in.
pub fn name_event(ctx: &MonitorContext, ev: &MonitorEvent) -> MonitorEvent {
    let (src_endpoint, dst_endpoint) = event_endpoints(ctx, ev);
    let mut out = ev.clone();
    out.src_labels = identity_labels(ctx, ev.src_identity).to_vec();
    out.dst_labels = identity_labels(ctx, ev.dst_identity).to_vec();
    out.src_endpoint = src_endpoint;
    out.dst_endpoint = dst_endpoint;
    out
}

/// An identity's labels; none for 0 or an identity the context lacks.
pub fn identity_labels(ctx: &MonitorContext, id: u32) -> &[String] {
    match id {
        0 => &[],
        id => ctx.identity_labels.get(&id).map_or(&[], |l| l.as_slice()),
    }
}

/// The local endpoints (0: none) that sent and received an event.
pub fn event_endpoints(ctx: &MonitorContext, ev: &MonitorEvent) -> (u16, u16) {
    let endpoint_of = |ip: &str| -> u16 {
        ip.parse::<IpAddr>()
            .ok()
            .and_then(|ip| ctx.endpoint_by_ip.get(&ip).copied())
            .unwrap_or(0)
    };
    // The program that reported the event runs for the sending endpoint on
    // egress, for the receiving one on ingress.
    let reporter = (ev.endpoint != 0).then_some(ev.endpoint);
    let src = match (ev.direction.as_str(), reporter) {
        ("egress", Some(id)) => id,
        _ => endpoint_of(&ev.src_ip),
    };
    let dst = match (ev.direction.as_str(), reporter) {
        ("ingress", Some(id)) => id,
        _ => endpoint_of(&ev.dst_ip),
    };
    (src, dst)
}

#[derive(Serialize)]
struct Lost {
    kind: &'static str,
    lost: u64,
}

fn line<T: Serialize>(value: &T) -> Bytes {
    let mut line = serde_json::to_vec(value).expect("events serialize");
    line.push(b'\n');
    Bytes::from(line)
}

pub async fn stream(
    State(s): State<AppState>,
    Extension(registry): Extension<Arc<Registry>>,
    RawQuery(query): RawQuery,
) -> Result<Response, AgentError> {
    let filter = Filter::parse(query.as_deref())?;
    let rx = s.monitor.subscribe();
    let closed = Box::pin(s.monitor.closed());
    let namer = Namer::new(s.daemon.clone());
    let events = stream::unfold(
        (rx, filter, closed, namer, registry),
        |(mut rx, filter, mut closed, mut namer, registry)| async move {
            loop {
                let received = tokio::select! {
                    r = rx.recv() => r,
                    _ = &mut closed => return None,
                };
                let bytes = match received {
                    Ok(ev) => {
                        let named = namer.name(&ev);
                        if !filter.matches(&named) {
                            continue;
                        }
                        line(&named)
                    }
                    Err(RecvError::Lagged(n)) => {
                        registry.monitor_lost_events.fetch_add(n, Ordering::Relaxed);
                        line(&Lost {
                            kind: monitor_kind::LOST,
                            lost: n,
                        })
                    }
                    Err(RecvError::Closed) => return None,
                };
                let next = (rx, filter, closed, namer, registry);
                return Some((Ok::<_, std::io::Error>(bytes), next));
            }
        },
    );
    Ok(Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(events))
        .expect("static response parts"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_get_labels_and_endpoints_of_both_sides() {
        let mut ctx = MonitorContext::default();
        ctx.identity_labels
            .insert(256, Arc::new(vec!["k8s:app=web".into()]));
        ctx.identity_labels
            .insert(2, Arc::new(vec!["reserved:world".into()]));
        ctx.endpoint_by_ip.insert("10.0.0.5".parse().unwrap(), 7);
        ctx.endpoint_by_ip.insert("10.0.0.6".parse().unwrap(), 8);
        let ev = MonitorEvent {
            kind: "drop".into(),
            endpoint: 8,
            direction: "ingress".into(),
            src_identity: 256,
            dst_identity: 999,
            src_ip: "10.0.0.5".into(),
            dst_ip: "10.0.0.6".into(),
            ..Default::default()
        };
        let named = name_event(&ctx, &ev);
        assert_eq!(named.src_labels, ["k8s:app=web"]);
        assert!(named.dst_labels.is_empty(), "unknown identity");
        assert_eq!((named.src_endpoint, named.dst_endpoint), (7, 8));

        let egress = MonitorEvent {
            endpoint: 7,
            direction: "egress".into(),
            src_identity: 256,
            dst_identity: 2,
            src_ip: "10.0.0.5".into(),
            dst_ip: "1.1.1.1".into(),
            ..Default::default()
        };
        let named = name_event(&ctx, &egress);
        assert_eq!(named.dst_labels, ["reserved:world"]);
        assert_eq!((named.src_endpoint, named.dst_endpoint), (7, 0));
    }

    #[test]
    fn ipv6_addresses_find_local_endpoints() {
        let mut ctx = MonitorContext::default();
        ctx.endpoint_by_ip.insert("fd00::5".parse().unwrap(), 7);
        ctx.endpoint_by_ip.insert("fd00::6".parse().unwrap(), 8);
        let packet = MonitorEvent {
            kind: "trace".into(),
            src_ip: "fd00::5".into(),
            dst_ip: "fd00::6".into(),
            ..Default::default()
        };
        assert_eq!(event_endpoints(&ctx, &packet), (7, 8));

        // A socket LB translation reported for the sending endpoint: the
        // backend it was sent to is found by its IPv6 address.
        let sock = MonitorEvent {
            kind: "trace-sock".into(),
            endpoint: 7,
            direction: "egress".into(),
            src_ip: "fd00::5".into(),
            dst_ip: "fd00::6".into(),
            ..Default::default()
        };
        assert_eq!(event_endpoints(&ctx, &sock), (7, 8));

        let remote = MonitorEvent {
            src_ip: "fd00::99".into(),
            dst_ip: "not an address".into(),
            ..Default::default()
        };
        assert_eq!(event_endpoints(&ctx, &remote), (0, 0));
    }

    #[test]
    fn lost_line_shape() {
        let bytes = line(&Lost {
            kind: monitor_kind::LOST,
            lost: 12,
        });
        assert_eq!(&bytes[..], b"{\"kind\":\"lost\",\"lost\":12}\n");
        let ev: MonitorEvent = serde_json::from_slice(&bytes).unwrap();
        assert_eq!((ev.kind.as_str(), ev.lost), ("lost", 12));
    }
}

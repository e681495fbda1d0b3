//! Access-log events: one per L7 request, sent as JSON lines to every
//! connected control client (the agent forwards them to `cilium monitor
//! --type l7`). Sending never blocks the data path: with no listener or a slow
//! one, events are dropped.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::control::protocol::Direction;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L7Protocol {
    Http,
    Http2,
    Kafka,
    Dns,
}

/// The transport a request came over (Cilium's record has its protocol
/// number): DNS comes over UDP or TCP, everything else over TCP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
}

impl Transport {
    /// The IP protocol number (6, 17).
    pub fn protocol_number(self) -> u8 {
        match self {
            Transport::Tcp => 6,
            Transport::Udp => 17,
        }
    }
}

/// Cilium's L7 verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum L7Verdict {
    Forwarded,
    Denied,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLogEvent {
    /// Unix time in milliseconds.
    pub time_ms: u64,
    pub verdict: L7Verdict,
    pub protocol: L7Protocol,
    /// Absent from older proxies' events, which only logged TCP.
    #[serde(default)]
    pub transport: Transport,
    /// HTTP method, the Kafka API key name (`produce`), or the DNS query
    /// types (`A`, `A,AAAA`).
    pub method: String,
    /// HTTP request target; the DNS query name; empty for Kafka.
    #[serde(default)]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Kafka topics named by the request (empty for HTTP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// HTTP status, Kafka error code (0 = forwarded, 29 = denied), or DNS
    /// rcode (0 NOERROR, 3 NXDOMAIN, 5 REFUSED).
    pub status: u16,
    /// DNS requests and answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsLogRecord>,
    pub src_identity: u32,
    pub dst_identity: u32,
    pub src: String,
    pub dst: String,
    pub endpoint_id: u64,
    pub direction: String,
    pub proxy_port: u16,
}

/// Which DNS message an event describes (Cilium logs both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsMessageKind {
    Request,
    Response,
}

/// Cilium's DNS log record: the query, and for an answer what it said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsLogRecord {
    pub kind: DnsMessageKind,
    /// Normalized query name (lowercase, no trailing dot).
    pub query: String,
    pub qtypes: Vec<String>,
    pub rcode: u8,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    #[serde(default)]
    pub ttl: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cnames: Vec<String>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How a request ended, for the request counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    Forwarded,
    Denied,
    /// Allowed, but the upstream failed (connect, or a broken response).
    Error,
    /// Not a request the parser could read.
    ParseError,
}

impl RequestOutcome {
    const ALL: [RequestOutcome; 4] = [
        RequestOutcome::Forwarded,
        RequestOutcome::Denied,
        RequestOutcome::Error,
        RequestOutcome::ParseError,
    ];
}

const DIRECTIONS: [Direction; 2] = [Direction::Ingress, Direction::Egress];
const PROTOCOLS: [L7Protocol; 4] = [
    L7Protocol::Http,
    L7Protocol::Http2,
    L7Protocol::Kafka,
    L7Protocol::Dns,
];
const SLOTS: usize = DIRECTIONS.len() * PROTOCOLS.len() * RequestOutcome::ALL.len();

/// One series of the request counters, as the `status` reply carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    pub direction: Direction,
    pub protocol: L7Protocol,
    pub outcome: RequestOutcome,
    pub count: u64,
}

/// Requests handled since the proxy started, by direction, protocol and
/// outcome. Always on: one relaxed atomic add per request.
#[derive(Debug)]
pub struct RequestCounters {
    counts: [AtomicU64; SLOTS],
}

impl Default for RequestCounters {
    fn default() -> Self {
        RequestCounters {
            counts: [const { AtomicU64::new(0) }; SLOTS],
        }
    }
}

impl RequestCounters {
    fn slot(direction: Direction, protocol: L7Protocol, outcome: RequestOutcome) -> usize {
        let d = direction as usize;
        let p = protocol as usize;
        let o = outcome as usize;
        (d * PROTOCOLS.len() + p) * RequestOutcome::ALL.len() + o
    }

    pub fn record(&self, direction: Direction, protocol: L7Protocol, outcome: RequestOutcome) {
        self.counts[Self::slot(direction, protocol, outcome)].fetch_add(1, Ordering::Relaxed);
    }

    /// Every series counted at least once.
    pub fn snapshot(&self) -> Vec<RequestCount> {
        let mut out = Vec::new();
        for direction in DIRECTIONS {
            for protocol in PROTOCOLS {
                for outcome in RequestOutcome::ALL {
                    let count = self.counts[Self::slot(direction, protocol, outcome)]
                        .load(Ordering::Relaxed);
                    if count > 0 {
                        out.push(RequestCount {
                            direction,
                            protocol,
                            outcome,
                            count,
                        });
                    }
                }
            }
        }
        out
    }
}

/// Fan-out of events to control clients. Building an event costs more than
/// forwarding the request it describes, so nothing is built while no client
/// wants events (see `Subscription`).
#[derive(Debug, Clone)]
pub struct AccessLog {
    sender: broadcast::Sender<AccessLogEvent>,
    wanted: Arc<AtomicUsize>,
    /// Counted whether or not anyone wants events.
    counters: Arc<RequestCounters>,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            sender: broadcast::channel(4096).0,
            wanted: Arc::default(),
            counters: Arc::default(),
        }
    }
}

impl AccessLog {
    pub fn counters(&self) -> &RequestCounters {
        &self.counters
    }

    /// Whether some client wants events now.
    pub fn enabled(&self) -> bool {
        self.wanted.load(Ordering::Relaxed) > 0
    }

    pub fn emit(&self, event: AccessLogEvent) {
        // An error only means nobody listens right now.
        let _ = self.sender.send(event);
    }

    /// A client's stream of events, wanted from the start.
    pub fn subscribe(&self) -> Subscription {
        self.wanted.fetch_add(1, Ordering::Relaxed);
        Subscription {
            events: self.sender.subscribe(),
            wanted: true,
            counter: self.wanted.clone(),
        }
    }
}

/// One client's events and whether it wants them (`access_log` command).
pub struct Subscription {
    pub events: broadcast::Receiver<AccessLogEvent>,
    wanted: bool,
    counter: Arc<AtomicUsize>,
}

impl Subscription {
    pub fn set_wanted(&mut self, wanted: bool) {
        if wanted != self.wanted {
            if wanted {
                self.counter.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counter.fetch_sub(1, Ordering::Relaxed);
            }
            self.wanted = wanted;
        }
    }

    pub fn wanted(&self) -> bool {
        self.wanted
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.set_wanted(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_direction_protocol_and_outcome() {
        let log = AccessLog::default();
        let c = log.clone();
        c.counters()
            .record(Direction::Egress, L7Protocol::Kafka, RequestOutcome::Denied);
        c.counters()
            .record(Direction::Egress, L7Protocol::Kafka, RequestOutcome::Denied);
        log.counters().record(
            Direction::Ingress,
            L7Protocol::Http,
            RequestOutcome::ParseError,
        );
        let snapshot = log.counters().snapshot();
        assert_eq!(
            snapshot,
            [
                RequestCount {
                    direction: Direction::Ingress,
                    protocol: L7Protocol::Http,
                    outcome: RequestOutcome::ParseError,
                    count: 1
                },
                RequestCount {
                    direction: Direction::Egress,
                    protocol: L7Protocol::Kafka,
                    outcome: RequestOutcome::Denied,
                    count: 2
                }
            ]
        );
        assert_eq!(
            serde_json::to_string(&snapshot[0]).unwrap(),
            r#"{"direction":"ingress","protocol":"http","outcome":"parse_error","count":1}"#
        );
    }

    #[test]
    fn events_name_their_transport_and_older_ones_were_tcp() {
        let older = r#"{"time_ms":1,"verdict":"Forwarded","protocol":"dns","method":"A",
            "status":0,"src_identity":1,"dst_identity":2,"src":"10.0.0.1:1000",
            "dst":"10.0.0.53:53","endpoint_id":5,"direction":"egress","proxy_port":1}"#;
        let event: AccessLogEvent = serde_json::from_str(older).unwrap();
        assert_eq!(event.transport, Transport::Tcp);
        let udp = AccessLogEvent {
            transport: Transport::Udp,
            ..event
        };
        let text = serde_json::to_string(&udp).unwrap();
        assert!(text.contains(r#""transport":"udp""#), "{text}");
        assert_eq!(Transport::Udp.protocol_number(), 17);
        assert_eq!(Transport::Tcp.protocol_number(), 6);
    }
}

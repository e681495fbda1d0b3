//! Access-log events: one per L7 request, sent as JSON lines to every
//! connected control client (the agent forwards them to `cilium monitor
//! --type l7`). Sending never blocks the data path: with no listener or a slow
//! one, events are dropped.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::broadcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L7Protocol {
    Http,
    Http2,
    Kafka,
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
    /// HTTP method, or the Kafka API key name (`produce`).
    pub method: String,
    /// HTTP request target; empty for Kafka.
    #[serde(default)]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Kafka topics named by the request (empty for HTTP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// HTTP status, or Kafka error code (0 = forwarded, 29 = denied).
    pub status: u16,
    pub src_identity: u32,
    pub dst_identity: u32,
    pub src: String,
    pub dst: String,
    pub endpoint_id: u64,
    pub direction: String,
    pub proxy_port: u16,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Fan-out of events to control clients. Building an event costs more than
/// forwarding the request it describes, so nothing is built while no client
/// wants events (see `Subscription`).
#[derive(Debug, Clone)]
pub struct AccessLog {
    sender: broadcast::Sender<AccessLogEvent>,
    wanted: Arc<AtomicUsize>,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            sender: broadcast::channel(4096).0,
            wanted: Arc::default(),
        }
    }
}

impl AccessLog {
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

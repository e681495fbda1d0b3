//! DNS: the proxy side of Cilium's DNS-aware policy. A redirect with parser
//! `dns` listens on its port for UDP and TCP (`listener`), judges every query
//! by its names against `rules.dns` (`exchange`), answers denied ones with
//! REFUSED or NXDOMAIN, forwards allowed ones to the server the pod asked
//! (`udp` through `upstream`'s sockets, `tcp`), and holds each answer
//! carrying new addresses until the agent has let the datapath allow them
//! (`gate`), so the pod's first connection to a name it just resolved never
//! races the policy.
//!
//! The wire format (`wire`) and what an answer tells (`answer`) are pure;
//! malformed messages are dropped and counted, never answered.

pub mod answer;
pub mod exchange;
pub mod gate;
pub mod listener;
pub mod tcp;
pub mod udp;
pub mod upstream;
pub mod wire;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use self::gate::AnswerGate;
use self::upstream::UpstreamPool;

/// How long the proxy waits for a server's answer to a forwarded query
/// (Cilium's `ProxyForwardTimeout`).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// `--tofqdns-dns-reject-response-code`: the answer to a denied query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RejectResponse {
    #[default]
    Refused,
    NameError,
}

impl RejectResponse {
    pub fn rcode(self) -> u8 {
        match self {
            RejectResponse::Refused => wire::RCODE_REFUSED,
            RejectResponse::NameError => wire::RCODE_NXDOMAIN,
        }
    }
}

impl FromStr for RejectResponse {
    type Err = String;

    /// Cilium's spellings: `refused`, `nameError`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "refused" => Ok(RejectResponse::Refused),
            "nameerror" => Ok(RejectResponse::NameError),
            _ => Err(format!("{text:?}: expected \"refused\" or \"nameError\"")),
        }
    }
}

/// A duration as Cilium's flags write it: `1s`, `500ms`, `1m30s`, `100us`
/// (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?}: expected a duration like 1s, 500ms or 1m30s");
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|_| bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| bad())?;
        rest = &rest[unit_len..];
    }
    if text.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// Proxy-wide DNS settings (command-line flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsSettings {
    pub reject: RejectResponse,
    /// Longest an answer is held waiting for the agent's go-ahead.
    pub max_delay: Duration,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            reject: RejectResponse::Refused,
            max_delay: Duration::from_secs(1),
        }
    }
}

/// What every DNS redirect shares: the settings, the answer gate, the UDP
/// upstream sockets and the count of malformed messages dropped.
#[derive(Debug, Default)]
pub struct DnsRuntime {
    pub settings: DnsSettings,
    pub gate: AnswerGate,
    pub upstreams: UpstreamPool,
    malformed: AtomicU64,
}

impl DnsRuntime {
    pub fn new(settings: DnsSettings) -> Arc<Self> {
        Arc::new(DnsRuntime {
            settings,
            ..DnsRuntime::default()
        })
    }

    pub fn count_malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }

    /// Malformed messages dropped (queries from clients and answers from
    /// servers) since the proxy started.
    pub fn malformed(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_codes_take_ciliums_spellings() {
        assert_eq!("refused".parse(), Ok(RejectResponse::Refused));
        assert_eq!("nameError".parse(), Ok(RejectResponse::NameError));
        assert!("servfail".parse::<RejectResponse>().is_err());
        assert_eq!(RejectResponse::NameError.rcode(), 3);
        assert_eq!(RejectResponse::default().rcode(), 5);
    }

    #[test]
    fn durations_in_go_syntax() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}

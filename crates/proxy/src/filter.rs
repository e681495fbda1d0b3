//! The per-request phases every parser goes through, in pingora's shape: a
//! per-connection context made once at accept (`ConnContext`), then for each
//! request `request_filter` (the policy verdict) and `logging` (the access-log
//! event). HTTP/1.1, HTTP/2 and Kafka requests plug in through `L7Request`.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::access_log::{
    now_ms, AccessLog, AccessLogEvent, DnsLogRecord, L7Protocol, L7Verdict, RequestOutcome,
    Transport,
};
use crate::control::protocol::Direction;
use crate::policy::CompiledPolicy;
use crate::redirect::RedirectShared;

/// What the access log records of a request.
#[derive(Debug, Default, Clone)]
pub struct LogFields {
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub topics: Vec<String>,
    pub dns: Option<DnsLogRecord>,
}

/// A parsed request a redirect's policy can judge.
pub trait L7Request {
    fn protocol(&self) -> L7Protocol;
    fn allowed_by(&self, policy: &CompiledPolicy, remote_identity: u32) -> bool;
    fn log_fields(&self) -> LogFields;
    /// Stands for input the parser could not read (counted as a parse error).
    fn is_malformed(&self) -> bool {
        false
    }
}

/// Everything known about one proxied connection.
#[derive(Debug, Clone)]
pub struct ConnContext {
    pub client: SocketAddr,
    pub original_dst: SocketAddr,
    /// A TCP connection, or one UDP datagram (DNS).
    pub transport: Transport,
    pub src_identity: u32,
    pub dst_identity: u32,
    pub redirect: Arc<RedirectShared>,
    pub log: AccessLog,
}

impl ConnContext {
    /// The peer whose identity the rules are keyed by: the source on
    /// ingress (the destination endpoint's rules), the destination on egress.
    pub fn remote_identity(&self) -> u32 {
        match self.redirect.settings().direction {
            Direction::Ingress => self.src_identity,
            Direction::Egress => self.dst_identity,
        }
    }

    /// Phase 1: the verdict, against the redirect's current policy (policy
    /// updates apply to requests on connections that are already open).
    pub fn request_filter<R: L7Request>(&self, request: &R) -> bool {
        request.allowed_by(&self.redirect.policy(), self.remote_identity())
    }

    /// Phase 2: the request counters, and the access-log event when some
    /// client wants events.
    pub fn logging<R: L7Request>(&self, request: &R, verdict: L7Verdict, status: u16) {
        let settings = self.redirect.settings();
        let outcome = match verdict {
            L7Verdict::Forwarded => RequestOutcome::Forwarded,
            L7Verdict::Denied => RequestOutcome::Denied,
            L7Verdict::Error if request.is_malformed() => RequestOutcome::ParseError,
            L7Verdict::Error => RequestOutcome::Error,
        };
        self.log
            .counters()
            .record(settings.direction, request.protocol(), outcome);
        self.emit(request, verdict, status);
    }

    /// The access-log event alone (no counting), when some client wants
    /// events: for what follows a request, like a DNS answer.
    pub fn emit<R: L7Request>(&self, request: &R, verdict: L7Verdict, status: u16) {
        if !self.log.enabled() {
            return;
        }
        let settings = self.redirect.settings();
        let fields = request.log_fields();
        self.log.emit(AccessLogEvent {
            time_ms: now_ms(),
            verdict,
            protocol: request.protocol(),
            transport: self.transport,
            method: fields.method,
            path: fields.path,
            host: fields.host,
            topics: fields.topics,
            status,
            dns: fields.dns,
            src_identity: self.src_identity,
            dst_identity: self.dst_identity,
            src: self.client.to_string(),
            dst: self.original_dst.to_string(),
            endpoint_id: settings.endpoint_id,
            direction: settings.direction.as_str().to_string(),
            proxy_port: settings.proxy_port,
        });
    }
}

/// A request too malformed to parse, for the access log only.
#[derive(Debug, Clone, Copy)]
pub struct Malformed(pub L7Protocol);

impl L7Request for Malformed {
    fn protocol(&self) -> L7Protocol {
        self.0
    }

    fn allowed_by(&self, _: &CompiledPolicy, _: u32) -> bool {
        false
    }

    fn log_fields(&self) -> LogFields {
        LogFields::default()
    }

    fn is_malformed(&self) -> bool {
        true
    }
}

/// A connection from pod 10.0.0.1 (identity 100) to `original_dst`
/// (identity 300) on a redirect with `parser`, `direction` and the
/// `policies` given as JSON: what unit tests of the parsers run against.
#[cfg(test)]
pub(crate) fn test_context(
    parser: crate::control::protocol::Parser,
    direction: Direction,
    policies: &str,
    original_dst: SocketAddr,
) -> ConnContext {
    let policies: Vec<crate::policy::IdentityRules> =
        serde_json::from_str(policies).expect("test policies");
    let settings = crate::redirect::RedirectSettings {
        proxy_port: 1,
        parser,
        direction,
        endpoint_id: 5,
        source_bind: crate::control::protocol::SourceBind::Node,
        upstream_mark: None,
        mark_with_identity: false,
    };
    ConnContext {
        client: "10.0.0.1:1000".parse().expect("an address"),
        original_dst,
        transport: Transport::Tcp,
        src_identity: 100,
        dst_identity: 300,
        redirect: Arc::new(crate::redirect::RedirectShared::new(
            settings,
            CompiledPolicy::compile(&policies).expect("test policies compile"),
        )),
        log: AccessLog::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::Parser;
    use crate::policy::HttpRequestView;

    fn ctx(direction: Direction) -> ConnContext {
        test_context(
            Parser::Http,
            direction,
            r#"[{"identity": 300, "rules": {"http": [{"path": "/x"}]}}]"#,
            "10.0.0.2:80".parse().unwrap(),
        )
    }

    struct Get;

    impl L7Request for Get {
        fn protocol(&self) -> L7Protocol {
            L7Protocol::Http
        }
        fn allowed_by(&self, policy: &CompiledPolicy, remote: u32) -> bool {
            policy.allows_http(remote, &HttpRequestView::new("GET", "/x", None, &[]))
        }
        fn log_fields(&self) -> LogFields {
            LogFields::default()
        }
    }

    #[test]
    fn rules_are_keyed_by_source_on_ingress_and_destination_on_egress() {
        assert!(!ctx(Direction::Ingress).request_filter(&Get));
        assert!(ctx(Direction::Egress).request_filter(&Get));
        let egress = ctx(Direction::Egress);
        let mut events = egress.log.subscribe();
        egress.logging(&Get, L7Verdict::Forwarded, 200);
        egress.logging(&Malformed(L7Protocol::Http), L7Verdict::Error, 400);
        let counted: Vec<_> = egress
            .log
            .counters()
            .snapshot()
            .iter()
            .map(|c| (c.direction, c.outcome, c.count))
            .collect();
        assert_eq!(
            counted,
            [
                (Direction::Egress, RequestOutcome::Forwarded, 1),
                (Direction::Egress, RequestOutcome::ParseError, 1)
            ]
        );
        let event = events.events.try_recv().unwrap();
        assert_eq!(
            (event.src_identity, event.dst_identity, event.endpoint_id),
            (100, 300, 5)
        );
        assert_eq!(event.direction, "egress");
    }
}

//! One query's life, the same over UDP and TCP: parse and judge it
//! (`judge`), then, for a forwarded one, read the server's answer, log it
//! and hold it at the gate while the agent allows its addresses
//! (`admit_answer`). Transport code only moves bytes.

use crate::access_log::{DnsLogRecord, DnsMessageKind, L7Protocol, L7Verdict};
use crate::filter::{ConnContext, L7Request, LogFields, Malformed};
use crate::policy::CompiledPolicy;

use super::answer::{summarize, AnswerSummary};
use super::gate::AnswerNotice;
use super::wire::{self, Message};
use super::DnsRuntime;

/// What to do with a query.
#[derive(Debug)]
pub enum Judgement {
    /// Allowed: send the query bytes, unchanged, to the original destination.
    Forward(Message),
    /// Denied: send this answer back instead.
    Answer(Vec<u8>),
    /// Malformed: dropped and counted.
    Drop,
}

/// A parsed query as the policy and the access log see it.
pub struct DnsQuery<'a>(pub &'a Message);

impl DnsQuery<'_> {
    fn names(&self) -> Vec<&str> {
        self.0.questions.iter().map(|q| q.name.as_str()).collect()
    }

    fn qtypes(&self) -> Vec<String> {
        self.0
            .questions
            .iter()
            .map(|q| wire::type_name(q.qtype))
            .collect()
    }

    fn query_name(&self) -> String {
        self.0
            .questions
            .first()
            .map(|q| policy::fqdn::normalize(&q.name))
            .unwrap_or_default()
    }
}

impl L7Request for DnsQuery<'_> {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Dns
    }

    fn allowed_by(&self, policy: &CompiledPolicy, remote_identity: u32) -> bool {
        policy.allows_dns(remote_identity, &self.names())
    }

    fn log_fields(&self) -> LogFields {
        let query = self.query_name();
        let qtypes = self.qtypes();
        LogFields {
            method: qtypes.join(","),
            path: query.clone(),
            dns: Some(DnsLogRecord {
                kind: DnsMessageKind::Request,
                query,
                qtypes,
                rcode: 0,
                ips: Vec::new(),
                ttl: 0,
                cnames: Vec::new(),
            }),
            ..LogFields::default()
        }
    }
}

/// A server's answer, for the access log.
struct DnsAnswer<'a> {
    query: DnsQuery<'a>,
    summary: &'a AnswerSummary,
}

impl L7Request for DnsAnswer<'_> {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Dns
    }

    fn allowed_by(&self, _: &CompiledPolicy, _: u32) -> bool {
        true
    }

    fn log_fields(&self) -> LogFields {
        let mut fields = self.query.log_fields();
        if let Some(record) = fields.dns.as_mut() {
            record.kind = DnsMessageKind::Response;
            record.rcode = self.summary.rcode;
            record.ips = self.summary.ips.iter().map(|ip| ip.to_string()).collect();
            record.ttl = self.summary.ttl;
            record.cnames = self.summary.cnames.clone();
        }
        fields
    }
}

/// A query the rules refused, for the access log: its record carries the
/// rcode the pod was answered with (REFUSED or NXDOMAIN), which flows show.
struct RefusedQuery<'a> {
    query: DnsQuery<'a>,
    rcode: u8,
}

impl L7Request for RefusedQuery<'_> {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Dns
    }

    fn allowed_by(&self, _: &CompiledPolicy, _: u32) -> bool {
        false
    }

    fn log_fields(&self) -> LogFields {
        let mut fields = self.query.log_fields();
        if let Some(record) = fields.dns.as_mut() {
            record.rcode = self.rcode;
        }
        fields
    }
}

fn drop_malformed(ctx: &ConnContext, dns: &DnsRuntime) -> Judgement {
    dns.count_malformed();
    ctx.logging(&Malformed(L7Protocol::Dns), L7Verdict::Error, 0);
    Judgement::Drop
}

/// Parses and judges a query from a client. Every question's name must be
/// allowed; a message that is not a query (QR set) counts as malformed.
pub fn judge(ctx: &ConnContext, dns: &DnsRuntime, bytes: &[u8]) -> Judgement {
    let message = match wire::parse(bytes) {
        Ok(message) if !message.header.is_response() => message,
        _ => return drop_malformed(ctx, dns),
    };
    let query = DnsQuery(&message);
    if ctx.request_filter(&query) {
        ctx.logging(&query, L7Verdict::Forwarded, 0);
        Judgement::Forward(message)
    } else {
        let rcode = dns.settings.reject.rcode();
        let refused = RefusedQuery { query, rcode };
        ctx.logging(&refused, L7Verdict::Denied, u16::from(rcode));
        Judgement::Answer(wire::error_response(bytes, &message, rcode))
    }
}

/// Whether `bytes` (from the server) answers `query`: same id, a response.
/// Anything else on the upstream socket is ignored.
pub fn answers(query: &Message, bytes: &[u8]) -> bool {
    wire::parse_header(bytes)
        .is_ok_and(|header| header.id == query.header.id && header.is_response())
}

/// What to do with a server's answer.
#[derive(Debug)]
pub enum Admission {
    /// Malformed: dropped and counted; the client asks again.
    Drop,
    /// Relay it to the client now: nothing for the agent to allow first.
    Now,
    /// Relay it once the agent has allowed these addresses (`hold`).
    Hold(AnswerNotice),
}

/// The server's answer to a forwarded query: parsed (malformed = dropped),
/// logged, and told what it carries. An answer with addresses the agent
/// already applied for this endpoint and name within their TTL goes at
/// once; one with new addresses waits for the agent.
pub fn inspect_answer(
    ctx: &ConnContext,
    dns: &DnsRuntime,
    query: &Message,
    bytes: &[u8],
) -> Admission {
    let Ok(message) = wire::parse(bytes) else {
        dns.count_malformed();
        return Admission::Drop;
    };
    let summary = summarize(&message);
    let answer = DnsAnswer {
        query: DnsQuery(query),
        summary: &summary,
    };
    ctx.emit(&answer, L7Verdict::Forwarded, u16::from(summary.rcode));
    if summary.ips.is_empty() {
        return Admission::Now;
    }
    let notice = AnswerNotice {
        endpoint_id: ctx.redirect.settings().endpoint_id,
        source: ctx.client.ip().to_string(),
        name: summary.name.clone(),
        ips: summary.ips.iter().map(|ip| ip.to_string()).collect(),
        ttl: summary.ttl,
        cnames: summary.cnames,
        rcode: summary.rcode,
    };
    if dns.gate.passes(&notice) {
        Admission::Now
    } else {
        Admission::Hold(notice)
    }
}

/// `inspect_answer`, waiting out a hold. `true`: relay `bytes` to the
/// client now.
pub async fn admit_answer(
    ctx: &ConnContext,
    dns: &DnsRuntime,
    query: &Message,
    bytes: &[u8],
) -> bool {
    match inspect_answer(ctx, dns, query, bytes) {
        Admission::Drop => false,
        Admission::Now => true,
        Admission::Hold(notice) => {
            dns.gate.hold(notice, dns.settings.max_delay).await;
            true
        }
    }
}

/// SERVFAIL for a query whose server could not be reached.
pub fn server_failure(bytes: &[u8], query: &Message) -> Vec<u8> {
    wire::error_response(bytes, query, wire::RCODE_SERVFAIL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{Direction, Parser};

    fn ctx(rules: &str) -> ConnContext {
        crate::filter::test_context(
            Parser::Dns,
            Direction::Egress,
            rules,
            "10.0.0.53:53".parse().unwrap(),
        )
    }

    const RULES: &str =
        r#"[{"identity": 300, "rules": {"dns": [{"matchPattern": "*.allowed.test"}]}}]"#;

    #[test]
    fn allowed_names_are_forwarded_and_denied_ones_answered() {
        let ctx = ctx(RULES);
        let mut events = ctx.log.subscribe();
        let dns = DnsRuntime::default();
        let query = wire::build_query(5, "www.Allowed.test.", wire::TYPE_A);
        assert!(matches!(judge(&ctx, &dns, &query), Judgement::Forward(_)));
        let event = events.events.try_recv().unwrap();
        assert_eq!(
            (event.method.as_str(), event.path.as_str()),
            ("A", "www.allowed.test")
        );
        assert_eq!(event.verdict, L7Verdict::Forwarded);

        let denied = wire::build_query(6, "www.denied.test", wire::TYPE_AAAA);
        let Judgement::Answer(answer) = judge(&ctx, &dns, &denied) else {
            panic!("denied query must be answered");
        };
        let answer = wire::parse(&answer).unwrap();
        assert_eq!(
            (answer.header.id, answer.header.rcode()),
            (6, wire::RCODE_REFUSED)
        );
        let event = events.events.try_recv().unwrap();
        assert_eq!((event.verdict, event.status), (L7Verdict::Denied, 5));
        let record = event.dns.unwrap();
        assert_eq!(record.qtypes, ["AAAA"]);
        assert_eq!(
            (record.kind, record.rcode),
            (DnsMessageKind::Request, wire::RCODE_REFUSED)
        );

        let nxdomain = DnsRuntime {
            settings: super::super::DnsSettings {
                reject: super::super::RejectResponse::NameError,
                ..Default::default()
            },
            ..Default::default()
        };
        let Judgement::Answer(answer) = judge(&ctx, &nxdomain, &denied) else {
            panic!("denied query must be answered");
        };
        assert_eq!(wire::parse(&answer).unwrap().header.rcode(), 3);
    }

    #[test]
    fn malformed_queries_and_responses_are_dropped_and_counted() {
        let ctx = ctx(RULES);
        let dns = DnsRuntime::default();
        assert!(matches!(judge(&ctx, &dns, b"\x00\x01"), Judgement::Drop));
        let mut response = wire::build_query(5, "www.allowed.test", wire::TYPE_A);
        response[2] |= 0x80;
        assert!(matches!(judge(&ctx, &dns, &response), Judgement::Drop));
        assert_eq!(dns.malformed(), 2);
        let counted = ctx.log.counters().snapshot();
        assert_eq!(counted[0].protocol, L7Protocol::Dns);
        assert_eq!(counted[0].count, 2);
    }
}

//! Control protocol, version 1: newline-delimited JSON over a Unix stream
//! socket (`--config-socket`). The agent sends commands, each with a `seq`;
//! the proxy answers every command with `ack` or `error` carrying that `seq`,
//! and streams `access_log` events on every connection at any time.
//!
//! A connection starts with `hello` (versions must match), then the agent
//! sends `sync` with the full desired state; after that, incremental
//! commands. `sync` replaces everything, so proxy restarts and agent restarts
//! both converge by re-sending it. The proxy keeps its state and its
//! connections when the agent disconnects.
//!
//! DNS redirects add one exchange started by the proxy: before releasing an
//! answer that carries addresses it sends `dns_answer` (with an `id`) on
//! every connection that said `hello`, and holds the answer until one of
//! them sends `dns_answer_done` with that id (acked like any command), until
//! `--dns-response-max-delay`, or at once when no agent is connected.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::access_log::{AccessLogEvent, RequestCount};
use crate::ipcache::IpcacheEntry;
use crate::policy::IdentityRules;

pub const PROTOCOL_VERSION: u32 = 1;

/// One line from the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub seq: u64,
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    Hello {
        version: u32,
    },
    /// The complete desired state: redirects not listed are removed, the
    /// ipcache is replaced.
    Sync {
        redirects: Vec<Redirect>,
        ipcache: Vec<IpcacheEntry>,
    },
    UpsertRedirect {
        redirect: Redirect,
    },
    RemoveRedirect {
        proxy_port: u16,
    },
    IpcacheUpsert {
        entries: Vec<IpcacheEntry>,
    },
    IpcacheDelete {
        prefixes: Vec<String>,
    },
    /// Whether this connection wants `access_log` events (it does from the
    /// start); with no connection wanting them none are built.
    AccessLog {
        enabled: bool,
    },
    Status,
    /// The agent has allowed the addresses of `dns_answer` `id`: release it.
    DnsAnswerDone {
        id: u64,
    },
}

/// One line from the proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Ack {
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<Status>,
    },
    Error {
        seq: u64,
        message: String,
    },
    AccessLog {
        event: AccessLogEvent,
    },
    /// An allowed DNS answer with addresses, held until `dns_answer_done`.
    DnsAnswer {
        id: u64,
        endpoint_id: u64,
        /// The pod that asked (the client's IP).
        source: String,
        /// The first question's name, lowercase, without the trailing dot.
        name: String,
        /// Addresses of the name or of the end of its CNAME chain.
        ips: Vec<String>,
        /// Lowest TTL of the records giving `ips` (CNAMEs followed included).
        ttl: u32,
        /// The CNAME chain's targets in order, normalized like `name`.
        #[serde(default)]
        cnames: Vec<String>,
        rcode: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub version: u32,
    pub pid: u32,
    /// Ports of the redirects listening now.
    pub redirects: Vec<u16>,
    pub ipcache_entries: usize,
    /// Requests handled since the proxy started (series counted at least
    /// once); absent from proxies that predate it.
    #[serde(default)]
    pub requests: Vec<RequestCount>,
    /// Malformed DNS messages dropped (queries and server answers).
    #[serde(default)]
    pub dns_malformed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parser {
    Http,
    Kafka,
    /// DNS over UDP and TCP on the same port.
    Dns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// Where the upstream connection comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceBind {
    /// The node's own address (the kernel picks it).
    #[default]
    Node,
    /// The original client's IP (transparent bind; needs datapath support
    /// for the return path).
    Original,
}

/// One proxy redirect: a listener and the L7 policy enforced on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    pub proxy_port: u16,
    pub parser: Parser,
    pub direction: Direction,
    pub endpoint_id: u64,
    /// Rules per remote identity; a remote identity without an entry (and no
    /// entry for identity 0) is denied every request.
    pub policies: Vec<IdentityRules>,
    #[serde(default)]
    pub source_bind: SourceBind,
    /// `SO_MARK` for the proxy's upstream sockets (Cilium marks proxy
    /// traffic so the datapath does not redirect it a second time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_mark: Option<u32>,
    /// Also carry the source identity in the mark, in Cilium's layout
    /// (`identity[15:0] << 16 | mark | identity[23:16]`), so the datapath can
    /// attribute the proxy's upstream traffic to the original client.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mark_with_identity: bool,
    /// TESTS/DEBUG ONLY: listen on 127.0.0.1:proxy_port (not transparent)
    /// and send every connection here instead of its original destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_upstream: Option<SocketAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_flat_json_lines() {
        let line = r#"{"seq":3,"op":"upsert_redirect","redirect":{"proxy_port":15001,"parser":"http","direction":"ingress","endpoint_id":7,"policies":[{"identity":0,"rules":{"http":[{"method":"GET"}]}}]}}"#;
        let request: Request = serde_json::from_str(line).unwrap();
        assert_eq!(request.seq, 3);
        let Command::UpsertRedirect { redirect } = &request.command else {
            panic!("wrong command {request:?}");
        };
        assert_eq!(redirect.source_bind, SourceBind::Node);
        assert_eq!(redirect.fixed_upstream, None);
        let hello: Request = serde_json::from_str(r#"{"seq":1,"op":"hello","version":1}"#).unwrap();
        assert_eq!(hello.command, Command::Hello { version: 1 });
        assert!(serde_json::from_str::<Request>(r#"{"seq":1,"op":"nope"}"#).is_err());
        let ack = serde_json::to_string(&Reply::Ack {
            seq: 4,
            status: None,
        })
        .unwrap();
        assert_eq!(ack, r#"{"type":"ack","seq":4}"#);
    }

    #[test]
    fn dns_answer_lines_and_their_go_ahead() {
        let answer = Reply::DnsAnswer {
            id: 7,
            endpoint_id: 12,
            source: "10.0.1.5".into(),
            name: "www.example.com".into(),
            ips: vec!["192.0.2.1".into(), "192.0.2.2".into()],
            ttl: 60,
            cnames: vec!["cdn.example.com".into()],
            rcode: 0,
        };
        let line = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            line,
            r#"{"type":"dns_answer","id":7,"endpoint_id":12,"source":"10.0.1.5","name":"www.example.com","ips":["192.0.2.1","192.0.2.2"],"ttl":60,"cnames":["cdn.example.com"],"rcode":0}"#
        );
        assert_eq!(serde_json::from_str::<Reply>(&line).unwrap(), answer);
        let done: Request =
            serde_json::from_str(r#"{"seq":9,"op":"dns_answer_done","id":7}"#).unwrap();
        assert_eq!(done.command, Command::DnsAnswerDone { id: 7 });
        let redirect: Redirect = serde_json::from_str(
            r#"{"proxy_port":15053,"parser":"dns","direction":"egress","endpoint_id":12,"policies":[{"identity":0,"rules":{"dns":[{"matchPattern":"*.example.com"}]}}],"upstream_mark":2816}"#,
        )
        .unwrap();
        assert_eq!(redirect.parser, Parser::Dns);
    }
}

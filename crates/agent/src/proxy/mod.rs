//! The agent's side of the L7 proxy: proxy ports for listeners, the desired
//! configuration of `cilium-proxy` (redirects with per-identity rules, and
//! the ipcache it names peers with), and the supervisor that keeps the proxy
//! process running and configured.

pub mod ports;
pub mod supervisor;

use policy::Direction;
use proxy::control::protocol::{Direction as ProxyDirection, Parser, SourceBind};
use proxy::ipcache::IpcacheEntry;
use proxy::policy::IdentityRules;

/// Marks of the proxy's upstream traffic (Cilium's magic values): ingress
/// traffic was already enforced by the proxy; egress traffic carries the
/// client's identity for the destination's ingress policy.
pub const MARK_PROXY_INGRESS: u32 = 0x0A00;
pub const MARK_PROXY_EGRESS: u32 = 0x0B00;

/// Everything the proxy should have; sent whole on every change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    pub redirects: Vec<proxy::Redirect>,
    pub ipcache: Vec<IpcacheEntry>,
}

/// One endpoint's redirect in the proxy's terms.
pub fn redirect_config(endpoint: u16, redirect: &policy::Redirect) -> proxy::Redirect {
    let (direction, mark) = match redirect.listener.direction {
        Direction::Ingress => (ProxyDirection::Ingress, MARK_PROXY_INGRESS),
        Direction::Egress => (ProxyDirection::Egress, MARK_PROXY_EGRESS),
    };
    proxy::Redirect {
        proxy_port: redirect.proxy_port,
        parser: match redirect.listener.parser {
            policy::L7Parser::Http => Parser::Http,
            policy::L7Parser::Kafka => Parser::Kafka,
            policy::L7Parser::Dns => Parser::Dns,
        },
        direction,
        endpoint_id: u64::from(endpoint),
        policies: redirect
            .peers
            .iter()
            .map(|peer| IdentityRules {
                identity: peer.identity,
                rules: peer.rules.clone(),
            })
            .collect(),
        source_bind: SourceBind::Node,
        upstream_mark: Some(mark),
        mark_with_identity: true,
        fixed_upstream: None,
    }
}

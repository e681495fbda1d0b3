//! The agent's side of the L7 proxy: proxy ports for listeners, the desired
//! configuration of `cilium-proxy` (redirects with per-identity rules, and
//! the ipcache it names peers with), and the supervisor that keeps the proxy
//! process running and configured.

pub mod ports;
pub mod supervisor;

use std::collections::HashMap;

use policy::Direction;
use proxy::control::protocol::{
    Command as ProxyCommand, Direction as ProxyDirection, Parser, SourceBind,
};
use proxy::ipcache::IpcacheEntry;
use proxy::policy::IdentityRules;

/// Marks of the proxy's upstream traffic (Cilium's magic values): ingress
/// traffic was already enforced by the proxy; egress traffic carries the
/// client's identity for the destination's ingress policy.
pub const MARK_PROXY_INGRESS: u32 = 0x0A00;
pub const MARK_PROXY_EGRESS: u32 = 0x0B00;

/// Everything the proxy should have: sent whole to a proxy connecting, and
/// after that as changes (`commands_between`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    pub redirects: Vec<proxy::Redirect>,
    pub ipcache: Vec<IpcacheEntry>,
}

/// The commands taking a proxy that has `sent` (none: a new connection) to
/// `desired`. When only ipcache entries changed (an FQDN answer, a pod
/// coming or going), those changes alone: the proxy keeps its compiled
/// redirects, and the line stays short however large the cluster.
pub fn commands_between(sent: Option<&DesiredState>, desired: &DesiredState) -> Vec<ProxyCommand> {
    let Some(sent) = sent.filter(|s| s.redirects == desired.redirects) else {
        return vec![ProxyCommand::Sync {
            redirects: desired.redirects.clone(),
            ipcache: desired.ipcache.clone(),
        }];
    };
    let had: HashMap<&str, u32> = sent
        .ipcache
        .iter()
        .map(|e| (e.prefix.as_str(), e.identity))
        .collect();
    let wanted: HashMap<&str, u32> = desired
        .ipcache
        .iter()
        .map(|e| (e.prefix.as_str(), e.identity))
        .collect();
    let entries: Vec<IpcacheEntry> = desired
        .ipcache
        .iter()
        .filter(|e| had.get(e.prefix.as_str()) != Some(&e.identity))
        .cloned()
        .collect();
    let prefixes: Vec<String> = sent
        .ipcache
        .iter()
        .filter(|e| !wanted.contains_key(e.prefix.as_str()))
        .map(|e| e.prefix.clone())
        .collect();
    let mut commands = Vec::new();
    if !prefixes.is_empty() {
        commands.push(ProxyCommand::IpcacheDelete { prefixes });
    }
    if !entries.is_empty() {
        commands.push(ProxyCommand::IpcacheUpsert { entries });
    }
    commands
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(ipcache: Vec<IpcacheEntry>) -> DesiredState {
        DesiredState {
            redirects: Vec::new(),
            ipcache,
        }
    }

    #[test]
    fn a_new_connection_gets_everything_then_only_ipcache_changes() {
        let first = state(vec![
            IpcacheEntry::new("10.0.0.1/32", 5),
            IpcacheEntry::new("10.0.0.2/32", 6),
        ]);
        assert!(matches!(
            commands_between(None, &first).as_slice(),
            [ProxyCommand::Sync { ipcache, .. }] if ipcache.len() == 2
        ));
        assert!(commands_between(Some(&first), &first).is_empty());
        let next = state(vec![
            IpcacheEntry::new("10.0.0.2/32", 7),
            IpcacheEntry::new("10.0.0.3/32", 8),
        ]);
        let commands = commands_between(Some(&first), &next);
        assert_eq!(
            commands,
            [
                ProxyCommand::IpcacheDelete {
                    prefixes: vec!["10.0.0.1/32".into()]
                },
                ProxyCommand::IpcacheUpsert {
                    entries: vec![
                        IpcacheEntry::new("10.0.0.2/32", 7),
                        IpcacheEntry::new("10.0.0.3/32", 8)
                    ]
                },
            ]
        );
    }

    #[test]
    fn changed_redirects_send_the_whole_state() {
        let first = state(vec![IpcacheEntry::new("10.0.0.1/32", 5)]);
        let mut next = first.clone();
        next.redirects.push(redirect_config(
            3,
            &policy::Redirect {
                listener: policy::Listener {
                    direction: Direction::Egress,
                    port: 80,
                    parser: policy::L7Parser::Http,
                },
                proxy_port: 15001,
                peers: Vec::new(),
            },
        ));
        assert!(matches!(
            commands_between(Some(&first), &next).as_slice(),
            [ProxyCommand::Sync { redirects, .. }] if redirects.len() == 1
        ));
    }
}

//! The daemon's L7 side: endpoint policies compiled with proxy ports for
//! their listeners, and the proxy's desired configuration derived from them
//! (published to the supervisor whenever it changes).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use policy::{EndpointPolicy, Labels};
use proxy::ipcache::IpcacheEntry;

use super::{Daemon, Inner};
use crate::endpoint::EndpointRecord;
use crate::error::AgentError;
use crate::proxy::{ports::ProxyPorts, redirect_config, DesiredState};

impl Daemon {
    /// Gives an endpoint's L7 listeners proxy ports. With the proxy
    /// disabled, L7 rules are not redirected (their L3/L4 part still applies).
    pub(super) fn with_proxy_ports(
        &self,
        proxy_ports: &mut ProxyPorts,
        mut policy: EndpointPolicy,
        id: u16,
    ) -> Result<EndpointPolicy, AgentError> {
        if self.config.enable_l7_proxy {
            let ports = proxy_ports
                .assign(id, &policy.listeners(), port_is_free)
                .map_err(|e| AgentError::Internal(e.to_string()))?;
            if !ports.is_empty() {
                self.route_to_proxy()?;
            }
            policy.set_proxy_ports(ports);
        }
        Ok(policy)
    }

    /// Installs the routing rule that delivers packets assigned to the
    /// proxy, before the first redirect reaches a policy map. Not earlier:
    /// any custom rule takes every route lookup on the node off the kernel's
    /// fast path, which nodes without L7 policy need not pay.
    fn route_to_proxy(&self) -> Result<(), AgentError> {
        use std::sync::atomic::Ordering;
        if !self.proxy_routing.load(Ordering::Acquire) {
            crate::node::proxy_routing::ensure(self.config.enable_ipv6)
                .map_err(|e| AgentError::Internal(format!("proxy routing rule: {e:#}")))?;
            self.proxy_routing.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Compiles one endpoint's rules, with proxy ports.
    pub(super) fn compile_endpoint(
        &self,
        inner: &mut Inner,
        ep: &EndpointRecord,
    ) -> Result<EndpointPolicy, AgentError> {
        let policy = inner
            .compile(&ep.labels)
            .with_named_ports(&ep.named_ports)
            .with_peer_named_ports(&inner.peer_ports);
        self.with_proxy_ports(&mut inner.proxy_ports, policy, ep.id)
    }

    /// Recomputes what the proxy should have and hands it to the supervisor
    /// if it differs from what was published last.
    pub(super) fn publish_proxy_state(&self, inner: &Inner) {
        let desired = self.desired_proxy_state(inner);
        self.proxy_desired.send_if_modified(|current| {
            let changed = *current != desired;
            if changed {
                *current = desired;
            }
            changed
        });
    }

    /// After FQDN identities came or went (for the IPs `touched`): unless
    /// some redirect's rules name one of those identities (L7 rules on
    /// `toFQDNs` peers), the proxy's state changes by those IPs' /32
    /// entries alone, which spares recomputing every redirect over every
    /// identity for each name learned.
    pub(super) fn publish_fqdn_changes(
        &self,
        inner: &Inner,
        changed: &BTreeMap<u32, Labels>,
        touched: &BTreeSet<IpAddr>,
    ) {
        let redirects_name_them = inner.policies.values().any(|policy| {
            !policy.listeners().is_empty()
                && policy
                    .redirects(changed)
                    .iter()
                    .flat_map(|r| &r.peers)
                    .any(|peer| changed.contains_key(&peer.identity))
        });
        if redirects_name_them {
            return self.publish_proxy_state(inner);
        }
        let prefixes: HashSet<String> = touched
            .iter()
            .map(|ip| super::fqdn::host_prefix(*ip))
            .collect();
        let entries: Vec<IpcacheEntry> = touched
            .iter()
            .filter_map(|ip| {
                let identity = match inner.fqdn_ips.get(ip) {
                    Some((identity, _)) => *identity,
                    None => super::fqdn::rule_identity(inner, *ip)?,
                };
                Some(IpcacheEntry::new(super::fqdn::host_prefix(*ip), identity))
            })
            .collect();
        self.proxy_desired.send_if_modified(|current| {
            // No redirect at all: the proxy is sent nothing.
            if current.redirects.is_empty() {
                return false;
            }
            current
                .ipcache
                .retain(|entry| !prefixes.contains(&entry.prefix));
            current.ipcache.extend(entries);
            true
        });
    }

    fn desired_proxy_state(&self, inner: &Inner) -> DesiredState {
        if !inner.policies.values().any(|p| !p.listeners().is_empty()) {
            return DesiredState::default();
        }
        let identities = inner.all_identities();
        let redirects = inner
            .policies
            .iter()
            .flat_map(|(ep, policy)| {
                policy
                    .redirects(&identities)
                    .into_iter()
                    .map(|r| redirect_config(*ep, &r))
                    .collect::<Vec<_>>()
            })
            .collect();
        // Both families: the proxy names IPv6 peers as the datapath does.
        let ipcache4 = self
            .desired_ipcache(inner)
            .into_iter()
            .map(|((ip, len), (identity, _))| IpcacheEntry::new(format!("{ip}/{len}"), identity));
        let ipcache6 = self
            .desired_ipcache6(inner)
            .into_iter()
            .map(|((ip, len), (identity, _))| IpcacheEntry::new(format!("{ip}/{len}"), identity));
        let ipcache = ipcache4.chain(ipcache6).collect();
        DesiredState { redirects, ipcache }
    }

    /// The supervisor's view of the desired configuration.
    pub fn proxy_desired(&self) -> tokio::sync::watch::Receiver<DesiredState> {
        self.proxy_desired.subscribe()
    }

    pub fn proxy_health(
        &self,
    ) -> std::sync::Arc<std::sync::Mutex<crate::proxy::supervisor::ProxyHealth>> {
        self.proxy_health.clone()
    }

    pub fn config(&self) -> &crate::config::Config {
        &self.config
    }
}

/// Nobody listens on TCP or UDP `port` in this namespace (another agent's
/// proxy on the same host, or any other program): a DNS listener takes
/// both.
fn port_is_free(port: u16) -> bool {
    let any = std::net::Ipv4Addr::UNSPECIFIED;
    std::net::TcpListener::bind((any, port)).is_ok()
        && std::net::UdpSocket::bind((any, port)).is_ok()
}

//! The prober: every interval (and on demand) one round over every node,
//! its results kept for the health API and the agent's status.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ::health::{time, HealthStatusResponse, ProbeOptions, SelfStatus, Target};
use api::models::{ClusterHealthStatus, Status};

use super::roster::{Roster, DEPARTED_GRACE};
use super::HealthConfig;
use crate::cluster::keys::{self, NodeRecord};
use crate::daemon::Daemon;

/// Longest wait for the kvstore when reading the health endpoints' addresses.
const KVSTORE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Checker {
    daemon: Arc<Daemon>,
    config: HealthConfig,
    options: ProbeOptions,
    started: Instant,
    last: RwLock<HealthStatusResponse>,
    /// One round at a time (periodic and `PUT /status/probe` alike).
    roster: tokio::sync::Mutex<Roster>,
    /// This node's health endpoint (addresses, primary first; network
    /// namespace), once it runs.
    local_endpoint: Mutex<Option<(Vec<IpAddr>, PathBuf)>>,
    /// What keeps the checker from doing all of its job, by part.
    problems: Mutex<BTreeMap<&'static str, String>>,
}

impl Checker {
    pub fn new(daemon: Arc<Daemon>, config: HealthConfig) -> Checker {
        let options = ProbeOptions {
            // A probe must end before the next round is due.
            timeout: config
                .interval
                .mul_f32(0.6)
                .clamp(Duration::from_millis(200), Duration::from_secs(3)),
            http_port: config.port,
        };
        let last = HealthStatusResponse {
            probe_interval: time::format_duration(config.interval),
            local: SelfStatus {
                name: daemon.cluster().node.name.clone(),
            },
            ..Default::default()
        };
        Checker {
            daemon,
            config,
            options,
            started: Instant::now(),
            last: RwLock::new(last),
            roster: tokio::sync::Mutex::new(Roster::new(DEPARTED_GRACE)),
            local_endpoint: Mutex::new(None),
            problems: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn daemon(&self) -> &Arc<Daemon> {
        &self.daemon
    }

    pub fn uptime(&self) -> Duration {
        Duration::from_secs(self.started.elapsed().as_secs())
    }

    /// The last round's results.
    pub fn last(&self) -> HealthStatusResponse {
        self.last.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_problem(&self, part: &'static str, problem: Option<String>) {
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        match problem {
            Some(p) => problems.insert(part, p),
            None => problems.remove(part),
        };
    }

    pub fn set_local_endpoint(&self, endpoint: Option<(Vec<IpAddr>, PathBuf)>) {
        *self
            .local_endpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = endpoint;
    }

    /// Probes forever, one round per interval.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.probe_now().await;
        }
    }

    /// One round now; its results become the last ones.
    pub async fn probe_now(&self) -> HealthStatusResponse {
        let mut roster = self.roster.lock().await;
        let (listed, health_ips_known) = self.listed_targets().await;
        let targets = roster.update(listed, health_ips_known, Instant::now());
        let options = self.options;
        let nodes = tokio::task::spawn_blocking(move || ::health::probe_all(&targets, &options))
            .await
            .unwrap_or_default();
        let result = HealthStatusResponse {
            timestamp: time::now(),
            probe_interval: time::format_duration(self.config.interval),
            local: SelfStatus {
                name: self.daemon.cluster().node.name.clone(),
            },
            nodes,
        };
        *self.last.write().unwrap_or_else(|p| p.into_inner()) = result.clone();
        result
    }

    /// The nodes the agent knows now, and whether their health endpoint
    /// addresses could be read. This node's health endpoint is probed from
    /// the host; the other nodes' from this node's health endpoint (the
    /// pod-to-pod path: this datapath has no host-to-remote-pod route), so
    /// only while it runs. IPv6 addresses are probed where the prober has
    /// IPv6 too: the node's own IPv6 address for the hosts and this node's
    /// health endpoint, the health endpoint's for the others'.
    async fn listed_targets(&self) -> (Vec<Target>, bool) {
        let nodes = self.daemon.cluster_nodes();
        let local = self
            .local_endpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let health_ips = match (&local, self.config.endpoint) {
            (Some(_), true) => self.remote_health_ips().await,
            _ => Some(BTreeMap::new()),
        };
        let host_has_ipv6 = self.daemon.cluster().node.ipv6.is_some();
        let local_ips = local
            .as_ref()
            .map(|(ips, _)| ips.clone())
            .unwrap_or_default();
        let reachable_from = |from: &[IpAddr], ips: Vec<IpAddr>| -> Vec<IpAddr> {
            let has = |v6: bool| from.iter().any(|ip| ip.is_ipv6() == v6);
            ips.into_iter().filter(|ip| has(ip.is_ipv6())).collect()
        };
        let host_families: Vec<IpAddr> = [IpAddr::from(self.daemon.cluster().node_ip())]
            .into_iter()
            .chain(self.daemon.cluster().node.ipv6.map(IpAddr::from))
            .collect();
        let targets = nodes
            .nodes_added
            .into_iter()
            .filter_map(|n| {
                let host_ip: IpAddr = n.primary_address.ipv4.ip.parse().ok()?;
                let host_ip6 = n
                    .primary_address
                    .ipv6
                    .as_ref()
                    .and_then(|a| a.ip.parse::<IpAddr>().ok())
                    .filter(|_| host_has_ipv6);
                let (health_ips, health_probed_from) = if n.name == nodes.self_name {
                    (reachable_from(&host_families, local_ips.clone()), None)
                } else {
                    let ips = health_ips
                        .as_ref()
                        .and_then(|m| m.get(&n.name).cloned())
                        .unwrap_or_default();
                    let from = local.as_ref().map(|(_, netns)| netns.clone());
                    (reachable_from(&local_ips, ips), from)
                };
                Some(Target {
                    name: n.name,
                    host_ips: std::iter::once(host_ip).chain(host_ip6).collect(),
                    health_ips,
                    health_probed_from,
                })
            })
            .collect();
        (targets, health_ips.is_some())
    }

    /// Health endpoint addresses the nodes published with their records,
    /// primary (IPv4) first.
    async fn remote_health_ips(&self) -> Option<BTreeMap<String, Vec<IpAddr>>> {
        let kv = &self.daemon.cluster().kv;
        let listing = tokio::time::timeout(KVSTORE_TIMEOUT, kv.list_prefix(keys::NODES_PREFIX))
            .await
            .ok()?
            .ok()?;
        Some(
            listing
                .kvs
                .iter()
                .filter_map(|kv| serde_json::from_slice::<NodeRecord>(&kv.value).ok())
                .map(|n| {
                    let v4 = n.health_ipv4.map(IpAddr::from);
                    let ips = v4.into_iter().chain(n.health_ipv6.map(Into::into));
                    (n.name, ips.collect::<Vec<_>>())
                })
                .filter(|(_, ips)| !ips.is_empty())
                .collect(),
        )
    }

    /// The `Cluster health` part of the agent's status.
    pub fn summary(&self) -> ClusterHealthStatus {
        if !self.config.enabled {
            return ClusterHealthStatus {
                state: Status::DISABLED.into(),
                msg: "--enable-health-checking=false".into(),
                ..Default::default()
            };
        }
        let last = self.last();
        let (up, all) = last.reachable();
        let unreachable: Vec<String> = last
            .nodes
            .iter()
            .filter(|n| !n.is_reachable())
            .map(|n| n.name.clone())
            .collect();
        let problems: Vec<String> = self
            .problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let (state, msg) = if !problems.is_empty() {
            (Status::WARNING, problems.join("; "))
        } else if last.timestamp.is_empty() {
            (Status::OK, "waiting for the first probe round".to_string())
        } else if !unreachable.is_empty() {
            (
                Status::WARNING,
                format!("unreachable: {}", unreachable.join(", ")),
            )
        } else {
            (Status::OK, String::new())
        };
        ClusterHealthStatus {
            state: state.into(),
            msg,
            reachable: up as u32,
            total: all as u32,
            timestamp: last.timestamp,
            unreachable,
        }
    }
}

//! The health API's bodies, shaped like Cilium's `/v1beta` models (JSON
//! names included). Every struct decodes with defaults, so a client and an
//! agent of different versions still understand each other.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `GET /v1beta/status` and `PUT /v1beta/status/probe`: the last probe
/// results for every node.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct HealthStatusResponse {
    /// When the probes finished (RFC 3339).
    pub timestamp: String,
    /// Time between two probe rounds, e.g. `5s`.
    #[serde(rename = "probeInterval")]
    pub probe_interval: String,
    pub local: SelfStatus,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct SelfStatus {
    /// The name of the node that probed.
    pub name: String,
}

/// One node, as seen from the local one.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct NodeStatus {
    pub name: String,
    /// The node itself: its IP, answered by the kernel (ICMP) and the
    /// agent's responder (HTTP).
    pub host: Option<HostStatus>,
    /// The node's health endpoint, when it has one: the datapath of a
    /// pod-like endpoint on that node.
    #[serde(rename = "health-endpoint", skip_serializing_if = "Option::is_none")]
    pub health_endpoint: Option<HostStatus>,
}

/// The paths to one node or endpoint: its primary address (IPv4 where it
/// has one) and its secondary ones (its IPv6 address on a dual-stack node).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct HostStatus {
    #[serde(rename = "primary-address")]
    pub primary_address: PathStatus,
    #[serde(rename = "secondary-addresses")]
    pub secondary_addresses: Vec<PathStatus>,
}

/// Both probes to one address.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct PathStatus {
    pub ip: String,
    pub icmp: Option<ConnectivityStatus>,
    pub http: Option<ConnectivityStatus>,
}

/// One probe's outcome.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct ConnectivityStatus {
    /// Round-trip time in nanoseconds (0 when the probe failed).
    pub latency: u64,
    /// Empty when the probe succeeded, else what went wrong.
    pub status: String,
    /// When the probe ran (RFC 3339).
    #[serde(rename = "lastProbed")]
    pub last_probed: String,
}

/// `GET /v1beta/healthz`: the health API itself is up.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default)]
pub struct HealthResponse {
    /// How long the health checker has been running, e.g. `1h2m3s`.
    pub uptime: String,
    #[serde(rename = "system-load")]
    pub system_load: LoadResponse,
    /// The agent's own status (`GET /v1/healthz` body), when it has one.
    pub cilium: serde_json::Value,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default)]
pub struct LoadResponse {
    pub last1min: String,
    pub last5min: String,
    pub last15min: String,
}

impl ConnectivityStatus {
    pub fn from_result<E: std::fmt::Display>(
        result: &Result<Duration, E>,
        probed_at: &str,
    ) -> ConnectivityStatus {
        match result {
            Ok(rtt) => ConnectivityStatus {
                latency: u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX),
                status: String::new(),
                last_probed: probed_at.to_string(),
            },
            Err(e) => ConnectivityStatus {
                latency: 0,
                status: e.to_string(),
                last_probed: probed_at.to_string(),
            },
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status.is_empty()
    }
}

impl PathStatus {
    /// Both probes ran and succeeded.
    pub fn is_reachable(&self) -> bool {
        [&self.icmp, &self.http]
            .iter()
            .all(|c| c.as_ref().is_some_and(ConnectivityStatus::is_ok))
    }
}

impl HostStatus {
    /// Every address, primary and secondary, answered both probes.
    pub fn is_reachable(&self) -> bool {
        std::iter::once(&self.primary_address)
            .chain(&self.secondary_addresses)
            .all(PathStatus::is_reachable)
    }
}

impl NodeStatus {
    /// The node answered on every path probed: each of its own addresses
    /// and, when it has one, each of its health endpoint's.
    pub fn is_reachable(&self) -> bool {
        let host = self.host.as_ref().is_some_and(HostStatus::is_reachable);
        let endpoint = self
            .health_endpoint
            .as_ref()
            .is_none_or(HostStatus::is_reachable);
        host && endpoint
    }
}

impl HealthStatusResponse {
    /// (reachable nodes, all nodes).
    pub fn reachable(&self) -> (usize, usize) {
        let up = self.nodes.iter().filter(|n| n.is_reachable()).count();
        (up, self.nodes.len())
    }

    /// The node called `name`, if it was probed.
    pub fn node(&self, name: &str) -> Option<&NodeStatus> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Option<ConnectivityStatus> {
        Some(ConnectivityStatus::from_result::<String>(
            &Ok(Duration::from_micros(405)),
            "t",
        ))
    }

    fn failed() -> Option<ConnectivityStatus> {
        Some(ConnectivityStatus::from_result::<String>(
            &Err("no answer".into()),
            "t",
        ))
    }

    fn path(icmp: Option<ConnectivityStatus>, http: Option<ConnectivityStatus>) -> HostStatus {
        HostStatus {
            primary_address: PathStatus {
                ip: "10.0.0.1".into(),
                icmp,
                http,
            },
            secondary_addresses: vec![],
        }
    }

    #[test]
    fn a_node_is_reachable_when_every_probed_path_answered() {
        let mut node = NodeStatus {
            name: "n".into(),
            host: Some(path(ok(), ok())),
            health_endpoint: None,
        };
        assert!(node.is_reachable());
        node.health_endpoint = Some(path(ok(), failed()));
        assert!(!node.is_reachable(), "its endpoint does not answer HTTP");
        node.health_endpoint = None;
        node.host = Some(path(failed(), ok()));
        assert!(!node.is_reachable());
        node.host = Some(path(ok(), None));
        assert!(
            !node.is_reachable(),
            "a probe that never ran proves nothing"
        );
        let mut dual = path(ok(), ok());
        dual.secondary_addresses.push(PathStatus {
            ip: "fd00::1".into(),
            icmp: ok(),
            http: failed(),
        });
        node.host = Some(dual);
        assert!(
            !node.is_reachable(),
            "its IPv6 address does not answer HTTP"
        );
    }

    #[test]
    fn json_uses_ciliums_names() {
        let status = HealthStatusResponse {
            timestamp: "2024-01-01T00:00:00Z".into(),
            probe_interval: "5s".into(),
            local: SelfStatus { name: "n0".into() },
            nodes: vec![NodeStatus {
                name: "n0".into(),
                host: Some(path(ok(), failed())),
                health_endpoint: None,
            }],
        };
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(v["probeInterval"], "5s");
        let primary = &v["nodes"][0]["host"]["primary-address"];
        assert_eq!(primary["icmp"]["latency"], 405_000);
        assert_eq!(primary["icmp"]["status"], "");
        assert_eq!(primary["http"]["status"], "no answer");
        assert_eq!(primary["http"]["lastProbed"], "t");
        assert!(v["nodes"][0].get("health-endpoint").is_none());
        let back: HealthStatusResponse = serde_json::from_value(v).unwrap();
        assert_eq!(back, status);
        assert_eq!(back.reachable(), (0, 1));
        let empty: HealthStatusResponse = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.reachable(), (0, 0));
    }
}

//! `cilium-health status` as text, in Cilium's layout: the probe time, then
//! per node (the local one first, marked `(localhost)`) the host's and the
//! health endpoint's address with each probe's outcome and round-trip time.

use std::fmt::Write;
use std::time::Duration;

use crate::model::{ConnectivityStatus, HealthStatusResponse, HostStatus, NodeStatus};

pub fn status(s: &HealthStatusResponse) -> String {
    let mut out = String::new();
    let probed = if s.timestamp.is_empty() {
        "(no probe has completed yet)"
    } else {
        &s.timestamp
    };
    let _ = writeln!(out, "Probe time:   {probed}");
    let _ = writeln!(out, "Nodes:");
    if s.nodes.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    let local = s.nodes.iter().filter(|n| n.name == s.local.name);
    let others = s.nodes.iter().filter(|n| n.name != s.local.name);
    for node in local.chain(others) {
        node_block(&mut out, node, node.name == s.local.name);
    }
    out
}

/// `2/3 reachable (2024-01-01T00:00:00Z)`, as `cilium status` shows it.
pub fn summary(s: &HealthStatusResponse) -> String {
    let (up, all) = s.reachable();
    format!("{up}/{all} reachable   ({})", s.timestamp)
}

fn node_block(out: &mut String, node: &NodeStatus, local: bool) {
    let marker = if local { " (localhost)" } else { "" };
    let _ = writeln!(out, "  {}{marker}:", node.name);
    match &node.host {
        Some(host) => paths(out, "Host", host),
        None => {
            let _ = writeln!(out, "    Host connectivity: not probed");
        }
    }
    if let Some(endpoint) = &node.health_endpoint {
        paths(out, "Endpoint", endpoint);
    }
}

fn paths(out: &mut String, what: &str, status: &HostStatus) {
    for path in std::iter::once(&status.primary_address).chain(&status.secondary_addresses) {
        let _ = writeln!(out, "    {what} connectivity to {}:", path.ip);
        let _ = writeln!(out, "      ICMP to stack:   {}", outcome(&path.icmp));
        let _ = writeln!(out, "      HTTP to agent:   {}", outcome(&path.http));
    }
}

fn outcome(c: &Option<ConnectivityStatus>) -> String {
    match c {
        None => "not probed".to_string(),
        Some(c) if c.is_ok() => format!("OK, RTT={:?}", Duration::from_nanos(c.latency)),
        Some(c) => c.status.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PathStatus, SelfStatus};

    fn probe(latency: u64, status: &str) -> Option<ConnectivityStatus> {
        Some(ConnectivityStatus {
            latency,
            status: status.into(),
            last_probed: "2024-01-01T00:00:00Z".into(),
        })
    }

    fn host(
        ip: &str,
        icmp: Option<ConnectivityStatus>,
        http: Option<ConnectivityStatus>,
    ) -> HostStatus {
        HostStatus {
            primary_address: PathStatus {
                ip: ip.into(),
                icmp,
                http,
            },
            secondary_addresses: vec![],
        }
    }

    fn sample() -> HealthStatusResponse {
        HealthStatusResponse {
            timestamp: "2024-01-01T00:00:05Z".into(),
            probe_interval: "5s".into(),
            local: SelfStatus {
                name: "node1".into(),
            },
            nodes: vec![
                NodeStatus {
                    name: "node0".into(),
                    host: Some(host(
                        "192.168.1.10",
                        probe(0, "no answer within 3s"),
                        probe(
                            0,
                            "connect 192.168.1.10:4240: No route to host (os error 113)",
                        ),
                    )),
                    health_endpoint: None,
                },
                NodeStatus {
                    name: "node1".into(),
                    host: Some(host(
                        "192.168.1.11",
                        probe(9_557_967, ""),
                        probe(405_072, ""),
                    )),
                    health_endpoint: Some(host(
                        "10.1.1.5",
                        probe(61_000, ""),
                        probe(1_500_000_000, ""),
                    )),
                },
            ],
        }
    }

    #[test]
    fn renders_like_cilium_health_status() {
        let expected = "\
Probe time:   2024-01-01T00:00:05Z
Nodes:
  node1 (localhost):
    Host connectivity to 192.168.1.11:
      ICMP to stack:   OK, RTT=9.557967ms
      HTTP to agent:   OK, RTT=405.072µs
    Endpoint connectivity to 10.1.1.5:
      ICMP to stack:   OK, RTT=61µs
      HTTP to agent:   OK, RTT=1.5s
  node0:
    Host connectivity to 192.168.1.10:
      ICMP to stack:   no answer within 3s
      HTTP to agent:   connect 192.168.1.10:4240: No route to host (os error 113)
";
        assert_eq!(status(&sample()), expected);
        assert_eq!(summary(&sample()), "1/2 reachable   (2024-01-01T00:00:05Z)");
    }

    #[test]
    fn renders_before_the_first_probe() {
        let out = status(&HealthStatusResponse::default());
        assert_eq!(
            out,
            "Probe time:   (no probe has completed yet)\nNodes:\n  (none)\n"
        );
    }
}

//! Cluster health (cilium-health): every agent probes every node over ICMP
//! and HTTP (port 4240) and serves the results on health.sock. In a
//! three-node cluster all nodes are reported reachable; once one node's
//! underlay link is cut, the others report it unreachable within 30 s while
//! they keep reaching each other. Needs root and `etcd` (Debian: etcd-server).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use health::HealthStatusResponse;
use testbed::cluster::{Cluster, ClusterOptions, Node};
use testbed::{eventually, find_binary};

/// The acceptance bound: a node cut off is reported within this.
const DETECTION_LIMIT: Duration = Duration::from_secs(30);
/// Agents start probing at once; their first round may run before every
/// peer's responder listens.
const FIRST_ROUNDS: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(250);

fn health_bin() -> PathBuf {
    find_binary("cilium-health", "CILIUM_HEALTH_BIN").unwrap()
}

fn health_cli(node: &Node, args: &[&str]) -> Output {
    std::process::Command::new(health_bin())
        .arg("-H")
        .arg(format!("unix://{}", node.agent().health_socket().display()))
        .args(args)
        .output()
        .unwrap()
}

/// `cilium-health status -o json` on `node`, decoded.
fn status(node: &Node) -> Result<HealthStatusResponse, String> {
    let out = health_cli(node, &["status", "-o", "json"]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// Whether `seen` lists exactly the cluster's nodes, reachable as `up` says.
fn reports(seen: &HealthStatusResponse, cluster: &Cluster, up: impl Fn(usize) -> bool) -> bool {
    seen.nodes.len() == cluster.len()
        && cluster.nodes().iter().all(|n| {
            seen.node(n.name())
                .is_some_and(|s| s.is_reachable() == up(n.index()))
        })
}

/// The `Cluster health:` line of `cilium status` on `node`.
fn cluster_health_line(node: &Node) -> String {
    let out = node.cli_ok(&["status"]).unwrap();
    out.lines()
        .find(|l| l.starts_with("Cluster health:"))
        .unwrap_or_else(|| panic!("no Cluster health line in:\n{out}"))
        .to_string()
}

fn start_cluster() -> Cluster {
    Cluster::start(ClusterOptions {
        nodes: 3,
        etcd_members: 1,
    })
    .expect("start a three-node cluster with etcd")
}

#[test]
fn every_node_is_reachable_then_a_cut_node_is_reported_down() {
    let cluster = start_cluster();
    let (observer, peer, victim) = (cluster.node(0), cluster.node(1), cluster.node(2));

    // All three nodes, from every node, over ICMP and HTTP.
    for node in cluster.nodes() {
        let mut last = Err("never asked".to_string());
        let healthy = eventually(FIRST_ROUNDS, POLL, || {
            last = status(node);
            last.as_ref().is_ok_and(|s| reports(s, &cluster, |_| true))
        });
        assert!(
            healthy,
            "node {} does not report all nodes reachable within {FIRST_ROUNDS:?}: {last:#?}\n{}",
            node.name(),
            cluster.describe()
        );
    }
    let seen = status(observer).unwrap();
    assert_eq!(seen.local.name, observer.name());
    let host = &seen
        .node(victim.name())
        .unwrap()
        .host
        .as_ref()
        .unwrap()
        .primary_address;
    assert_eq!(host.ip, victim.ip().to_string());
    assert!(host.icmp.as_ref().unwrap().latency > 0, "{host:?}");
    assert!(host.http.as_ref().unwrap().latency > 0, "{host:?}");

    // The text output and the agent's status say the same.
    let text = health_cli(observer, &["status", "--probe"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("  {} (localhost):", observer.name())),
        "{text}"
    );
    assert!(
        text.contains(&format!("    Host connectivity to {}:", victim.ip())),
        "{text}"
    );
    assert!(text.contains("      ICMP to stack:   OK, RTT="), "{text}");
    assert!(text.contains("      HTTP to agent:   OK, RTT="), "{text}");
    let line = cluster_health_line(observer);
    assert!(line.contains(" 3/3 reachable "), "{line}");

    // Cut the victim off the underlay.
    cluster.cut_underlay(victim.index()).unwrap();
    let cut_at = Instant::now();
    let mut last = Err("never asked".to_string());
    let detected = eventually(DETECTION_LIMIT, POLL, || {
        last = status(observer);
        last.as_ref()
            .is_ok_and(|s| reports(s, &cluster, |i| i != victim.index()))
    });
    let took = cut_at.elapsed();
    assert!(
        detected,
        "node {} was not reported down (others up) within {DETECTION_LIMIT:?}: {last:#?}",
        victim.name()
    );
    eprintln!("node {} reported unreachable after {took:?}", victim.name());
    let down = status(observer).unwrap();
    let path = &down
        .node(victim.name())
        .unwrap()
        .host
        .as_ref()
        .unwrap()
        .primary_address;
    assert!(!path.icmp.as_ref().unwrap().is_ok(), "{path:?}");
    assert!(!path.http.as_ref().unwrap().is_ok(), "{path:?}");
    // The other survivor sees the same.
    assert!(
        eventually(DETECTION_LIMIT, POLL, || status(peer)
            .is_ok_and(|s| reports(&s, &cluster, |i| i != victim.index()))),
        "node {} does not report {} down",
        peer.name(),
        victim.name()
    );
    let line = cluster_health_line(observer);
    assert!(
        line.contains(" 2/3 reachable ") && line.contains(victim.name()),
        "{line}"
    );
}

#[test]
fn cilium_health_without_an_agent_fails_clearly() {
    let missing = Path::new("/nonexistent-cilium-health/health.sock");
    let out = std::process::Command::new(health_bin())
        .args(["-H", missing.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    assert!(err.contains("Is cilium-agent running"), "{err}");
}

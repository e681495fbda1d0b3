//! Cluster health (cilium-health): every agent probes every node, and every
//! node's health endpoint (identity reserved:health), over ICMP and HTTP
//! (port 4240) and serves the results on health.sock. In a three-node
//! cluster all nodes are reported reachable, also after an agent restart
//! (which adopts its running health endpoint); once one node's underlay
//! link is cut, the others report it unreachable within 30 s while they
//! keep reaching each other. Needs root and `etcd` (Debian: etcd-server).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use api::Endpoint;
use health::HealthStatusResponse;
use testbed::cluster::{Cluster, ClusterOptions, Node};
use testbed::{eventually, find_binary};

/// The acceptance bound: a node cut off is reported within this.
const DETECTION_LIMIT: Duration = Duration::from_secs(30);
/// Agents start probing at once; their first rounds may run before every
/// peer's responder listens and every health endpoint is published.
const FIRST_ROUNDS: Duration = Duration::from_secs(30);
const HEALTH_IDENTITY: u32 = 4;
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

/// Whether `seen` lists exactly the cluster's nodes, each with its health
/// endpoint, reachable as `up` says.
fn reports(seen: &HealthStatusResponse, cluster: &Cluster, up: impl Fn(usize) -> bool) -> bool {
    seen.nodes.len() == cluster.len()
        && cluster.nodes().iter().all(|n| {
            seen.node(n.name())
                .is_some_and(|s| s.health_endpoint.is_some() && s.is_reachable() == up(n.index()))
        })
}

/// The node's health endpoint as its agent lists it.
fn health_endpoint(node: &Node) -> Endpoint {
    let all = node.client().endpoint_list().unwrap();
    let mut health: Vec<Endpoint> = all
        .into_iter()
        .filter(|e| e.status.identity.id == HEALTH_IDENTITY)
        .collect();
    assert_eq!(health.len(), 1, "node {}: {health:#?}", node.name());
    health.remove(0)
}

fn wait_all_reachable(cluster: &Cluster, node: &Node) {
    let mut last = Err("never asked".to_string());
    let healthy = eventually(FIRST_ROUNDS, POLL, || {
        last = status(node);
        last.as_ref().is_ok_and(|s| reports(s, cluster, |_| true))
    });
    assert!(
        healthy,
        "node {} does not report all nodes (and health endpoints) reachable within {FIRST_ROUNDS:?}: {last:#?}\n{}",
        node.name(),
        cluster.describe()
    );
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
    Cluster::start_with_agent_args(
        ClusterOptions {
            nodes: 3,
            etcd_members: 1,
        },
        &["--enable-endpoint-health-checking=true"],
    )
    .expect("start a three-node cluster with etcd")
}

#[test]
fn every_node_is_reachable_then_a_cut_node_is_reported_down() {
    let mut cluster = start_cluster();

    // All three nodes and their health endpoints, from every node, over
    // ICMP and HTTP.
    for node in cluster.nodes() {
        wait_all_reachable(&cluster, node);
    }
    for node in cluster.nodes() {
        let endpoint = health_endpoint(node);
        assert_eq!(endpoint.status.networking.interface_name, "lxc_health");
        let ip = endpoint.status.networking.addressing[0]
            .ipv4
            .clone()
            .unwrap();
        let seen = status(cluster.node(0)).unwrap();
        let probed = &seen
            .node(node.name())
            .unwrap()
            .health_endpoint
            .as_ref()
            .unwrap();
        assert_eq!(probed.primary_address.ip, ip, "node {}", node.name());
    }

    // A restarted agent adopts its running health endpoint.
    let before = health_endpoint(cluster.node(1));
    cluster.kill_agent(1);
    cluster.start_agent(1).unwrap();
    let after = health_endpoint(cluster.node(1));
    assert_eq!(after.id, before.id);
    assert_eq!(
        after.status.networking.netns, before.status.networking.netns,
        "the same responder process owns the endpoint's namespace"
    );
    wait_all_reachable(&cluster, cluster.node(1));

    let (observer, peer, victim) = (cluster.node(0), cluster.node(1), cluster.node(2));
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
    eprintln!("$ cilium-health status --probe\n{text}");
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

    let responders = Responders::of(&cluster);

    // Cut the victim off the underlay.
    cluster.cut_underlay(victim.index()).unwrap();
    let reconnect = Reconnect {
        cluster: &cluster,
        index: victim.index(),
    };
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

    // Tearing the nodes down takes their health endpoints with them.
    drop(reconnect);
    let teardown = Instant::now();
    drop(cluster);
    let lingering = responders.wait_gone(RESPONDER_EXIT);
    eprintln!(
        "responders gone {:?} after the teardown began",
        teardown.elapsed()
    );
    assert!(
        lingering.is_empty(),
        "health endpoint responders {lingering:?} outlived their nodes by {RESPONDER_EXIT:?}"
    );
}

/// A responder notices its interface is gone within a second or two.
const RESPONDER_EXIT: Duration = Duration::from_secs(15);

/// Puts a cut node back on the underlay when dropped (a failed assertion
/// included): its agent's connections can then close, so its namespace,
/// and the health endpoint's veth in it, go away with the cluster.
struct Reconnect<'a> {
    cluster: &'a Cluster,
    index: usize,
}

impl Drop for Reconnect<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.restore_underlay(self.index);
    }
}

/// The nodes' health endpoint responders (detached processes owning the
/// endpoints' namespaces); any still running when dropped is killed.
struct Responders(Vec<u32>);

impl Responders {
    fn of(cluster: &Cluster) -> Responders {
        let pids = cluster
            .nodes()
            .iter()
            .map(|n| {
                let netns = health_endpoint(n).status.networking.netns;
                netns
                    .strip_prefix("/proc/")
                    .and_then(|rest| rest.strip_suffix("/ns/net"))
                    .and_then(|pid| pid.parse().ok())
                    .unwrap_or_else(|| panic!("node {}: netns {netns:?}", n.name()))
            })
            .collect();
        Responders(pids)
    }

    fn running(&self) -> Vec<u32> {
        self.0
            .iter()
            .copied()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.windows(9).any(|w| w == b"responder"))
            })
            .collect()
    }

    /// Waits for every responder to exit; those still running after `limit`.
    fn wait_gone(&self, limit: Duration) -> Vec<u32> {
        eventually(limit, POLL, || self.running().is_empty());
        self.running()
    }
}

impl Drop for Responders {
    fn drop(&mut self) {
        for pid in self.running() {
            // SAFETY: signalling a process verified above to be a responder.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
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

/// Nodes with an IPv6 address next to their IPv4 one (dual-stack underlay,
/// dual-stack health endpoints): every node probes every node's IPv6
/// address and every health endpoint's IPv6 address too, shown as their
/// secondary addresses, ICMPv6 and HTTP both answered.
#[test]
fn dual_stack_nodes_are_probed_over_ipv6_too() {
    let cluster = Cluster::start_dual_stack_underlay(
        ClusterOptions {
            nodes: 2,
            etcd_members: 1,
        },
        &[
            "--enable-endpoint-health-checking=true",
            "--health-check-interval=1s",
        ],
    )
    .expect("start a two-node dual-stack cluster with etcd");
    let ipv6_paths = |seen: &HealthStatusResponse| -> Result<(), String> {
        for node in cluster.nodes() {
            let status = seen.node(node.name()).ok_or("node not listed")?;
            let host = status.host.as_ref().ok_or("host not probed")?;
            let ip6 = node.ip6().expect("an IPv6 underlay address").to_string();
            let host6 = host
                .secondary_addresses
                .iter()
                .find(|p| p.ip == ip6)
                .ok_or(format!("{}: no probe of {ip6}", node.name()))?;
            let endpoint = status
                .health_endpoint
                .as_ref()
                .ok_or(format!("{}: health endpoint not probed", node.name()))?;
            let health6 = health_endpoint(node).status.networking.addressing[0]
                .ipv6
                .clone()
                .ok_or("health endpoint without IPv6")?;
            let endpoint6 = endpoint
                .secondary_addresses
                .iter()
                .find(|p| p.ip == health6)
                .ok_or(format!("{}: no probe of {health6}", node.name()))?;
            for path in [host6, endpoint6] {
                if !path.is_reachable() {
                    return Err(format!("{}: {path:?}", node.name()));
                }
            }
            if !status.is_reachable() {
                return Err(format!("{}: {status:?}", node.name()));
            }
        }
        Ok(())
    };
    let observer = cluster.node(0);
    let mut last = Err("never asked".to_string());
    let probed = eventually(FIRST_ROUNDS, POLL, || {
        last = status(observer).and_then(|s| ipv6_paths(&s));
        last.is_ok()
    });
    assert!(
        probed,
        "node {} does not reach every node and health endpoint over IPv6: {last:?}\n{:#?}\n{}",
        observer.name(),
        status(observer),
        cluster.describe()
    );
    let text = health_cli(observer, &["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    eprintln!("$ cilium-health status\n{text}");
    let peer6 = cluster.node(1).ip6().unwrap();
    assert!(
        text.contains(&format!("    Host connectivity to {peer6}:")),
        "{text}"
    );
    // The other node's IPv6 address: in the node list, and remote-node
    // (identity 6) in the ipcache.
    let nodes = observer.cli_ok(&["node", "list"]).unwrap();
    assert!(nodes.contains(&peer6.to_string()), "{nodes}");
    let ipcache = observer.cli_ok(&["bpf", "ipcache", "list"]).unwrap();
    assert!(
        ipcache
            .lines()
            .any(|l| l.starts_with(&format!("{peer6}/128")) && l.contains("identity=6 ")),
        "{ipcache}"
    );
}

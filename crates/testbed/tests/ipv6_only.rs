//! IPv6-only endpoints (issue 18): agents started with
//! `--enable-ipv4=false` run no IPv4 IPAM; pods attached by cilium-cni get
//! an IPv6 address alone (the CNI result lists it with `::/0` via the
//! node's IPv6 router address), have no IPv4 address inside, and policy
//! allows and denies over IPv6 on one node and across two (the VXLAN
//! underlay stays IPv4). The API and `cilium endpoint list` show no IPv4;
//! the health endpoint is IPv6-only too and the other node probes it over
//! IPv6. Both families off is refused with a clear error.
//!
//! Needs root and etcd.

use std::net::IpAddr;
use std::time::Duration;

use testbed::agent::{find_binary, AGENT_BIN_ENV};
use testbed::cluster::{Cluster, ClusterOptions, ClusterPod};
use testbed::conformance::parse_revision;
use testbed::eventually;

const PASS: Duration = Duration::from_secs(2);
const DROP: Duration = Duration::from_millis(500);
const PROPAGATION: Duration = Duration::from_secs(10);
/// Health endpoints start, publish and get probed within this.
const HEALTH_ROUNDS: Duration = Duration::from_secs(30);
const HEALTH_IDENTITY: u32 = 4;

/// web takes TCP 80 from client alone; other is turned away.
const POLICY: &str = r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#;

#[test]
fn both_families_off_is_refused_with_a_clear_error() {
    let agent = find_binary("cilium-agent", AGENT_BIN_ENV).expect("cilium-agent built");
    let out = std::process::Command::new(agent)
        .args(["--enable-ipv4=false", "--enable-ipv6=false"])
        .output()
        .expect("run cilium-agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--enable-ipv4=false and --enable-ipv6=false")
            && err.contains("enable at least one"),
        "{err}"
    );
}

struct Lab {
    pods: Vec<ClusterPod>,
    _servers: Vec<testbed::TcpServer>,
    cluster: Cluster,
}

impl Lab {
    fn pod(&self, name: &str) -> &ClusterPod {
        self.pods.iter().find(|p| p.name() == name).expect("pod")
    }

    fn ip6(&self, name: &str) -> IpAddr {
        self.pod(name).ip6().expect("an IPv6 address").into()
    }

    fn apply(&self, policy: &str) {
        for node in self.cluster.nodes() {
            let file = node.agent().temp_dir().join("ipv6-only-policy.yaml");
            std::fs::write(&file, policy).expect("policy file");
            let out = node
                .cli_ok(&["policy", "import", &file.display().to_string()])
                .expect("policy accepted");
            let revision = parse_revision(&out).expect("revision");
            let realized = eventually(PROPAGATION, Duration::from_millis(50), || {
                self.pods
                    .iter()
                    .filter(|p| p.node() == node.index())
                    .all(|p| {
                        p.endpoint()
                            .is_ok_and(|ep| ep.status.policy.realized.policy_revision >= revision)
                    })
            });
            assert!(
                realized,
                "node {}: revision {revision} not realized",
                node.index()
            );
        }
    }
}

#[test]
fn ipv6_only_pods_on_one_node_and_across_two() {
    let cluster = Cluster::start_with_agent_args(
        ClusterOptions {
            nodes: 2,
            etcd_members: 1,
        },
        &[
            "--enable-ipv4=false",
            "--enable-endpoint-health-checking=true",
            "--health-check-interval=1s",
        ],
    )
    .expect("cluster starts");
    // web on node 1 (reached over the tunnel), web-local beside the clients.
    let placement = [
        ("web", 1, "k8s:app=web"),
        ("web-local", 0, "k8s:app=web"),
        ("client", 0, "k8s:app=client"),
        ("other", 0, "k8s:app=other"),
    ];
    let pods: Vec<ClusterPod> = placement
        .iter()
        .map(|(name, node, label)| cluster.pod(*node, name, &[label]).expect("pod"))
        .collect();
    let servers = pods
        .iter()
        .filter(|p| p.name().starts_with("web"))
        .map(|p| p.serve_tcp(80).expect("tcp server"))
        .collect();
    let lab = Lab {
        pods,
        _servers: servers,
        cluster,
    };

    // IPAM, CNI and the pod's own view: IPv6 alone.
    let gateway6 = lab
        .cluster
        .node(0)
        .client()
        .config()
        .expect("GET /v1/config")
        .status
        .addressing
        .ipv6
        .expect("IPv6 addressing")
        .ip;
    for pod in &lab.pods {
        assert_eq!(pod.ipv4(), None, "pod {}", pod.name());
        let result = pod.cni_result();
        let ips = result["ips"].as_array().expect("ips");
        assert_eq!(ips.len(), 1, "{result}");
        assert_eq!(ips[0]["address"], format!("{}/128", pod.ip6().unwrap()));
        let routes = result["routes"].as_array().expect("routes");
        assert_eq!(routes.len(), 1, "{result}");
        assert_eq!(routes[0]["dst"], "::/0");
        let out = pod.exec(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
        assert!(
            out.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let out = pod.exec(&["ip", "-6", "route", "show", "default"]);
        let route = String::from_utf8_lossy(&out.stdout).to_string();
        if pod.node() == 0 {
            assert_eq!(ips[0]["gateway"], gateway6.as_str());
            assert!(route.contains(&format!("via {gateway6}")), "{route}");
        }
    }

    // Reachability without policy, then the rule's verdicts, over IPv6.
    let (web, web_local) = (lab.ip6("web"), lab.ip6("web-local"));
    let reached = eventually(PROPAGATION, Duration::from_millis(100), || {
        lab.pod("other")
            .tcp_connect_ip(web, 80, Duration::from_millis(300))
    });
    assert!(
        reached,
        "other cannot reach web over IPv6 across nodes\n{}",
        lab.cluster.describe()
    );
    assert!(lab.pod("other").tcp_connect_ip(web_local, 80, PASS));
    lab.apply(POLICY);
    for (from, to, passes) in [
        ("client", web, true),
        ("client", web_local, true),
        ("other", web, false),
        ("other", web_local, false),
    ] {
        let timeout = if passes { PASS } else { DROP };
        assert_eq!(
            lab.pod(from).tcp_connect_ip(to, 80, timeout),
            passes,
            "{from} -> {to}:80"
        );
    }
    assert!(
        !lab.pod("client").tcp_connect_ip(web_local, 81, DROP),
        "port 81 is not allowed"
    );

    // The API and the CLI: no IPv4 anywhere.
    let node0 = lab.cluster.node(0);
    let config = node0.client().config().expect("config");
    assert!(!config.status.addressing.ipv4.enabled, "{config:?}");
    assert!(config.status.addressing.ipv4.ip.is_empty(), "{config:?}");
    let status = node0.client().healthz().expect("healthz");
    assert!(status.ipam.ipv4.is_empty(), "{:?}", status.ipam);
    assert!(status.ipam.ipv6.contains(&lab.ip6("client").to_string()));
    let ep = lab.pod("client").endpoint().expect("endpoint");
    let pair = &ep.status.networking.addressing[0];
    assert_eq!(pair.ipv4, None);
    assert_eq!(
        pair.ipv6.as_deref(),
        Some(lab.ip6("client").to_string().as_str())
    );
    let list = node0.cli_ok(&["endpoint", "list"]).expect("endpoint list");
    eprintln!("$ cilium endpoint list\n{list}");
    for name in ["client", "other", "web-local"] {
        assert!(list.contains(&lab.ip6(name).to_string()), "{name}: {list}");
    }
    assert!(
        !list.lines().any(|l| l
            .split_whitespace()
            .any(|w| w.parse::<std::net::Ipv4Addr>().is_ok())),
        "an IPv4 address in:\n{list}"
    );

    // The health endpoints are IPv6-only; node 0 probes node 1's over IPv6
    // from its own (pod to pod through the tunnel).
    let health6 = |node: usize| {
        let eps = lab
            .cluster
            .node(node)
            .client()
            .endpoint_list()
            .expect("endpoint list");
        eps.into_iter()
            .find(|e| e.status.identity.id == HEALTH_IDENTITY)
            .map(|e| e.status.networking.addressing[0].clone())
    };
    let created = eventually(HEALTH_ROUNDS, Duration::from_millis(250), || {
        health6(0).is_some() && health6(1).is_some()
    });
    assert!(created, "health endpoints\n{}", lab.cluster.describe());
    let remote = health6(1).unwrap();
    assert_eq!(remote.ipv4, None);
    let remote_ip = remote.ipv6.expect("an IPv6 health address");
    let mut last = String::new();
    let probed = eventually(HEALTH_ROUNDS, Duration::from_millis(250), || {
        let Ok(out) =
            std::process::Command::new(find_binary("cilium-health", "CILIUM_HEALTH_BIN").unwrap())
                .arg("-H")
                .arg(format!(
                    "unix://{}",
                    node0.agent().health_socket().display()
                ))
                .args(["status", "-o", "json"])
                .output()
        else {
            return false;
        };
        let Ok(status) = serde_json::from_slice::<health::HealthStatusResponse>(&out.stdout) else {
            return false;
        };
        last = format!("{status:#?}");
        status
            .node(lab.cluster.node(1).name())
            .and_then(|n| n.health_endpoint.as_ref())
            .is_some_and(|h| h.primary_address.ip == remote_ip && h.is_reachable())
    });
    assert!(
        probed,
        "node 0 does not reach node 1's health endpoint at {remote_ip}: {last}"
    );
}

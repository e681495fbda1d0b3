//! Dual-stack pods (issue 18), what is particular to IPv6, with real
//! packets between network namespaces: IPAM and the API hand out both
//! addresses; ICMPv6 echo follows `icmps` with `family: IPv6` (and a field
//! without a family is IPv4's), on one node and across two (IPv6 pods over
//! the VXLAN tunnel, whose underlay stays IPv4); neighbour discovery for
//! the gateway is answered whatever the policy. The L3/L4 allow/deny
//! matrix itself runs over both families in tests/policy_conformance.rs.
//!
//! Needs root (and etcd for the two-node test).

use std::net::IpAddr;
use std::time::Duration;

use testbed::cluster::{Cluster, ClusterOptions, ClusterPod};
use testbed::conformance::parse_revision;
use testbed::{eventually, Agent, AgentOptions, Pod, TcpServer};

const PASS: Duration = Duration::from_secs(2);
const DROP: Duration = Duration::from_millis(500);
const PROPAGATION: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

const FAMILIES: [Family; 2] = [Family::V4, Family::V6];

/// What a probe sends.
#[derive(Debug, Clone, Copy)]
enum Proto {
    Tcp(u16),
    Echo,
}

/// One row of a table: `from` reaches `to` with `proto`, or not.
#[derive(Debug, Clone, Copy)]
struct Probe {
    from: &'static str,
    to: &'static str,
    proto: Proto,
    passes: bool,
}

const fn probe(from: &'static str, to: &'static str, proto: Proto, passes: bool) -> Probe {
    Probe {
        from,
        to,
        proto,
        passes,
    }
}

/// A policy and the verdicts it must give, the same over both families.
struct Case {
    name: &'static str,
    policy: &'static str,
    probes: &'static [Probe],
}

/// ICMP rules name their family: echo requests of the other family are
/// protocols the rule does not allow.
const ICMP: &[Case] = &[Case {
    name: "icmps echo request per family",
    policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    icmps: [{fields: [{type: 8, family: IPv4}, {type: 128, family: IPv6}]}]
"#,
    probes: &[
        probe("client", "web", Proto::Echo, true),
        probe("other", "web", Proto::Echo, false),
        probe("client", "web", Proto::Tcp(80), false),
    ],
}];

/// Only IPv6 echo is allowed: IPv4 echo is dropped, IPv6 echo passes.
const ICMP_V6_ONLY: &str = r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    icmps: [{fields: [{type: 128, family: IPv6}]}]
"#;

/// A field without a family is IPv4's (Cilium's default): type 8 allows
/// IPv4 echo only.
const ICMP_NO_FAMILY: &str = r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    icmps: [{fields: [{type: 8}]}]
"#;

const PODS: &[(&str, &[&str])] = &[
    ("web", &["k8s:app=web"]),
    ("client", &["k8s:app=client"]),
    ("other", &["k8s:app=other"]),
];

/// The pods' addresses and how to send from them, on one node or many.
trait Lab {
    fn address(&self, pod: &str, family: Family) -> IpAddr;
    fn send(&self, from: &str, to: IpAddr, proto: Proto, timeout: Duration) -> bool;
    /// Imports `policy` (empty: deletes every rule) everywhere and waits
    /// until every endpoint enforces it.
    fn apply(&self, policy: &str);
}

fn ping(exec: impl Fn(&[&str]) -> std::process::Output, to: IpAddr, wait: Duration) -> bool {
    let wait = wait.as_secs().max(1).to_string();
    let family = if to.is_ipv6() { "-6" } else { "-4" };
    let to = to.to_string();
    exec(&["busybox", "ping", family, "-c1", &format!("-W{wait}"), &to])
        .status
        .success()
}

/// Runs every case over both families; returns the disagreements.
fn run_tables(lab: &impl Lab, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        // Each case alone: the previous one's rules go first.
        lab.apply("");
        lab.apply(case.policy);
        for family in FAMILIES {
            for p in case.probes {
                let to = lab.address(p.to, family);
                let timeout = if p.passes { PASS } else { DROP };
                let passed = lab.send(p.from, to, p.proto, timeout);
                if passed != p.passes {
                    failures.push(format!(
                        "[{}] {family:?}: {} -> {} ({to}) {:?}: expected {}, the packet {}",
                        case.name,
                        p.from,
                        p.to,
                        p.proto,
                        if p.passes { "pass" } else { "drop" },
                        if passed { "passed" } else { "was dropped" }
                    ));
                }
            }
        }
    }
    lab.apply("");
    failures
}

struct SingleNode {
    _servers: Vec<TcpServer>,
    pods: Vec<Pod>,
    agent: Agent,
}

impl SingleNode {
    fn start() -> SingleNode {
        let agent = Agent::start_with(
            AgentOptions {
                extra_args: vec!["--enable-ipv6=true".into()],
                ..Default::default()
            }
            .with_unique_range(),
        )
        .expect("agent starts");
        let pods: Vec<Pod> = PODS
            .iter()
            .map(|(name, labels)| Pod::create_dual_stack(&agent, name, labels).expect("pod"))
            .collect();
        let servers = pods
            .iter()
            .map(|pod| pod.serve_tcp(80).expect("tcp server"))
            .collect();
        SingleNode {
            _servers: servers,
            pods,
            agent,
        }
    }

    fn pod(&self, name: &str) -> &Pod {
        self.pods.iter().find(|p| p.name() == name).expect("pod")
    }
}

impl Lab for SingleNode {
    fn address(&self, pod: &str, family: Family) -> IpAddr {
        let pod = self.pod(pod);
        match family {
            Family::V4 => pod.ip().into(),
            Family::V6 => pod.ip6().expect("dual-stack pod").into(),
        }
    }

    fn send(&self, from: &str, to: IpAddr, proto: Proto, timeout: Duration) -> bool {
        let pod = self.pod(from);
        match proto {
            Proto::Tcp(port) => pod.tcp_connect_ip(to, port, timeout),
            Proto::Echo => ping(|args| pod.exec(args), to, timeout),
        }
    }

    fn apply(&self, policy: &str) {
        let out = if policy.is_empty() {
            self.agent.cli_ok(&["policy", "delete", "--all"])
        } else {
            let file = self.agent.temp_dir().join("dual-stack-policy.yaml");
            std::fs::write(&file, policy).expect("policy file");
            self.agent
                .cli_ok(&["policy", "import", &file.display().to_string()])
        };
        let revision = parse_revision(&out.expect("policy accepted")).expect("revision");
        for pod in &self.pods {
            pod.wait_for_policy_revision(&self.agent, revision, PROPAGATION)
                .expect("policy realized");
        }
    }
}

#[test]
fn dual_stack_pods_get_both_addresses_from_ipam_and_the_api() {
    let lab = SingleNode::start();
    let web = lab.pod("web");
    let ip6 = web.ip6().expect("an IPv6 address");
    let ep = web.endpoint(&lab.agent).expect("endpoint");
    assert_eq!(
        ep.status.networking.addressing[0].ipv6.as_deref(),
        Some(ip6.to_string().as_str())
    );
    let list = lab
        .agent
        .cli_ok(&["endpoint", "list"])
        .expect("endpoint list");
    assert!(list.contains(&ip6.to_string()), "{list}");
    let config = lab.agent.client().config().expect("GET /v1/config");
    let v6 = config
        .status
        .addressing
        .ipv6
        .expect("node addressing has IPv6");
    assert!(v6.enabled);
    let status = lab.agent.client().healthz().expect("GET /v1/healthz");
    assert!(status.ipam.ipv6.contains(&ip6.to_string()), "{status:?}");
    assert_eq!(status.ipam.ipv6_alloc_range, v6.alloc_range);
}

#[test]
fn icmp_echo_follows_icmps_per_family() {
    let lab = SingleNode::start();
    let failures = run_tables(&lab, ICMP);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    lab.apply(ICMP_V6_ONLY);
    let v4 = lab.address("web", Family::V4);
    let v6 = lab.address("web", Family::V6);
    assert!(
        lab.send("client", v6, Proto::Echo, PASS),
        "ICMPv6 echo allowed"
    );
    assert!(
        !lab.send("client", v4, Proto::Echo, DROP),
        "ICMPv4 echo not allowed"
    );
    lab.apply("");
    lab.apply(ICMP_NO_FAMILY);
    assert!(
        lab.send("client", v4, Proto::Echo, PASS),
        "type 8 without a family allows ICMPv4 echo"
    );
    assert!(
        !lab.send("client", v6, Proto::Echo, DROP),
        "type 8 without a family does not allow ICMPv6 echo"
    );
}

#[test]
fn neighbour_discovery_for_the_gateway_passes_a_deny_everything_policy() {
    let lab = SingleNode::start();
    lab.apply(
        r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress: [{}]
  egress: [{}]
"#,
    );
    let web = lab.pod("web");
    let gateway6 = lab
        .agent
        .client()
        .config()
        .expect("config")
        .status
        .addressing
        .ipv6
        .expect("IPv6 addressing")
        .ip;
    // Whatever the neighbour cache held goes; the next packet towards the
    // gateway must solicit it again, and the datapath must answer.
    web.exec(&["ip", "-6", "neigh", "flush", "dev", "eth0"]);
    let client6 = lab.address("client", Family::V6);
    assert!(
        !lab.send("web", client6, Proto::Tcp(80), DROP),
        "policy denies egress"
    );
    let host_mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", web.host_ifname()))
        .expect("host veth MAC");
    let resolved = eventually(Duration::from_secs(3), Duration::from_millis(100), || {
        let out = web.exec(&["ip", "-6", "neigh", "show", &gateway6, "dev", "eth0"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains(host_mac.trim()) && !text.contains("FAILED")
    });
    assert!(
        resolved,
        "the gateway {gateway6} was not resolved to {} under deny-all",
        host_mac.trim()
    );
}

struct TwoNodes {
    _servers: Vec<TcpServer>,
    pods: Vec<ClusterPod>,
    cluster: Cluster,
}

impl TwoNodes {
    fn start() -> TwoNodes {
        let cluster = Cluster::start_with_agent_args(
            ClusterOptions {
                nodes: 2,
                etcd_members: 1,
            },
            &["--enable-ipv6=true"],
        )
        .expect("cluster starts");
        // web alone on node 1: every probe to it crosses the tunnel.
        let placement = [("web", 1), ("client", 0), ("other", 0)];
        let pods: Vec<ClusterPod> = placement
            .iter()
            .map(|(name, node)| {
                let labels = PODS.iter().find(|(n, _)| n == name).expect("spec").1;
                cluster.pod(*node, name, labels).expect("pod")
            })
            .collect();
        let servers = pods
            .iter()
            .map(|pod| pod.serve_tcp(80).expect("tcp server"))
            .collect();
        TwoNodes {
            _servers: servers,
            pods,
            cluster,
        }
    }

    fn pod(&self, name: &str) -> &ClusterPod {
        self.pods.iter().find(|p| p.name() == name).expect("pod")
    }
}

impl Lab for TwoNodes {
    fn address(&self, pod: &str, family: Family) -> IpAddr {
        let pod = self.pod(pod);
        match family {
            Family::V4 => pod.ip().into(),
            Family::V6 => pod.ip6().expect("dual-stack pod").into(),
        }
    }

    fn send(&self, from: &str, to: IpAddr, proto: Proto, timeout: Duration) -> bool {
        let pod = self.pod(from);
        match proto {
            Proto::Tcp(port) => pod.tcp_connect_ip(to, port, timeout),
            Proto::Echo => ping(|args| pod.exec(args), to, timeout),
        }
    }

    fn apply(&self, policy: &str) {
        for node in self.cluster.nodes() {
            let out = if policy.is_empty() {
                node.cli_ok(&["policy", "delete", "--all"])
            } else {
                let file = node.agent().temp_dir().join("dual-stack-policy.yaml");
                std::fs::write(&file, policy).expect("policy file");
                node.cli_ok(&["policy", "import", &file.display().to_string()])
            };
            let revision = parse_revision(&out.expect("policy accepted")).expect("revision");
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
                "node {}: policy revision {revision} not realized",
                node.index()
            );
        }
    }
}

#[test]
fn ipv6_pods_reach_across_nodes_and_icmps_holds_per_family() {
    let lab = TwoNodes::start();
    // Other nodes' IPv6 endpoints arrive through the kvstore.
    let web6 = lab.address("web", Family::V6);
    let reached = eventually(PROPAGATION, Duration::from_millis(100), || {
        lab.send("client", web6, Proto::Tcp(80), Duration::from_millis(300))
    });
    assert!(
        reached,
        "client cannot reach web over IPv6 across nodes\n{}",
        lab.cluster.describe()
    );
    let failures = run_tables(&lab, ICMP);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! Dual-stack pods (issue 18): every pod has an IPv4 and an IPv6 address,
//! and the same policy gives the same verdicts over both families, with
//! real packets between network namespaces, on one node and across two
//! (IPv6 pods over the VXLAN tunnel, whose underlay stays IPv4). Each
//! allow/deny table runs once per family from one definition. ICMPv6 echo
//! follows `icmps` with `family: IPv6`, and neighbour discovery for the
//! gateway is answered whatever the policy.
//!
//! Needs root (and etcd for the two-node test).

use std::net::IpAddr;
use std::time::Duration;

use testbed::cluster::{Cluster, ClusterOptions, ClusterPod};
use testbed::conformance::parse_revision;
use testbed::{eventually, Agent, AgentOptions, Pod, TcpServer, UdpServer};

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
    Udp(u16),
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

/// The L3/L4 matrix: selectors, ports, protocols, deny over allow.
const MATRIX: &[Case] = &[
    Case {
        name: "no policy: everything passes",
        policy: "",
        probes: &[
            probe("client", "web", Proto::Tcp(80), true),
            probe("other", "web", Proto::Udp(53), true),
            probe("web", "client", Proto::Tcp(80), true),
        ],
    },
    Case {
        name: "ingress from app=client on TCP 80 only",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#,
        probes: &[
            probe("client", "web", Proto::Tcp(80), true),
            probe("client", "web", Proto::Tcp(81), false),
            probe("client", "web", Proto::Udp(53), false),
            probe("other", "web", Proto::Tcp(80), false),
            probe("web", "client", Proto::Tcp(80), true),
        ],
    },
    Case {
        name: "egress of client to app=web on TCP 81",
        policy: r#"
- endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "81", protocol: TCP}]}]
"#,
        probes: &[
            probe("client", "web", Proto::Tcp(81), true),
            probe("client", "web", Proto::Tcp(80), false),
            probe("client", "other", Proto::Tcp(81), false),
            probe("other", "client", Proto::Tcp(80), true),
        ],
    },
    Case {
        name: "ingress on UDP 53 from app=client",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "53", protocol: UDP}]}]
"#,
        probes: &[
            probe("client", "web", Proto::Udp(53), true),
            probe("other", "web", Proto::Udp(53), false),
            probe("client", "web", Proto::Tcp(80), false),
        ],
    },
    Case {
        name: "deny wins over allow",
        policy: r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchExpressions: [{key: app, operator: Exists}]}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: other}}]
"#,
        probes: &[
            probe("client", "web", Proto::Tcp(81), true),
            probe("other", "web", Proto::Tcp(81), false),
            probe("other", "web", Proto::Udp(53), false),
        ],
    },
];

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
    _servers: (Vec<TcpServer>, Vec<UdpServer>),
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
        let mut tcp = Vec::new();
        let mut udp = Vec::new();
        for pod in &pods {
            for port in [80, 81] {
                tcp.push(pod.serve_tcp(port).expect("tcp server"));
            }
            udp.push(pod.serve_udp(53).expect("udp server"));
        }
        SingleNode {
            _servers: (tcp, udp),
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
            Proto::Udp(port) => pod.udp_roundtrip_ip(to, port, timeout),
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
fn the_same_l3_l4_matrix_holds_over_ipv4_and_ipv6_on_one_node() {
    let lab = SingleNode::start();
    let failures = run_tables(&lab, MATRIX);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
    _servers: (Vec<TcpServer>, Vec<UdpServer>),
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
        let mut tcp = Vec::new();
        let mut udp = Vec::new();
        for pod in &pods {
            for port in [80, 81] {
                tcp.push(pod.serve_tcp(port).expect("tcp server"));
            }
            udp.push(pod.serve_udp(53).expect("udp server"));
        }
        TwoNodes {
            _servers: (tcp, udp),
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
            Proto::Udp(port) => pod.udp_roundtrip_ip(to, port, timeout),
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
fn the_same_matrix_holds_over_both_families_across_nodes() {
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
    let mut failures = run_tables(&lab, MATRIX);
    failures.extend(run_tables(&lab, ICMP));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

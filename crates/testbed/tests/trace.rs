//! `cilium policy trace` agrees with the datapath: for several policies
//! (L3/L4 allows, egress policies, deny rules, wildcard peers), every probe
//! is both traced (`policy trace --src-endpoint A --dst-endpoint B --dport
//! P/PROTO -o json`) and sent as a real connection between netns pods; the
//! two verdicts must match each other and the expectation.
//!
//! Needs root. One agent and three pods serve every case; each case starts
//! from no policy.

use std::time::Duration;

use api::PolicyTraceResult;
use testbed::{eventually, Agent, AgentOptions, Pod, TcpServer, UdpServer};

const DROP_TIMEOUT: Duration = Duration::from_millis(700);
const PASS_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Proto {
    Tcp,
    Udp,
}

/// `from -> to port/proto: allowed?`
struct Probe {
    from: &'static str,
    to: &'static str,
    port: u16,
    proto: Proto,
    allowed: bool,
}

const fn probe(
    from: &'static str,
    to: &'static str,
    port: u16,
    proto: Proto,
    allowed: bool,
) -> Probe {
    Probe {
        from,
        to,
        port,
        proto,
        allowed,
    }
}

struct Case {
    name: &'static str,
    policy: &'static str,
    probes: &'static [Probe],
}

use Proto::*;

const CASES: &[Case] = &[
    Case {
        name: "no policy: everything flows",
        policy: "",
        probes: &[
            probe("web", "db", 5432, Tcp, true),
            probe("other", "db", 53, Udp, true),
        ],
    },
    Case {
        name: "L3+L4 ingress allow",
        policy: "
- endpointSelector: {matchLabels: {app: db}}
  labels: [\"k8s:name=db-ingress\"]
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: \"5432\", protocol: TCP}]}]
",
        probes: &[
            probe("web", "db", 5432, Tcp, true),
            probe("other", "db", 5432, Tcp, false),
            probe("web", "db", 53, Udp, false),
            probe("db", "web", 80, Tcp, true),
        ],
    },
    Case {
        name: "egress: L3 allow with an L4 deny",
        policy: "
- endpointSelector: {matchLabels: {app: web}}
  egress:
  - toEndpoints: [{matchLabels: {app: db}}]
  egressDeny:
  - toEndpoints: [{matchLabels: {app: db}}]
    toPorts: [{ports: [{port: \"5432\", protocol: TCP}]}]
",
        probes: &[
            probe("web", "db", 53, Udp, true),
            probe("web", "db", 5432, Tcp, false),
            probe("web", "other", 80, Tcp, false),
            probe("other", "web", 80, Tcp, true),
        ],
    },
    Case {
        name: "ingress from everyone but a denied peer, L4-only",
        policy: "
- endpointSelector: {matchLabels: {app: db}}
  ingress:
  - toPorts: [{ports: [{port: \"53\", protocol: UDP}]}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: other}}]
",
        probes: &[
            probe("web", "db", 53, Udp, true),
            probe("other", "db", 53, Udp, false),
            probe("web", "db", 5432, Tcp, false),
        ],
    },
];

struct Fixture {
    _servers: (Vec<TcpServer>, Vec<UdpServer>),
    pods: Vec<Pod>,
    agent: Agent,
}

impl Fixture {
    fn start() -> Fixture {
        let agent = Agent::start_with(AgentOptions::default().with_unique_range()).unwrap();
        let pods: Vec<Pod> = ["web", "db", "other"]
            .iter()
            .map(|name| Pod::create(&agent, name, &[&format!("k8s:app={name}")]).unwrap())
            .collect();
        let mut tcp = Vec::new();
        let mut udp = Vec::new();
        for pod in &pods {
            for port in [80, 5432] {
                tcp.push(pod.serve_tcp(port).unwrap());
            }
            udp.push(pod.serve_udp(53).unwrap());
        }
        Fixture {
            _servers: (tcp, udp),
            pods,
            agent,
        }
    }

    fn pod(&self, name: &str) -> &Pod {
        self.pods.iter().find(|p| p.name() == name).unwrap()
    }

    fn apply(&self, policy: &str) {
        let mut out = self.agent.cli_ok(&["policy", "delete", "--all"]).unwrap();
        if !policy.is_empty() {
            let file = self.agent.temp_dir().join("case.yaml");
            std::fs::write(&file, policy).unwrap();
            out = self
                .agent
                .cli_ok(&["policy", "import", &file.display().to_string()])
                .unwrap();
        }
        let revision = testbed::conformance::parse_revision(&out).unwrap();
        for pod in &self.pods {
            pod.wait_for_policy_revision(&self.agent, revision, Duration::from_secs(10))
                .unwrap();
        }
    }

    fn trace(&self, p: &Probe) -> PolicyTraceResult {
        let proto = match p.proto {
            Tcp => "TCP",
            Udp => "UDP",
        };
        let out = self
            .agent
            .cli_ok(&[
                "policy",
                "trace",
                "--src-endpoint",
                &self.pod(p.from).endpoint_id().to_string(),
                "--dst-endpoint",
                &self.pod(p.to).endpoint_id().to_string(),
                "--dport",
                &format!("{}/{proto}", p.port),
                "-o",
                "json",
            ])
            .unwrap();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    /// What the datapath does with a real connection.
    fn send(&self, p: &Probe) -> bool {
        let (from, to) = (self.pod(p.from), self.pod(p.to));
        let once = |timeout| match p.proto {
            Tcp => from.tcp_connect(to.ip(), p.port, timeout),
            Udp => from.udp_roundtrip(to.ip(), p.port, timeout),
        };
        if p.allowed {
            eventually(PASS_TIMEOUT, Duration::from_millis(50), || {
                once(Duration::from_secs(1))
            })
        } else {
            once(DROP_TIMEOUT)
        }
    }
}

#[test]
fn trace_verdicts_agree_with_real_connections() {
    let fx = Fixture::start();
    let mut failures = Vec::new();
    for case in CASES {
        fx.apply(case.policy);
        for p in case.probes {
            let traced = fx.trace(p).verdict == "allowed";
            let observed = fx.send(p);
            if traced != observed || observed != p.allowed {
                failures.push(format!(
                    "{}: {} -> {} {}/{:?}: expected {}, trace says {}, datapath {}",
                    case.name, p.from, p.to, p.port, p.proto, p.allowed, traced, observed
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn trace_by_labels_explains_rules_cilium_style() {
    let fx = Fixture::start();
    fx.apply(CASES[1].policy);
    let text = fx
        .agent
        .cli_ok(&[
            "policy",
            "trace",
            "-s",
            "k8s:app=web",
            "-d",
            "k8s:app=db",
            "--dport",
            "5432/TCP",
        ])
        .unwrap();
    for want in [
        "Tracing From: [k8s:app=web] => To: [k8s:app=db] Ports: [5432/TCP]",
        "Resolving ingress policy for [k8s:app=db]",
        "* Rule [k8s:name=db-ingress] ",
        "    5432/TCP from [k8s:app=web]: allows",
        "Ingress verdict (5432/TCP): allowed (allowed by rule, match L3-L4)",
        "Final verdict: ALLOWED",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    let denied = fx
        .agent
        .cli_ok(&[
            "policy",
            "trace",
            "--src-identity",
            &fx.pod("other").identity(&fx.agent).unwrap().to_string(),
            "-d",
            "k8s:app=db",
            "--dport",
            "5432",
        ])
        .unwrap();
    assert!(
        denied.contains("no rule allows it (default deny)"),
        "{denied}"
    );
    assert!(denied.contains("Final verdict: DENIED"), "{denied}");
    // Labels no endpoint has yet are traced as they would be.
    let hypothetical = fx
        .agent
        .cli_ok(&[
            "policy",
            "trace",
            "-s",
            "k8s:app=web,k8s:tier=new",
            "--dst-endpoint",
            &fx.pod("db").endpoint_id().to_string(),
            "--dport",
            "5432/tcp",
            "-o",
            "json",
        ])
        .unwrap();
    let r: PolicyTraceResult = serde_json::from_str(&hypothetical).unwrap();
    assert_eq!((r.verdict.as_str(), r.source.identity), ("allowed", 0));
    let bad = fx.agent.cli(&[
        "policy",
        "trace",
        "--src-endpoint",
        "999",
        "-d",
        "k8s:app=db",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("from.endpoint: endpoint 999 not found"));
}

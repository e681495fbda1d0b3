//! The IPv6 outside (issue 18): with both families on, an IPv6 address
//! outside the cluster is the `world-ipv6` identity (10), as in a
//! dual-stack Cilium. A dual-stack pod reaches an IPv6 host outside the
//! cluster under `toCIDR: [0.0.0.0/0, ::/0]` (cilium-cli's allow-all-egress
//! shape), `toEntities: [world-ipv6]` and `toEntities: [world]`, and not
//! under `toCIDR: [0.0.0.0/0]` nor `toEntities: [world-ipv4]`.
//!
//! Needs root.

use std::net::Ipv6Addr;
use std::time::Duration;

use testbed::{cmd, eventually, unique, Agent, AgentOptions, NetNs, Pod, TcpServer};

const PORT: u16 = 8443;
const PASS: Duration = Duration::from_secs(2);
const DROP: Duration = Duration::from_millis(500);
const IPV6_FORWARDING: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

/// A namespace outside the cluster at `address`, behind a veth whose host
/// side routes to it; the host forwards IPv6 while it lives.
struct Outside6 {
    _server: TcpServer,
    host_ifname: String,
    _netns: NetNs,
    forwarding_before: String,
    address: Ipv6Addr,
}

impl Outside6 {
    fn create() -> Outside6 {
        let (pid, n) = unique::next_pair();
        let netns = NetNs::create(&unique::netns_name(pid, n, "outside6")).expect("netns");
        let host_ifname = format!("cx6{:06x}{:03x}", pid & 0xff_ffff, n & 0xfff);
        // A documentation prefix of its own per process.
        let net = format!("2001:db8:{:x}", pid & 0xffff);
        let (gateway, address) = (format!("{net}::1"), format!("{net}::10"));
        let ns = netns.name().to_string();
        let steps: [&[&str]; 7] = [
            &[
                "link",
                "add",
                &host_ifname,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
            ],
            &[
                "addr",
                "add",
                &format!("{gateway}/64"),
                "dev",
                &host_ifname,
                "nodad",
            ],
            &["link", "set", &host_ifname, "up"],
            &["-n", &ns, "link", "set", "lo", "up"],
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{address}/64"),
                "dev",
                "eth0",
                "nodad",
            ],
            &["-n", &ns, "link", "set", "eth0", "up"],
            &["-n", &ns, "-6", "route", "add", "default", "via", &gateway],
        ];
        for args in steps {
            cmd::ip(args).unwrap_or_else(|e| panic!("ip {args:?}: {e:#}"));
        }
        let forwarding_before = std::fs::read_to_string(IPV6_FORWARDING).expect("forwarding");
        std::fs::write(IPV6_FORWARDING, "1").expect("IPv6 forwarding on");
        let server = TcpServer::start(&netns, PORT, "outside6\n".into()).expect("server");
        Outside6 {
            _server: server,
            host_ifname,
            _netns: netns,
            forwarding_before,
            address: address.parse().unwrap(),
        }
    }
}

impl Drop for Outside6 {
    fn drop(&mut self) {
        let _ = std::fs::write(IPV6_FORWARDING, self.forwarding_before.trim());
        cmd::run_ignoring_errors("ip", &["link", "del", "dev", &self.host_ifname]);
    }
}

fn apply(agent: &Agent, pod: &Pod, policy: &str) {
    agent
        .cli_ok(&["policy", "delete", "--all"])
        .and_then(|_| agent.import_policy(policy, &[pod]))
        .expect("policy realized");
}

fn egress(peers: &str) -> String {
    format!("- endpointSelector: {{matchLabels: {{app: client}}}}\n  egress:\n  - {peers}\n")
}

#[test]
fn the_ipv6_outside_is_world_ipv6_and_what_colon_colon_slash_0_selects() {
    let agent = Agent::start_with(
        AgentOptions {
            extra_args: vec!["--enable-ipv6=true".into()],
            ..Default::default()
        }
        .with_unique_range(),
    )
    .expect("agent starts");
    let client = Pod::create_dual_stack(&agent, "client", &["k8s:app=client"]).expect("pod");
    let outside = Outside6::create();
    let to = outside.address.into();
    // The host's forwarding and neighbours settle first.
    let reached = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
        client.tcp_connect_ip(to, PORT, Duration::from_millis(500))
    });
    assert!(reached, "without policy the pod reaches {to}");
    let mut failures = Vec::new();
    for (peers, passes) in [
        ("toCIDR: [0.0.0.0/0, \"::/0\"]", true),
        ("toCIDR: [0.0.0.0/0]", false),
        ("toEntities: [world-ipv6]", true),
        ("toEntities: [world-ipv4]", false),
        ("toEntities: [world]", true),
        ("toCIDR: [\"2001:db8::/32\"]", true),
    ] {
        apply(&agent, &client, &egress(peers));
        let passed = client.tcp_connect_ip(to, PORT, if passes { PASS } else { DROP });
        if passed != passes {
            failures.push(format!(
                "{peers}: expected {}, got {}",
                if passes { "pass" } else { "drop" },
                if passed { "pass" } else { "drop" }
            ));
        }
    }
    assert!(failures.is_empty(), "to {to}:\n{}", failures.join("\n"));
}

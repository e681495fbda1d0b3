//! Acceptance of the single-node issue: on one node, a real cilium-agent
//! enforces identity-based ingress policy between pods in the kernel.
//!
//! Cast: `frontend` (app=frontend) serving TCP 80; `backend` (app=backend)
//! serving TCP 80, TCP 81 and UDP 53; `intruder` (app=intruder). The policy
//! under test lets only frontends reach backends, on TCP port 80.
//!
//! Needs root. Each test starts its own agent on private paths and its own
//! /24, so they also pass when run in parallel; CI runs them serially.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use testbed::conformance::parse_revision;
use testbed::{eventually, Agent, AgentOptions, Monitor, Pod, TcpServer, UdpServer};

/// An expected drop is a connection attempt that gets no answer this long.
const DROP_TIMEOUT: Duration = Duration::from_secs(1);
/// An expected pass may need a retry while the agent settles.
const PASS_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the agent may take to realize an imported policy.
const REALIZE_TIMEOUT: Duration = Duration::from_secs(10);

const BACKEND_POLICY: &str = "\
- endpointSelector:
    matchLabels:
      app: backend
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: frontend
    toPorts:
    - ports:
      - port: \"80\"
        protocol: TCP
";

/// The node with its three pods and their servers. Fields drop in order:
/// servers, pods, then the agent.
struct Node {
    _frontend_web: TcpServer,
    _backend_web: TcpServer,
    _backend_admin: TcpServer,
    _backend_dns: UdpServer,
    frontend: Pod,
    backend: Pod,
    intruder: Pod,
    agent: Agent,
}

impl Node {
    fn start() -> Result<Node> {
        // A range of its own: the host routes of concurrently running
        // agents (a parallel test run) must not collide.
        let agent = Agent::start_with(AgentOptions::default().with_unique_range())?;
        let frontend = Pod::create(&agent, "frontend", &["k8s:app=frontend"])?;
        let backend = Pod::create(&agent, "backend", &["k8s:app=backend"])?;
        let intruder = Pod::create(&agent, "intruder", &["k8s:app=intruder"])?;
        Ok(Node {
            _frontend_web: frontend.serve_tcp(80)?,
            _backend_web: backend.serve_tcp(80)?,
            _backend_admin: backend.serve_tcp(81)?,
            _backend_dns: backend.serve_udp(53)?,
            frontend,
            backend,
            intruder,
            agent,
        })
    }

    /// `cilium policy import FILE`, then waits until the backend enforces it.
    fn import_backend_policy(&self) -> Result<()> {
        self.agent.import_policy(BACKEND_POLICY, &[&self.backend])?;
        Ok(())
    }

    /// `cilium policy delete --all`, then waits until the backend has let go.
    fn delete_all_policy(&self) -> Result<()> {
        let out = self.agent.cli_ok(&["policy", "delete", "--all"])?;
        let revision = parse_revision(&out)?;
        self.backend
            .wait_for_policy_revision(&self.agent, revision, REALIZE_TIMEOUT)
    }
}

fn tcp_passes(from: &Pod, to: &Pod, port: u16) -> bool {
    eventually(PASS_TIMEOUT, Duration::from_millis(50), || {
        from.tcp_connect(to.ip(), port, Duration::from_secs(1))
    })
}

fn tcp_dropped(from: &Pod, to: &Pod, port: u16) -> bool {
    !from.tcp_connect(to.ip(), port, DROP_TIMEOUT)
}

fn udp_passes(from: &Pod, to: &Pod, port: u16) -> bool {
    eventually(PASS_TIMEOUT, Duration::from_millis(50), || {
        from.udp_roundtrip(to.ip(), port, Duration::from_millis(500))
    })
}

fn udp_dropped(from: &Pod, to: &Pod, port: u16) -> bool {
    !from.udp_roundtrip(to.ip(), port, DROP_TIMEOUT)
}

fn describe(pod: &Pod) -> String {
    format!(
        "{} ({}, endpoint {})",
        pod.name(),
        pod.ip(),
        pod.endpoint_id()
    )
}

#[test]
fn without_policy_every_pod_reaches_every_port() -> Result<()> {
    let node = Node::start()?;
    let (frontend, backend, intruder) = (&node.frontend, &node.backend, &node.intruder);

    for (from, to, port) in [
        (frontend, backend, 80),
        (frontend, backend, 81),
        (intruder, backend, 80),
        (intruder, backend, 81),
        (backend, frontend, 80),
        (intruder, frontend, 80),
    ] {
        ensure!(
            tcp_passes(from, to, port),
            "{} -> {}:{port}/TCP should pass without policy",
            describe(from),
            describe(to)
        );
    }
    for from in [frontend, intruder] {
        ensure!(
            udp_passes(from, backend, 53),
            "{} -> backend:53/UDP should pass without policy",
            describe(from)
        );
    }
    Ok(())
}

#[test]
fn ingress_policy_admits_only_frontend_on_port_80() -> Result<()> {
    let node = Node::start()?;
    let (frontend, backend, intruder) = (&node.frontend, &node.backend, &node.intruder);
    let mut drops = Monitor::start(&node.agent, &["drop"])?;

    node.import_backend_policy()?;

    ensure!(
        tcp_passes(frontend, backend, 80),
        "frontend -> backend:80 is what the policy allows"
    );
    ensure!(
        tcp_dropped(frontend, backend, 81),
        "frontend -> backend:81: the rule only opens port 80"
    );
    ensure!(
        tcp_dropped(intruder, backend, 80),
        "intruder -> backend:80: intruder is not a frontend"
    );

    let intruder_identity = intruder.identity(&node.agent)?;
    let denial = drops.wait_for(
        |ev| {
            ev.reason_text == "Policy denied"
                && ev.endpoint == backend.endpoint_id()
                && ev.src_identity == intruder_identity
                && ev.dst_port == 80
        },
        Duration::from_secs(3),
    );
    ensure!(
        denial.is_some(),
        "no `Policy denied` drop at backend endpoint {} from intruder identity {intruder_identity}; drops seen: {:#?}",
        backend.endpoint_id(),
        drops.seen()
    );

    ensure!(
        tcp_passes(backend, frontend, 80),
        "backend -> frontend:80: the rule restricts backend ingress only, not its egress"
    );
    ensure!(
        udp_dropped(frontend, backend, 53),
        "frontend -> backend:53/UDP: the rule only opens TCP 80"
    );
    Ok(())
}

#[test]
fn cli_shows_enforcement_and_the_backend_policy_map() -> Result<()> {
    let node = Node::start()?;
    node.import_backend_policy()?;
    let backend_id = node.backend.endpoint_id().to_string();
    let frontend_identity = node.frontend.identity(&node.agent)?;

    let list = node.agent.cli_ok(&["endpoint", "list"])?;
    let backend_row = list
        .lines()
        .find(|l| l.split_whitespace().next() == Some(backend_id.as_str()))
        .with_context(|| format!("no row for backend endpoint {backend_id} in:\n{list}"))?;
    let columns: Vec<&str> = backend_row.split_whitespace().collect();
    ensure!(
        columns.get(1) == Some(&"Enabled"),
        "backend ingress enforcement should be Enabled:\n{list}"
    );
    ensure!(
        columns.get(2) == Some(&"Disabled"),
        "backend egress enforcement should stay Disabled:\n{list}"
    );

    let map = node
        .agent
        .cli_ok(&["bpf", "policy", "get", "-n", &backend_id])?;
    let frontend_on_80 = map.lines().any(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        cols.first() == Some(&"Allow")
            && cols.get(1) == Some(&"Ingress")
            && cols.get(2) == Some(&frontend_identity.to_string().as_str())
            && cols.get(3) == Some(&"80/TCP")
    });
    ensure!(
        frontend_on_80,
        "backend's policy map should allow frontend identity {frontend_identity} on 80/TCP:\n{map}"
    );

    let labelled = node.agent.cli_ok(&["bpf", "policy", "get", &backend_id])?;
    ensure!(
        labelled.contains("k8s:app=frontend"),
        "`cilium bpf policy get {backend_id}` should name the frontend's labels:\n{labelled}"
    );
    Ok(())
}

#[test]
fn deleting_the_policy_restores_connectivity() -> Result<()> {
    let node = Node::start()?;
    let (frontend, backend, intruder) = (&node.frontend, &node.backend, &node.intruder);
    node.import_backend_policy()?;
    ensure!(
        tcp_dropped(intruder, backend, 80),
        "policy in place: intruder is kept out"
    );

    node.delete_all_policy()?;

    ensure!(
        tcp_passes(intruder, backend, 80),
        "no policy: intruder -> backend:80 passes"
    );
    ensure!(
        tcp_passes(frontend, backend, 81),
        "no policy: frontend -> backend:81 passes"
    );
    ensure!(
        udp_passes(frontend, backend, 53),
        "no policy: frontend -> backend:53/UDP passes"
    );
    let ep = backend.endpoint(&node.agent)?;
    ensure!(
        ep.status.policy.realized.policy_enabled == api::policy_enabled::NONE,
        "backend enforcement should be off again, is {:?}",
        ep.status.policy.realized.policy_enabled
    );
    Ok(())
}

#[test]
fn relabelled_intruder_is_admitted_within_a_second() -> Result<()> {
    let node = Node::start()?;
    let (backend, intruder) = (&node.backend, &node.intruder);
    node.import_backend_policy()?;
    ensure!(
        tcp_dropped(intruder, backend, 80),
        "policy in place: intruder is kept out"
    );
    let old_identity = intruder.identity(&node.agent)?;

    intruder.set_labels(&node.agent, &["k8s:app=frontend"])?;
    let patched = Instant::now();

    let admitted = eventually(Duration::from_secs(1), Duration::ZERO, || {
        intruder.tcp_connect(backend.ip(), 80, Duration::from_millis(250))
    });
    let waited = patched.elapsed();
    ensure!(
        admitted,
        "intruder relabelled app=frontend should reach backend:80 within 1 s (tried for {waited:?}); eventually: {}",
        tcp_passes(intruder, backend, 80)
    );

    let new_identity = intruder.identity(&node.agent)?;
    ensure!(
        new_identity != old_identity,
        "relabelling should give the intruder a new identity (still {old_identity})"
    );
    ensure!(
        new_identity == node.frontend.identity(&node.agent)?,
        "same labels as the frontend means the frontend's identity"
    );
    Ok(())
}

#[test]
fn pod_plumbing_matches_what_the_agent_reports() -> Result<()> {
    let node = Node::start()?;
    let ep = node.backend.endpoint(&node.agent)?;
    ensure!(
        ep.status.networking.interface_name == node.backend.host_ifname(),
        "agent reports interface {:?}",
        ep.status.networking.interface_name
    );
    let ips: Vec<Ipv4Addr> = ep
        .status
        .networking
        .addressing
        .iter()
        .filter_map(|a| a.ipv4.as_deref())
        .filter_map(|ip| ip.split('/').next()?.parse().ok())
        .collect();
    ensure!(
        ips.contains(&node.backend.ip()),
        "agent reports addresses {ips:?}"
    );
    let route = node.backend.exec(&["ip", "route", "show", "default"]);
    ensure!(
        String::from_utf8_lossy(&route.stdout).contains(&node.backend.gateway().to_string()),
        "backend's default route should go via the router IP"
    );
    Ok(())
}

#[test]
fn a_failing_test_leaves_no_netns_links_or_pins_behind() -> Result<()> {
    let mut names = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let node = Node::start().expect("node starts");
        names = Some((
            node.backend.netns().to_string(),
            node.backend.host_ifname().to_string(),
            node.agent.paths().clone(),
        ));
        panic!("simulated test failure with a node running");
    }));
    ensure!(outcome.is_err(), "the closure panics by construction");
    let (netns, host_ifname, paths) = names.context("the node started")?;

    let namespaces = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()?;
    ensure!(
        !String::from_utf8_lossy(&namespaces.stdout).contains(&netns),
        "netns {netns} survived the failed test"
    );
    ensure!(
        !std::path::Path::new("/sys/class/net")
            .join(&host_ifname)
            .exists(),
        "host veth {host_ifname} survived the failed test"
    );
    ensure!(
        !paths.bpf_root.exists(),
        "{} survived",
        paths.bpf_root.display()
    );
    ensure!(
        !paths.socket.exists(),
        "{} survived",
        paths.socket.display()
    );
    ensure!(
        !paths.state_dir.exists(),
        "{} survived",
        paths.state_dir.display()
    );
    Ok(())
}

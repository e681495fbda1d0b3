//! gRPC under an HTTP L7 policy, through the datapath: a real grpcio server
//! in the `deathstar` pod, a real grpcio client in the `tiefighter` pod
//! (scripts in tests/l7/, pip `grpcio`). The ingress rule allows one gRPC
//! method by its HTTP/2 path; the datapath hands the client's connection to
//! cilium-proxy, which forwards the allowed call and answers any other with
//! gRPC status PERMISSION_DENIED, keeping the HTTP/2 connection usable.
//!
//! Needs root. The test starts its own agent on private paths and a /24.

#[path = "l7/support.rs"]
mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use testbed::{eventually, Agent, AgentOptions, BackgroundProcess, Monitor, Pod};

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/l7");
const GRPC_PORT: u16 = 50051;
const READY_TIMEOUT: Duration = Duration::from_secs(10);

const L7_GRPC_POLICY: &str = "\
- endpointSelector:
    matchLabels: {org: empire, class: deathstar}
  ingress:
  - fromEndpoints:
    - matchLabels: {org: empire}
    toPorts:
    - ports: [{port: \"50051\", protocol: TCP}]
      rules:
        http:
        - method: POST
          path: /empire.Deathstar/RequestLanding
";

/// The grpcio server in `pod`, once it accepts connections.
fn grpc_server(pod: &Pod, log: &Path) -> Result<BackgroundProcess> {
    let script = format!("{SCRIPTS}/grpc_server.py");
    let port = GRPC_PORT.to_string();
    let mut server = BackgroundProcess::spawn(pod.namespace(), &["python3", &script, &port], log)?;
    server
        .wait_for_log(READY_TIMEOUT, |log| log.contains("serving").then_some(()))
        .context("python3 with grpcio needed (pip install grpcio)")?;
    let addr = SocketAddr::from((pod.ip(), GRPC_PORT));
    let listening = pod
        .namespace()
        .run(move || TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok())?;
    ensure!(listening, "grpc server not listening on {addr}");
    Ok(server)
}

/// Calls each of `methods` from `pod` over one channel; one
/// `OK <reply>` or `<STATUS> <details>` line per call.
fn grpc_calls(pod: &Pod, server: &Pod, methods: &[&str]) -> Result<Vec<String>> {
    let script = format!("{SCRIPTS}/grpc_client.py");
    let target = format!("{}:{GRPC_PORT}", server.ip());
    let mut args = vec!["python3", script.as_str(), target.as_str()];
    args.extend(methods);
    let out = pod.namespace().exec(&args)?;
    ensure!(
        out.status.success(),
        "grpc client failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

#[test]
fn grpc_method_allowed_and_other_method_permission_denied() -> Result<()> {
    let agent = Agent::start_with(AgentOptions::default().with_unique_range())?;
    let deathstar = Pod::create(
        &agent,
        "deathstar",
        &["k8s:org=empire", "k8s:class=deathstar"],
    )?;
    let tiefighter = Pod::create(
        &agent,
        "tiefighter",
        &["k8s:org=empire", "k8s:class=tiefighter"],
    )?;
    let _server = grpc_server(&deathstar, &agent.temp_dir().join("grpc-server.log"))?;

    // Without policy both methods reach the application.
    let calls = grpc_calls(&tiefighter, &deathstar, &["RequestLanding", "ExhaustPort"])?;
    ensure!(
        calls == ["OK RequestLanding:hi", "OK ExhaustPort:hi"],
        "without policy every method must be served, got {calls:?}"
    );

    let mut monitor = Monitor::start(&agent, &["l7"])?;
    support::apply_policy(&agent, &[&deathstar], L7_GRPC_POLICY)?;
    // Allowed, denied, allowed again, on one channel.
    let calls = grpc_calls(
        &tiefighter,
        &deathstar,
        &["RequestLanding", "ExhaustPort", "RequestLanding"],
    )?;
    ensure!(
        calls
            == [
                "OK RequestLanding:hi",
                "PERMISSION_DENIED Access denied",
                "OK RequestLanding:hi",
            ],
        "want RequestLanding served and ExhaustPort denied, got {calls:?}\n{}",
        support::proxy_report(&agent)
    );

    let tiefighter_id = tiefighter.identity(&agent)?;
    let denied = monitor
        .wait_for(
            |ev| {
                ev.l7.as_ref().is_some_and(|l7| {
                    l7.verdict == "Denied" && l7.path == "/empire.Deathstar/ExhaustPort"
                })
            },
            Duration::from_secs(5),
        )
        .with_context(|| {
            format!(
                "no l7 monitor event for the denied ExhaustPort call; seen: {:?}",
                monitor.seen()
            )
        })?;
    let l7 = denied.l7.as_ref().unwrap();
    ensure!(
        l7.protocol == "http2"
            && l7.method == "POST"
            && denied.direction == "ingress"
            && denied.endpoint == deathstar.endpoint_id()
            && denied.src_identity == tiefighter_id,
        "denied event must be an HTTP/2 POST from the tiefighter ({tiefighter_id}) into the \
         deathstar (endpoint {}): {denied:?}",
        deathstar.endpoint_id()
    );
    // Every call is in the access log, and all came on one connection
    // (one client port): the denial did not cost the client its
    // connection.
    let calls_seen = |monitor: &mut Monitor| -> Vec<api::MonitorEvent> {
        monitor
            .seen()
            .iter()
            .filter(|ev| {
                ev.l7
                    .as_ref()
                    .is_some_and(|l7| l7.path.starts_with("/empire.Deathstar/"))
            })
            .cloned()
            .collect()
    };
    eventually(Duration::from_secs(5), Duration::from_millis(50), || {
        calls_seen(&mut monitor).len() >= 3
    });
    let events = calls_seen(&mut monitor);
    let forwarded = events
        .iter()
        .filter(|ev| ev.l7.as_ref().unwrap().verdict == "Forwarded")
        .count();
    ensure!(
        events.len() == 3
            && forwarded == 2
            && events.iter().all(|ev| ev.src_port == denied.src_port),
        "want 2 forwarded and 1 denied call from one client port, got {events:?}"
    );

    // The policy still admits the right peers only at L3: an alliance pod
    // cannot even connect.
    let xwing = Pod::create(&agent, "xwing", &["k8s:org=alliance", "k8s:class=xwing"])?;
    let addr = SocketAddr::from((deathstar.ip(), GRPC_PORT));
    let connected = xwing
        .namespace()
        .run(move || TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok())?;
    ensure!(!connected, "the xwing must be dropped at L3");
    Ok(())
}

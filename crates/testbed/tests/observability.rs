//! Observability end to end: a real agent, netns pods, real packets.
//!
//! - A denied UDP datagram produces exactly the expected policy-verdict and
//!   drop events in the monitor's JSON, with both identities' labels, and
//!   the server-side filters (`to`, `type`) select them.
//! - After a known number of allowed and denied datagrams, the Prometheus
//!   counters moved by exactly those numbers; the scrape passes
//!   `promtool check metrics`; `cilium metrics list` and `cilium status`
//!   show the same facts.
//! - `cilium bpf policy get` names every peer by its labels, CIDR identities
//!   included, and the identity API answers for them.
//! - An agent started with default options logs no warning.
//!
//! UDP keeps counts exact: one datagram is one packet each way, with no
//! retransmissions. Needs root; each test has its own agent and /24.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use api::{MonitorEvent, MonitorQuery};
use testbed::{Agent, AgentOptions, CliMonitor, NetNs, Pod, UdpServer};

const UDP_PORT: u16 = 53;
const DROP_TIMEOUT: Duration = Duration::from_millis(700);

const SERVER_POLICY: &str = "\
- endpointSelector:
    matchLabels:
      app: server
  labels: [\"k8s:name=server-policy\"]
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: client
    toPorts:
    - ports:
      - port: \"53\"
        protocol: UDP
";

struct Node {
    _dns: UdpServer,
    client: Pod,
    intruder: Pod,
    server: Pod,
    agent: Agent,
}

impl Node {
    fn start(extra_args: Vec<String>) -> Node {
        let agent = Agent::start_with(AgentOptions {
            extra_args,
            ..AgentOptions::default().with_unique_range()
        })
        .unwrap();
        let client = Pod::create(&agent, "client", &["k8s:app=client"]).unwrap();
        let intruder = Pod::create(&agent, "intruder", &["k8s:app=intruder"]).unwrap();
        let server = Pod::create(&agent, "server", &["k8s:app=server"]).unwrap();
        let dns = server.serve_udp(UDP_PORT).unwrap();
        agent.import_policy(SERVER_POLICY, &[&server]).unwrap();
        Node {
            _dns: dns,
            client,
            intruder,
            server,
            agent,
        }
    }

    fn allowed_roundtrip(&self) {
        assert!(
            self.client
                .udp_roundtrip(self.server.ip(), UDP_PORT, Duration::from_secs(2)),
            "client -> server UDP {UDP_PORT} must pass"
        );
    }

    fn denied_datagram(&self) {
        assert!(
            !self
                .intruder
                .udp_roundtrip(self.server.ip(), UDP_PORT, DROP_TIMEOUT),
            "intruder -> server UDP {UDP_PORT} must be dropped"
        );
    }
}

/// Events of a filtered API stream, read on a thread.
fn subscribe(agent: &Agent, query: &MonitorQuery) -> mpsc::Receiver<MonitorEvent> {
    let stream = agent.client().monitor_query(query).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for ev in stream {
            let Ok(ev) = ev else { break };
            if tx.send(ev).is_err() {
                break;
            }
        }
    });
    rx
}

/// Everything that arrives until the stream has been quiet for `quiet`.
fn drain(rx: &mpsc::Receiver<MonitorEvent>, quiet: Duration) -> Vec<MonitorEvent> {
    let mut out = Vec::new();
    while let Ok(ev) = rx.recv_timeout(quiet) {
        out.push(ev);
    }
    out
}

#[test]
fn denied_datagram_yields_exactly_a_deny_verdict_and_a_drop_with_both_labels() {
    let node = Node::start(Vec::new());
    let server_ep = node.server.endpoint_id();
    let intruder_ep = node.intruder.endpoint_id();
    let intruder_id = node.intruder.identity(&node.agent).unwrap();
    let server_id = node.server.identity(&node.agent).unwrap();
    let events = subscribe(
        &node.agent,
        &MonitorQuery {
            types: vec!["drop".into(), "policy-verdict".into()],
            to: Some(server_ep),
            ..Default::default()
        },
    );
    // Another endpoint's traffic must not show up in this stream.
    let unrelated = subscribe(
        &node.agent,
        &MonitorQuery {
            related_to: Some(node.client.endpoint_id()),
            ..Default::default()
        },
    );
    let cli = CliMonitor::start(
        &node.agent,
        &["-v", "--type", "drop", "--to", &server_ep.to_string()],
    )
    .unwrap();

    node.denied_datagram();
    let seen = drain(&events, Duration::from_millis(1500));
    let summary: Vec<(String, String, String, String)> = seen
        .iter()
        .map(|e| {
            (
                e.kind.clone(),
                e.direction.clone(),
                e.verdict.clone(),
                e.reason_text.clone(),
            )
        })
        .collect();
    let expected = [
        // The intruder's egress is not enforced: allowed by the wildcard key.
        ("policy-verdict", "egress", "allow", ""),
        ("policy-verdict", "ingress", "deny", ""),
        ("drop", "ingress", "", "Policy denied"),
    ]
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()));
    assert_eq!(summary, expected, "events: {seen:#?}");
    for ev in &seen {
        assert_eq!((ev.src_identity, ev.dst_identity), (intruder_id, server_id));
        assert_eq!(ev.src_labels, ["k8s:app=intruder"], "{ev:?}");
        assert_eq!(ev.dst_labels, ["k8s:app=server"], "{ev:?}");
        assert_eq!((ev.src_endpoint, ev.dst_endpoint), (intruder_ep, server_ep));
        assert_eq!((ev.protocol, ev.dst_port), (17, UDP_PORT));
    }
    assert_eq!(seen[0].match_type, "all");
    assert_eq!(seen[1].match_type, "none");
    assert_eq!(seen[1].endpoint, server_ep);
    let unrelated_seen = drain(&unrelated, Duration::from_millis(100));
    assert!(
        unrelated_seen.is_empty(),
        "related-to=client saw {unrelated_seen:#?}"
    );

    // The CLI's verbose text names both sides.
    let line = cli.wait_for_line(|l| l.starts_with("Identity "), Duration::from_secs(3));
    assert_eq!(
        line.as_deref(),
        Some(format!("Identity {intruder_id} [k8s:app=intruder] (endpoint {intruder_ep}) -> {server_id} [k8s:app=server] (endpoint {server_ep})").as_str())
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scrape(port: u16) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// `name{labels}` -> value for every sample of a scrape.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(s: &BTreeMap<String, f64>, series: &str) -> f64 {
    s.get(series).copied().unwrap_or(0.0)
}

#[test]
fn counters_move_by_exactly_the_packets_sent_and_the_scrape_passes_promtool() {
    let port = free_port();
    let node = Node::start(vec![
        "--prometheus-serve-addr".into(),
        format!("127.0.0.1:{port}"),
    ]);
    let drop_series = r#"cilium_drop_count_total{reason="Policy denied",direction="INGRESS"}"#;
    let drop_bytes = r#"cilium_drop_bytes_total{reason="Policy denied",direction="INGRESS"}"#;
    let fwd_in = r#"cilium_forward_count_total{direction="INGRESS"}"#;
    let fwd_out = r#"cilium_forward_count_total{direction="EGRESS"}"#;

    let before = samples(&scrape(port));
    const ALLOWED: usize = 5;
    const DENIED: usize = 3;
    for _ in 0..ALLOWED {
        node.allowed_roundtrip();
    }
    for _ in 0..DENIED {
        node.denied_datagram();
    }
    let text = scrape(port);
    let after = samples(&text);
    let delta = |series: &str| value(&after, series) - value(&before, series);

    // Each roundtrip: request out of the client and into the server, the
    // echo out of the server and into the client. Each denied datagram:
    // out of the intruder (its egress is open), dropped into the server.
    assert_eq!(delta(drop_series), DENIED as f64, "{text}");
    assert_eq!(delta(fwd_out), (2 * ALLOWED + DENIED) as f64, "{text}");
    assert_eq!(delta(fwd_in), (2 * ALLOWED) as f64, "{text}");
    // udp_roundtrip sends "ping IP:PORT": Ethernet + IPv4 + UDP headers and that.
    let payload = format!("ping {}:{UDP_PORT}", node.server.ip()).len();
    assert_eq!(
        delta(drop_bytes),
        (DENIED * (14 + 20 + 8 + payload)) as f64,
        "{text}"
    );

    assert_eq!(value(&after, "cilium_policy"), 1.0);
    assert_eq!(
        value(&after, r#"cilium_endpoint_state{endpoint_state="ready"}"#),
        3.0
    );
    assert!(
        value(&after, r#"cilium_identity{type="reserved"}"#) >= 7.0,
        "{text}"
    );
    assert_eq!(
        value(&after, r#"cilium_identity{type="cluster_local"}"#),
        3.0,
        "{text}"
    );
    // Three endpoint creations and one policy import over three endpoints.
    assert_eq!(
        value(
            &after,
            r#"cilium_endpoint_regenerations_total{outcome="success"}"#
        ),
        6.0,
        "{text}"
    );
    assert_eq!(
        value(
            &after,
            r#"cilium_policy_regeneration_time_stats_seconds_count{scope="total"}"#
        ),
        6.0
    );
    let server_map = format!(
        "cilium_bpf_map_pressure{{map_name=\"cilium_policy_{:05}\"}}",
        node.server.endpoint_id()
    );
    assert!(value(&after, &server_map) > 0.0, "{text}");
    assert!(
        value(&after, r#"cilium_bpf_map_pressure{map_name="cilium_lxc"}"#) > 0.0,
        "{text}"
    );
    // The agent's own map operations: the import wrote policy maps.
    let policy_updates = |outcome: &str| {
        let series = format!("cilium_bpf_map_ops_total{{map_name=\"cilium_policy\",operation=\"update\",outcome=\"{outcome}\"}}");
        value(&after, &series)
    };
    assert!(policy_updates("success") > 0.0, "{text}");
    assert_eq!(policy_updates("fail"), 0.0, "{text}");
    assert_eq!(
        value(&after, r#"cilium_proxy_redirects{protocol="http"}"#),
        0.0
    );

    // A failed import counts.
    let bad = node.agent.temp_dir().join("bad.yaml");
    std::fs::write(&bad, "- endpointSelector: {matchLabels: {app: x}}\n  ingress: [{toPorts: [{ports: [{port: \"99999\"}]}]}]\n").unwrap();
    assert!(!node
        .agent
        .cli(&["policy", "import", &bad.display().to_string()])
        .status
        .success());
    let errors = samples(&scrape(port));
    assert_eq!(value(&errors, "cilium_policy_import_errors_total"), 1.0);

    promtool_check(&text);

    // `cilium metrics list` shows the same counter.
    let list = node
        .agent
        .cli_ok(&["metrics", "list", "-p", "cilium_drop_count_total"])
        .unwrap();
    assert!(
        list.lines()
            .any(|l| l.starts_with("cilium_drop_count_total")
                && l.contains("reason=\"Policy denied\"")),
        "{list}"
    );
    let json = node
        .agent
        .cli_ok(&["metrics", "list", "-o", "json"])
        .unwrap();
    let parsed: Vec<api::MetricSample> = serde_json::from_str(&json).unwrap();
    assert!(parsed
        .iter()
        .any(|s| s.name == "cilium_policy_max_revision" && s.value >= 2.0));

    // `cilium status` summarizes the subsystems; healthz reflects them.
    let status = node.agent.cli_ok(&["status", "--verbose"]).unwrap();
    for want in [
        "Datapath:",
        "Ok",
        "3 endpoint programs attached",
        "Proxy:",
        "not started: no L7 rule needs it",
        "Controller Status:",
        "cilium_ct4_global",
        "monitor-events-reader",
    ] {
        assert!(status.contains(want), "{want:?} missing from:\n{status}");
    }
    let health = node.agent.client().healthz().unwrap();
    assert_eq!(health.cilium.state, "Ok", "{health:#?}");
    assert_eq!(health.endpoint_states.get("ready"), Some(&3));
    assert!(health
        .controllers
        .iter()
        .all(|c| c.status.consecutive_failure_count == 0));
}

fn promtool_check(text: &str) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            panic!("cannot run promtool ({e}): install the `prometheus` apt package (make setup)")
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}\n--- scrape ---\n{text}"
    );
}

#[test]
fn a_client_that_falls_behind_is_told_how_many_events_it_lost() {
    let node = Node::start(Vec::new());
    // Subscribe and never read while a burst goes by: the socket buffers
    // fill, the agent's per-client backlog overflows, and the next read
    // starts with a `lost` notice.
    let stream = node
        .agent
        .client()
        .monitor_query(&MonitorQuery::default())
        .unwrap();
    // Each denied datagram makes 3 events; the backlog is 4096 events plus
    // the socket buffers, so 10000 datagrams overflow it many times over.
    let target = std::net::SocketAddr::from((node.server.ip(), UDP_PORT));
    let sent = node
        .intruder
        .namespace()
        .run(move || {
            let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).unwrap();
            (0..10_000)
                .filter(|_| socket.send_to(b"x", target).is_ok())
                .count()
        })
        .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for ev in stream {
            let Ok(ev) = ev else { break };
            if tx.send(ev).is_err() {
                break;
            }
        }
    });
    let mut lost = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while lost == 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) if ev.kind == "lost" => lost = ev.lost,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(lost > 0, "no lost notice after {sent} denied datagrams");
    let counted = samples_from_list(&node.agent);
    assert!(
        counted >= lost as f64,
        "cilium_monitor_lost_events_total {counted} < {lost}"
    );
}

fn samples_from_list(agent: &Agent) -> f64 {
    agent
        .client()
        .metrics_list()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "cilium_monitor_lost_events_total")
        .map(|s| s.value)
        .unwrap_or(0.0)
}

const CLIENT_CIDR_POLICY: &str = "\
- endpointSelector:
    matchLabels:
      app: client
  egress:
  - toCIDR: [\"10.216.0.1/32\"]
";

#[test]
fn bpf_policy_get_names_cidr_peers_by_their_labels() {
    let node = Node::start(Vec::new());
    node.agent
        .import_policy(CLIENT_CIDR_POLICY, &[&node.client])
        .unwrap();
    let client_id = node.client.endpoint_id().to_string();

    let labelled = node
        .agent
        .cli_ok(&["bpf", "policy", "get", &client_id])
        .unwrap();
    for label in ["cidr:10.216.0.1/32", "reserved:world"] {
        assert!(labelled.contains(label), "no {label}:\n{labelled}");
    }
    // Every peer has labels: no identity is left as a bare number.
    for line in labelled.lines().skip(1) {
        let peer = match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["Allow" | "Deny", _direction, peer, ..] => peer,
            [peer] => peer,
            _ => continue,
        };
        assert!(
            peer.parse::<u32>().is_err(),
            "peer {peer} shown as a number:\n{labelled}"
        );
    }

    // The identity API answers for the CIDR identity the map names.
    let numeric = node
        .agent
        .cli_ok(&["bpf", "policy", "get", "-n", &client_id])
        .unwrap();
    let cidr_identity = numeric
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u32>().ok())
        .find(|id| *id >= 1 << 24)
        .unwrap_or_else(|| panic!("no node-local (CIDR) identity in:\n{numeric}"));
    let identity = node
        .agent
        .cli_ok(&["identity", "get", &cidr_identity.to_string()])
        .unwrap();
    assert!(identity.contains("cidr:10.216.0.1/32"), "{identity}");
}

/// In a namespace of its own (nothing else holds its ports there) whose
/// default route, as on a node, names the node's IP.
#[test]
fn the_start_up_log_has_no_warnings() {
    let (pid, n) = testbed::unique::next_pair();
    let netns = NetNs::create(&format!("cobs-{pid}-{n}")).unwrap();
    for args in [
        &[
            "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ][..],
        &["ip", "link", "set", "eth1", "up"],
        &["ip", "addr", "add", "192.0.2.10/24", "dev", "eth0"],
        &["ip", "link", "set", "eth0", "up"],
        &["ip", "link", "set", "lo", "up"],
        &["ip", "route", "add", "default", "via", "192.0.2.1"],
    ] {
        netns.exec_ok(args).unwrap();
    }
    let agent = Agent::start_in(
        AgentOptions::default().with_unique_range(),
        Some(netns.path()),
    )
    .unwrap();
    // The node's own key is the first write to the kvstore: once it is
    // there, start-up is over.
    let published = testbed::eventually(Duration::from_secs(10), Duration::from_millis(50), || {
        agent
            .cli_ok(&["kvstore", "get", "--recursive", "cilium/state/nodes/v1/"])
            .is_ok_and(|out| !out.trim().is_empty())
    });
    assert!(
        published,
        "the node never published itself:\n{}",
        agent.log_tail()
    );
    let log = std::fs::read_to_string(agent.log_path()).unwrap();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            ["level=warn", "level=error", "warning", "error", "fail"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    assert!(
        warnings.is_empty(),
        "warnings at start-up: {warnings:#?}\nthe whole log:\n{log}"
    );
}

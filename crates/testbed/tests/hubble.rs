//! Hubble end to end: an agent with `--enable-hubble`, netns pods, real
//! packets, and the real `hubble` CLI (built from Cilium's Go module by
//! `make setup`, scripts/hubble-cli.sh) against the agent's socket.
//!
//! - Allowed and denied UDP between pods appear in `hubble observe -o json`
//!   with both pods' names, namespace and labels, the verdict and, for the
//!   denied one, the drop reason.
//! - Hubble's filters (`--verdict`, `--from-pod`, `--to-port`, `--type`)
//!   select exactly the matching flows, and `--last N` the newest N.
//! - `hubble status` and `hubble list nodes` read the ring's counters.
//!
//! Needs root. Skips (saying so) only when the hubble binary is absent.

#[path = "hubble/support.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use support::{field, hubble_binary, hubble_socket, pods_of, text, udp_dport, Hubble};
use testbed::{Agent, AgentOptions, Pod, UdpServer};

const UDP_PORT: u16 = 53;
const NAMESPACE: &str = "shop";

const SERVER_POLICY: &str = "\
- endpointSelector:
    matchLabels:
      app: server
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
    _agent: Agent,
    hubble: Hubble,
}

fn start(bin: PathBuf) -> Node {
    let (socket, extra_args) = hubble_socket("hubble-test");
    let agent = Agent::start_with(AgentOptions {
        extra_args,
        ..AgentOptions::default().with_unique_range()
    })
    .unwrap();
    let ns = format!("k8s:io.kubernetes.pod.namespace={NAMESPACE}");
    let client = Pod::create(&agent, "client", &["k8s:app=client", &ns]).unwrap();
    let intruder = Pod::create(&agent, "intruder", &["k8s:app=intruder", &ns]).unwrap();
    let server = Pod::create(&agent, "server", &["k8s:app=server", &ns]).unwrap();
    let dns = server.serve_udp(UDP_PORT).unwrap();
    agent.import_policy(SERVER_POLICY, &[&server]).unwrap();
    Node {
        _dns: dns,
        client,
        intruder,
        server,
        _agent: agent,
        hubble: Hubble { bin, socket },
    }
}

#[test]
fn hubble_observe_shows_allowed_and_denied_flows_with_both_pods() {
    let Some(bin) = hubble_binary() else {
        eprintln!(
            "SKIPPED: no hubble binary (run `make setup`, which builds it with \
             scripts/hubble-cli.sh, or set HUBBLE_BIN)"
        );
        return;
    };
    let node = start(bin);
    for _ in 0..3 {
        assert!(
            node.client
                .udp_roundtrip(node.server.ip(), UDP_PORT, Duration::from_secs(2)),
            "client -> server UDP {UDP_PORT} must pass"
        );
    }
    assert!(
        !node
            .intruder
            .udp_roundtrip(node.server.ip(), UDP_PORT, Duration::from_millis(700)),
        "intruder -> server UDP {UDP_PORT} must be dropped"
    );
    std::thread::sleep(Duration::from_millis(500));
    let hubble = &node.hubble;
    let all = hubble.observe(&["--last", "4095"]);
    let server_ip = node.server.ip().to_string();
    let shop = |flow: &Value, side: &str| text(flow, &[side, "namespace"]) == NAMESPACE;

    // Allowed: client -> server, forwarded, both pods named, with labels.
    let allowed: Vec<&Value> = all
        .iter()
        .filter(|f| pods_of(f) == ("client", "server") && udp_dport(f) == u64::from(UDP_PORT))
        .collect();
    assert!(!allowed.is_empty(), "no client -> server flow in {all:#?}");
    for f in &allowed {
        assert_eq!(text(f, &["verdict"]), "FORWARDED", "{f:#}");
        assert!(shop(f, "source") && shop(f, "destination"), "{f:#}");
        assert_eq!(text(f, &["IP", "destination"]), server_ip);
        let labels = field(field(f, "source"), "labels").to_string();
        assert!(labels.contains("k8s:app=client"), "{f:#}");
        assert!(!text(f, &["node_name"]).is_empty(), "{f:#}");
    }

    // Denied: intruder -> server, dropped by policy, both pods named.
    let dropped: Vec<&Value> = all
        .iter()
        .filter(|f| pods_of(f) == ("intruder", "server") && text(f, &["verdict"]) == "DROPPED")
        .collect();
    assert!(!dropped.is_empty(), "no dropped intruder flow in {all:#?}");
    let denied = dropped
        .iter()
        .find(|f| field(field(f, "event_type"), "type").as_i64() == Some(1))
        .unwrap_or_else(|| panic!("no drop event among {dropped:#?}"));
    assert_eq!(
        text(denied, &["drop_reason_desc"]),
        "POLICY_DENIED",
        "{denied:#}"
    );
    assert!(
        shop(denied, "source") && shop(denied, "destination"),
        "{denied:#}"
    );
    let labels = field(field(denied, "destination"), "labels").to_string();
    assert!(labels.contains("k8s:app=server"), "{denied:#}");
    // Its egress is not enforced (allowed there); the server's ingress
    // forwards nothing of it.
    let admitted: Vec<&Value> = all
        .iter()
        .filter(|f| {
            pods_of(f) == ("intruder", "server")
                && text(f, &["verdict"]) == "FORWARDED"
                && text(f, &["traffic_direction"]) == "INGRESS"
        })
        .collect();
    assert!(admitted.is_empty(), "intruder admitted: {admitted:#?}");

    // Filters select exactly the matching flows.
    let only_dropped = hubble.observe(&["--last", "4095", "--verdict", "DROPPED"]);
    let expected = all
        .iter()
        .filter(|f| text(f, &["verdict"]) == "DROPPED")
        .count();
    assert_eq!(only_dropped.len(), expected);
    assert!(only_dropped
        .iter()
        .all(|f| text(f, &["verdict"]) == "DROPPED"));
    let from_client = hubble.observe(&["--last", "4095", "--from-pod", "shop/client"]);
    assert!(!from_client.is_empty());
    assert!(from_client.iter().all(|f| pods_of(f).0 == "client"));
    let drops_to_53 = hubble.observe(&["--last", "4095", "--type", "drop", "--to-port", "53"]);
    assert!(!drops_to_53.is_empty());
    assert!(drops_to_53
        .iter()
        .all(|f| pods_of(f).0 == "intruder" && udp_dport(f) == 53));

    // --last N: the newest N, oldest first.
    let last2 = hubble.observe(&["--last", "2"]);
    let now = hubble.observe(&["--last", "4095"]);
    assert_eq!(last2.len(), 2);
    assert_eq!(
        last2,
        now[now.len() - 2..],
        "--last 2 is not the newest two"
    );

    let compact = hubble.run(&["observe", "--last", "4095", "-o", "compact"]);
    eprintln!("{compact}");
    assert!(compact.contains("shop/intruder") && compact.contains("DROPPED"));

    let status = hubble.run(&["status"]);
    assert!(
        status.contains("Current/Max Flows: ") && status.contains("/4,095"),
        "{status}"
    );
    let nodes = hubble.run(&["list", "nodes"]);
    assert!(nodes.contains("Connected"), "{nodes}");
    let dir = hubble.socket.parent().unwrap().to_path_buf();
    drop(node);
    let _ = std::fs::remove_dir_all(dir);
}

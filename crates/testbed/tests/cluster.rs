//! A cluster of nodes on this machine (testbed::cluster): network namespaces
//! with their own cilium-agent, joined by a bridge underlay, sharing a real
//! etcd. Pods are attached by cilium-cni inside their node. Proves that
//! identities are cluster-wide and travel in the VXLAN header, that policy
//! holds across nodes, and that enforcement survives etcd and agent outages.
//! Needs root and `etcd` (Debian: etcd-server).

#[path = "cluster/echo.rs"]
mod echo;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde_json::Value;
use testbed::cluster::{Cluster, ClusterOptions, ClusterPod};
use testbed::{eventually, Monitor};

use echo::{bulk_echo, serve_echo, Chatter};

/// Backends accept frontends on TCP 80, nothing else.
const POLICY: &str = r#"
- endpointSelector: {matchLabels: {app: backend}}
  labels: ["k8s:policy=cluster-test"]
  ingress:
  - fromEndpoints: [{matchLabels: {app: frontend}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#;

const SHORT: Duration = Duration::from_millis(300);
const DENY_PROBE: Duration = Duration::from_millis(800);
/// How long a change may take to reach every node in the tests that do not
/// measure it.
const PROPAGATION: Duration = Duration::from_secs(10);

/// Retries a short connection until it works; the time it took.
fn connects_within(
    from: &ClusterPod,
    to: Ipv4Addr,
    port: u16,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    eventually(limit, Duration::from_millis(20), || {
        from.tcp_connect(to, port, SHORT)
    })
    .then(|| started.elapsed())
}

fn assert_connects(cluster: &Cluster, from: &ClusterPod, to: &ClusterPod, port: u16) {
    assert!(
        connects_within(from, to.ip(), port, PROPAGATION).is_some(),
        "{} (node {}, {}) cannot reach {} (node {}, {}) on port {port} within {PROPAGATION:?}\n{}",
        from.name(),
        from.node(),
        from.ip(),
        to.name(),
        to.node(),
        to.ip(),
        cluster.describe()
    );
}

fn assert_denied(from: &ClusterPod, to: &ClusterPod, port: u16) {
    assert!(
        !from.tcp_connect(to.ip(), port, DENY_PROBE),
        "{} (node {}) reached {} (node {}) on port {port} although the policy denies it",
        from.name(),
        from.node(),
        to.name(),
        to.node()
    );
}

/// Backend (an echo server on 80) on node 1, frontend and intruder on
/// node 0, the policy imported and the frontend let through.
fn echo_pods(cluster: &Cluster) -> [ClusterPod; 3] {
    let backend = cluster.pod(1, "backend", &["k8s:app=backend"]).unwrap();
    let frontend = cluster.pod(0, "frontend", &["k8s:app=frontend"]).unwrap();
    let intruder = cluster.pod(0, "intruder", &["k8s:app=intruder"]).unwrap();
    serve_echo(&backend, 80);
    cluster.import_policy(POLICY).unwrap();
    assert_connects(cluster, &frontend, &backend, 80);
    [backend, frontend, intruder]
}

/// Non-reserved identities as (id, sorted labels), from `cilium identity list -o json`.
fn cluster_identities(cluster: &Cluster, node: usize) -> Vec<(u64, Vec<String>)> {
    let text = cluster
        .node(node)
        .cli_ok(&["identity", "list", "-o", "json"])
        .unwrap();
    let list: Vec<Value> = serde_json::from_str(&text).unwrap();
    let mut out: Vec<(u64, Vec<String>)> = list
        .iter()
        .filter_map(|i| {
            let id = i["id"].as_u64()?;
            let mut labels: Vec<String> = i["labels"]
                .as_array()?
                .iter()
                .filter_map(|l| Some(l.as_str()?.to_string()))
                .collect();
            labels.sort();
            (id >= 256 && !labels.iter().any(|l| l.starts_with("cidr:"))).then_some((id, labels))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn identity_policy_holds_across_three_nodes() {
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions {
        nodes: 3,
        etcd_members: 1,
    })
    .unwrap();
    let up = started.elapsed();
    let backend = cluster.pod(1, "backend", &["k8s:app=backend"]).unwrap();
    let frontend = cluster.pod(0, "frontend", &["k8s:app=frontend"]).unwrap();
    let intruder = cluster.pod(2, "intruder", &["k8s:app=intruder"]).unwrap();
    let _http = backend.serve_tcp(80).unwrap();
    let _other = backend.serve_tcp(81).unwrap();
    cluster.import_policy(POLICY).unwrap();

    // `cilium node list` on every node shows all three with their IPs.
    for node in cluster.nodes() {
        let list = node.cli_ok(&["node", "list"]).unwrap();
        for other in cluster.nodes() {
            let ip = other.ip().to_string();
            assert!(
                list.lines()
                    .any(|l| l.starts_with(other.name()) && l.contains(&ip)),
                "`cilium node list` on {} lacks {} {ip}:\n{list}",
                node.name(),
                other.name()
            );
        }
    }

    // Allowed across nodes; wrong port and wrong identity denied.
    assert_connects(&cluster, &frontend, &backend, 80);
    assert_denied(&frontend, &backend, 81);
    let mut drops = Monitor::start(cluster.node(1).agent(), &["drop"]).unwrap();
    assert_denied(&intruder, &backend, 80);

    // One identity per label set, the same number on every node.
    let intruder_id = intruder.identity().unwrap();
    let frontend_id = frontend.identity().unwrap();
    assert!(intruder_id >= 256 && frontend_id >= 256 && intruder_id != frontend_id);
    let reference = cluster_identities(&cluster, 0);
    assert!(
        eventually(PROPAGATION, Duration::from_millis(100), || {
            (1..3).all(|n| cluster_identities(&cluster, n) == reference)
        }),
        "`cilium identity list` differs between nodes: {:#?}",
        (0..3)
            .map(|n| cluster_identities(&cluster, n))
            .collect::<Vec<_>>()
    );
    for (pod, id) in [
        (&intruder, intruder_id),
        (&frontend, frontend_id),
        (&backend, backend.identity().unwrap()),
    ] {
        let label = format!("k8s:app={}", pod.name());
        assert!(
            reference
                .iter()
                .any(|(i, l)| *i == id as u64 && l.contains(&label)),
            "identity {id} of {} ({label}) is not in the identity list {reference:?}",
            pod.name()
        );
    }

    // The receiving node's drop names the remote source identity, which it
    // could only have from the VNI (the intruder lives on another node).
    let backend_ep = backend.endpoint_id().unwrap();
    let drop = drops.wait_for(
        |ev| {
            ev.reason_text == "Policy denied"
                && ev.src_identity == intruder_id
                && ev.dst_port == 80
                && ev.dst_ip == backend.ip().to_string()
        },
        Duration::from_secs(3),
    );
    let drop = drop.unwrap_or_else(|| {
        panic!(
            "node1 reported no `Policy denied` drop from intruder identity {intruder_id} to backend endpoint {backend_ep}; drops seen: {:#?}",
            drops.seen()
        )
    });
    assert_eq!(drop.direction, "ingress", "{drop:#?}");
    assert!(
        drop.src_labels.iter().any(|l| l == "k8s:app=intruder"),
        "node1 resolves the remote identity's labels: {drop:#?}"
    );

    // Where node0 tunnels to: the backend's IP via node1.
    let tunnels = cluster.node(0).cli_ok(&["bpf", "tunnel", "list"]).unwrap();
    let row = tunnels
        .lines()
        .find(|l| l.starts_with(&format!("{}/32", backend.ip())))
        .unwrap_or_else(|| panic!("no tunnel entry for {} on node0:\n{tunnels}", backend.ip()));
    assert!(row.contains(&cluster.node(1).ip().to_string()), "{row}");

    // The kvstore CLI: written on one node, read on another, then deleted.
    cluster
        .node(0)
        .cli_ok(&["kvstore", "set", "testbed/greeting", "hello"])
        .unwrap();
    let got = cluster
        .node(2)
        .cli_ok(&["kvstore", "get", "testbed/greeting"])
        .unwrap();
    assert_eq!(got, "testbed/greeting => hello\n");
    let nodes = cluster
        .node(2)
        .cli_ok(&["kvstore", "get", "--recursive", "cilium/state/nodes/v1"])
        .unwrap();
    assert_eq!(nodes.lines().count(), 3, "three node keys:\n{nodes}");
    cluster
        .node(1)
        .cli_ok(&["kvstore", "delete", "testbed/greeting"])
        .unwrap();
    let gone = cluster.node(0).cli(&["kvstore", "get", "testbed/greeting"]);
    assert!(!gone.status.success(), "deleted key still readable");
    eprintln!(
        "cluster of 3 up in {up:?}, test done in {:?}",
        started.elapsed()
    );
}

/// Packets node `index`'s VXLAN device has received.
fn vxlan_rx_packets(cluster: &Cluster, index: usize) -> u64 {
    let out = cluster
        .node(index)
        .netns()
        .exec_ok(&["ip", "-s", "-j", "link", "show", "cilium_vxlan"])
        .unwrap();
    let links: Value = serde_json::from_str(&out).unwrap();
    links[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("no rx packets in {out}"))
}

#[test]
fn bpf_host_takes_pod_traffic_off_the_wire_and_the_vxlan_device_is_the_fallback() {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 2,
        etcd_members: 1,
    })
    .unwrap();
    let [backend, frontend, intruder] = echo_pods(&cluster);

    // Full-size and GSO packets both ways, none through either VXLAN device.
    let before = [vxlan_rx_packets(&cluster, 0), vxlan_rx_packets(&cluster, 1)];
    bulk_echo(&frontend, backend.ip(), 80).expect("bulk transfer through bpf_host");
    assert_denied(&intruder, &backend, 80);
    let after = [vxlan_rx_packets(&cluster, 0), vxlan_rx_packets(&cluster, 1)];
    assert_eq!(after, before, "packets decapsulated by the VXLAN device");

    // Without bpf_host (its pinned link removed), the VXLAN device and
    // bpf_overlay carry the same traffic under the same policy.
    for node in cluster.nodes() {
        let pins = node.agent().paths().bpf_root.join("netdev");
        let links: Vec<_> = std::fs::read_dir(&pins).unwrap().flatten().collect();
        assert_eq!(links.len(), 1, "one device with bpf_host in {pins:?}");
        std::fs::remove_file(links[0].path()).unwrap();
    }
    // (The kernel lets go of an unpinned link after an RCU grace period.)
    let mut fallback = after;
    let through_devices = eventually(Duration::from_secs(2), Duration::from_millis(50), || {
        bulk_echo(&frontend, backend.ip(), 80).expect("bulk transfer while bpf_host goes");
        fallback = [vxlan_rx_packets(&cluster, 0), vxlan_rx_packets(&cluster, 1)];
        fallback[0] > after[0] && fallback[1] > after[1]
    });
    assert!(
        through_devices,
        "the VXLAN devices received nothing: {after:?} -> {fallback:?}"
    );
    assert_denied(&intruder, &backend, 80);
    let end = [vxlan_rx_packets(&cluster, 0), vxlan_rx_packets(&cluster, 1)];
    assert!(
        end[1] > fallback[1],
        "the intruder's SYN reached node1 through bpf_host: {fallback:?} -> {end:?}"
    );
}

#[test]
fn new_remote_pod_is_allowed_within_two_seconds() {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 2,
        etcd_members: 1,
    })
    .unwrap();
    let backend = cluster.pod(1, "backend", &["k8s:app=backend"]).unwrap();
    let _http = backend.serve_tcp(80).unwrap();
    cluster.import_policy(POLICY).unwrap();
    // Warm up: the policy is in force on node1 (a stranger is denied).
    let stranger = cluster.pod(0, "stranger", &["k8s:app=stranger"]).unwrap();
    assert_denied(&stranger, &backend, 80);

    // A new identity (first pod with these labels) on node A.
    let frontend = cluster
        .pod(0, "frontend", &["k8s:app=frontend", "k8s:release=canary"])
        .unwrap();
    let created = Instant::now();
    let took = connects_within(&frontend, backend.ip(), 80, Duration::from_secs(2));
    let took = took.unwrap_or_else(|| {
        panic!(
            "frontend (new identity {:?}) could not reach backend within 2 s of its creation\n{}",
            frontend.identity(),
            cluster.describe()
        )
    });
    eprintln!("new pod reachable across nodes {took:?} after its creation");
    assert!(created.elapsed() < Duration::from_secs(3));
}

#[test]
fn etcd_outages_keep_enforcement_and_resync() {
    let mut cluster = Cluster::start(ClusterOptions {
        nodes: 2,
        etcd_members: 3,
    })
    .unwrap();
    let [backend, frontend, intruder] = echo_pods(&cluster);
    assert_denied(&intruder, &backend, 80);
    bulk_echo(&frontend, backend.ip(), 80).expect("full-size packets cross the overlay");
    let chatter = Chatter::start(&frontend, backend.ip(), 80);

    // One member down: nothing changes, a new pod still propagates.
    cluster.etcd().unwrap().kill_member(0).unwrap();
    // (A new label set: its identity is allocated in etcd right now.)
    let second = cluster
        .pod(0, "frontend-2", &["k8s:app=frontend", "k8s:gen=2"])
        .expect("with one of three etcd members down, a new pod's identity is allocated at once");
    assert_connects(&cluster, &second, &backend, 80);

    // All of etcd down: every node keeps the policy it had.
    cluster.etcd().unwrap().stop_all();
    let outage = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), Duration::from_millis(200), || {
            cluster.nodes().iter().all(|n| {
                n.client()
                    .healthz()
                    .is_ok_and(|s| s.kvstore.state != api::Status::OK)
            })
        }),
        "/v1/healthz still reports the kvstore Ok with etcd down: {:?}",
        cluster.node(0).client().healthz().map(|s| s.kvstore)
    );
    while outage.elapsed() < Duration::from_secs(4) {
        assert!(
            frontend.tcp_connect(backend.ip(), 80, Duration::from_secs(1)),
            "allowed flow broke during the etcd outage"
        );
        assert_denied(&intruder, &backend, 80);
    }
    assert!(second.tcp_connect(backend.ip(), 80, Duration::from_secs(1)));
    let failed_before = chatter.failed();
    assert_eq!(
        failed_before, 0,
        "the long-lived connection lost round trips during the outage"
    );

    // etcd back: agents resync, later changes propagate.
    cluster.etcd().unwrap().restart_all().unwrap();
    assert!(
        eventually(Duration::from_secs(15), Duration::from_millis(200), || {
            cluster.nodes().iter().all(|n| {
                n.client()
                    .healthz()
                    .is_ok_and(|s| s.kvstore.state == api::Status::OK)
            })
        }),
        "kvstore not Ok again after etcd returned: {:?}",
        cluster.node(0).client().healthz().map(|s| s.kvstore)
    );
    let third = cluster
        .pod(0, "frontend-3", &["k8s:app=frontend", "k8s:gen=3"])
        .unwrap();
    assert_connects(&cluster, &third, &backend, 80);
    assert_denied(&intruder, &backend, 80);
    let late = cluster
        .pod(1, "intruder-2", &["k8s:app=intruder", "k8s:gen=3"])
        .unwrap();
    assert_denied(&late, &backend, 80);
    assert!(chatter.ok() > 100, "only {} round trips", chatter.ok());
    assert_eq!(
        chatter.failed(),
        0,
        "the long-lived connection lost round trips"
    );
}

#[test]
fn killed_agent_keeps_enforcing_and_reconciles_after_restart() {
    let mut cluster = Cluster::start(ClusterOptions {
        nodes: 2,
        etcd_members: 1,
    })
    .unwrap();
    let backend = cluster.pod(1, "backend", &["k8s:app=backend"]).unwrap();
    let frontend = cluster.pod(0, "frontend", &["k8s:app=frontend"]).unwrap();
    let intruder = cluster.pod(0, "intruder", &["k8s:app=intruder"]).unwrap();
    let _http = backend.serve_tcp(80).unwrap();
    cluster.import_policy(POLICY).unwrap();
    assert_connects(&cluster, &frontend, &backend, 80);
    assert_denied(&intruder, &backend, 80);

    // node1's agent crashes: its datapath keeps enforcing.
    cluster.kill_agent(1);
    for _ in 0..3 {
        assert!(
            frontend.tcp_connect(backend.ip(), 80, Duration::from_secs(1)),
            "allowed flow broke with node1's agent down"
        );
        assert_denied(&intruder, &backend, 80);
    }
    // Meanwhile a pod with a new identity appears on node0: node1 cannot
    // know its identity or address yet.
    let newcomer = cluster
        .pod(0, "newcomer", &["k8s:app=frontend", "k8s:gen=2"])
        .unwrap();

    // After the restart node1 reconciles: the newcomer gets through.
    let restart = Instant::now();
    cluster.start_agent(1).unwrap();
    assert_connects(&cluster, &newcomer, &backend, 80);
    eprintln!(
        "node1's agent reconciled {:?} after its restart",
        restart.elapsed()
    );
    assert_denied(&intruder, &backend, 80);
    assert!(frontend.tcp_connect(backend.ip(), 80, Duration::from_secs(1)));
    // And node1's own endpoints are unchanged.
    assert!(backend.endpoint().is_ok());

    // Off the underlay, node0's pods cannot reach node1; back on, they can.
    cluster.cut_underlay(0).unwrap();
    assert!(
        !frontend.tcp_connect(backend.ip(), 80, DENY_PROBE),
        "traffic crossed a cut underlay"
    );
    cluster.restore_underlay(0).unwrap();
    assert_connects(&cluster, &frontend, &backend, 80);
}

#[test]
fn single_node_without_etcd_uses_the_embedded_store() {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 1,
        etcd_members: 0,
    })
    .unwrap();
    let backend = cluster.pod(0, "backend", &["k8s:app=backend"]).unwrap();
    let frontend = cluster.pod(0, "frontend", &["k8s:app=frontend"]).unwrap();
    let _http = backend.serve_tcp(80).unwrap();
    let _other = backend.serve_tcp(81).unwrap();
    cluster.import_policy(POLICY).unwrap();
    assert_connects(&cluster, &frontend, &backend, 80);
    assert_denied(&frontend, &backend, 81);

    let node = cluster.node(0);
    let list = node.cli_ok(&["node", "list"]).unwrap();
    assert!(
        list.lines()
            .any(|l| l.starts_with("node0") && l.contains("local")),
        "{list}"
    );
    node.cli_ok(&["kvstore", "set", "testbed/k", "v"]).unwrap();
    assert_eq!(
        node.cli_ok(&["kvstore", "get", "testbed/k"]).unwrap(),
        "testbed/k => v\n"
    );
    node.cli_ok(&["kvstore", "delete", "testbed/k"]).unwrap();
    assert!(node.client().healthz().is_ok());
}

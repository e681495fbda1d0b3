//! Services across a cluster (issue 7, item 4): a service defined on one
//! node's API travels through etcd and is balanced by every node, over
//! backends on any node; deleting it on any node stops it everywhere.
//! Needs root and `etcd` (Debian: etcd-server).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use api::{BackendAddress, FrontendAddress, ServiceSpec};
use testbed::cluster::{Cluster, ClusterOptions, ClusterPod};
use testbed::eventually;

const SERVICE_ID: u16 = 42;
const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 42);
const VIP_PORT: u16 = 80;
const BACKEND_PORT: u16 = 8080;
const SHORT: Duration = Duration::from_millis(300);
/// How long a pod's address may take to reach the other node's ipcache.
const PROPAGATION: Duration = Duration::from_secs(10);
/// How long a service change may take to be balanced on every node.
const SERVICE_SYNC: Duration = Duration::from_secs(5);

fn spec(backends: &[&ClusterPod]) -> ServiceSpec {
    ServiceSpec {
        frontend_address: FrontendAddress {
            ip: VIP.to_string(),
            port: VIP_PORT,
            protocol: "TCP".into(),
        },
        backend_addresses: backends
            .iter()
            .map(|pod| BackendAddress {
                ip: pod.ip().to_string(),
                port: BACKEND_PORT,
                weight: 1,
                state: String::new(),
            })
            .collect(),
        ..Default::default()
    }
}

/// Backend names the client reached through the VIP until it saw all of
/// `want` or `limit` passed.
fn reached_through_vip(
    client: &ClusterPod,
    want: &BTreeSet<String>,
    limit: Duration,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && !want.is_subset(&seen) {
        if let Some(name) = client.tcp_request(VIP, VIP_PORT, SHORT) {
            seen.insert(name);
        }
    }
    seen
}

fn lb_lists_vip(cluster: &Cluster, node: usize) -> bool {
    let frontend = format!("{VIP}:{VIP_PORT}");
    cluster
        .node(node)
        .cli_ok(&["bpf", "lb", "list"])
        .unwrap()
        .contains(&frontend)
}

#[test]
fn a_service_defined_on_one_node_is_balanced_on_all() {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 2,
        etcd_members: 1,
    })
    .unwrap();
    let b0 = cluster.pod(0, "b0", &["k8s:app=backend"]).unwrap();
    let b1 = cluster.pod(1, "b1", &["k8s:app=backend"]).unwrap();
    let client = cluster.pod(1, "client", &["k8s:app=client"]).unwrap();
    let _s0 = b0.serve_tcp(BACKEND_PORT).unwrap();
    let _s1 = b1.serve_tcp(BACKEND_PORT).unwrap();
    // Pod addresses first, so the timing below measures the service alone.
    for backend in [&b0, &b1] {
        assert!(
            eventually(PROPAGATION, Duration::from_millis(50), || {
                client
                    .tcp_request(backend.ip(), BACKEND_PORT, SHORT)
                    .is_some()
            }),
            "client cannot reach {} ({}) directly\n{}",
            backend.name(),
            backend.ip(),
            cluster.describe()
        );
    }

    // Defined on node 0; the client on node 1 reaches both backends.
    let put = Instant::now();
    cluster
        .node(0)
        .client()
        .service_put(SERVICE_ID, &spec(&[&b0, &b1]))
        .unwrap();
    let want: BTreeSet<String> = ["b0", "b1"].iter().map(|s| s.to_string()).collect();
    let seen = reached_through_vip(&client, &want, SERVICE_SYNC);
    assert_eq!(
        seen,
        want,
        "within {SERVICE_SYNC:?} of the PUT on node 0, the client on node 1 reached {seen:?} \
         through {VIP}:{VIP_PORT}\n{}",
        cluster.describe()
    );
    eprintln!(
        "service balanced on node 1 {:?} after the PUT on node 0",
        put.elapsed()
    );
    let on_node1 = cluster.node(1).client().service_get(SERVICE_ID).unwrap();
    assert_eq!(on_node1.spec.backend_addresses.len(), 2);

    // Deleted on node 1; node 0 stops balancing it.
    cluster.node(1).client().service_delete(SERVICE_ID).unwrap();
    assert!(
        eventually(SERVICE_SYNC, Duration::from_millis(50), || {
            cluster.node(0).client().service_get(SERVICE_ID).is_err() && !lb_lists_vip(&cluster, 0)
        }),
        "node 0 still has service {SERVICE_ID} {SERVICE_SYNC:?} after its deletion on node 1\n{}",
        cluster.describe()
    );
    assert!(
        !lb_lists_vip(&cluster, 1),
        "node 1 still balances the deleted service"
    );
}

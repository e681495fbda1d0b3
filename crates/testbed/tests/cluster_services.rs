//! Services across a cluster (issue 7, item 4): a service defined on one
//! node's API travels through etcd and is balanced by every node, over
//! backends on any node; deleting it on any node stops it everywhere.
//! NodePort and external IP frontends serve a host outside the cluster
//! over IPv4 and IPv6 (issue 18), with backends on the node dialled and on
//! the other one; path MTU discovery works through a ClusterIP of either
//! family.
//! Needs root and `etcd` (Debian: etcd-server).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use api::{BackendAddress, FrontendAddress, ServiceFlags, ServiceSpec};
use testbed::cluster::{Cluster, ClusterOptions, ClusterPod, OutsideHost};
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

const NODE_PORT: u16 = 30080;

/// A service of `kind` at `frontend`:`port` over the backends' addresses of
/// the frontend's family.
fn external_spec(kind: &str, frontend: IpAddr, port: u16, backends: &[&ClusterPod]) -> ServiceSpec {
    let address_of = |pod: &ClusterPod| -> IpAddr {
        match frontend {
            IpAddr::V4(_) => pod.ip().into(),
            IpAddr::V6(_) => pod.ip6().expect("a dual-stack pod").into(),
        }
    };
    let mut spec = spec(backends);
    spec.frontend_address.ip = frontend.to_string();
    spec.frontend_address.port = port;
    for (backend, pod) in spec.backend_addresses.iter_mut().zip(backends) {
        backend.ip = address_of(pod).to_string();
    }
    spec.flags = ServiceFlags {
        kind: kind.into(),
        ..Default::default()
    };
    spec
}

/// Backend names a real curl outside the cluster reached at
/// `frontend`:`port` until it saw all of `want` or `limit` passed.
fn reached_from_outside(
    outside: &OutsideHost,
    frontend: IpAddr,
    port: u16,
    want: &BTreeSet<String>,
    limit: Duration,
) -> BTreeSet<String> {
    let url = format!("http://{}/", std::net::SocketAddr::new(frontend, port));
    let family = if frontend.is_ipv6() { "-6" } else { "-4" };
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && !want.is_subset(&seen) {
        // The backends answer a line, no HTTP: curl takes it as HTTP/0.9.
        let out = outside.exec(&["curl", family, "-s", "--http0.9", "-m", "1", &url]);
        if out.status.success() {
            seen.insert(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
    }
    seen
}

/// A host outside the cluster dials both nodes' NodePort and an external
/// IP routed to node 0, over IPv4 and over IPv6 (the nodes' IPv6 underlay
/// addresses; the tunnel stays IPv4), and reaches the backends on both
/// nodes through each: the node dialled hands its own backend the client
/// as it is and sends the other node's backend the flow from its own
/// address, in `cilium bpf nat list`.
#[test]
fn node_ports_and_external_ips_serve_a_client_outside_over_both_families() {
    let cluster = Cluster::start_dual_stack_underlay(
        ClusterOptions {
            nodes: 2,
            etcd_members: 1,
        },
        &["--enable-ipv6=true"],
    )
    .unwrap();
    for node in cluster.nodes() {
        // The nodes route IPv6 answers to clients (Cilium's agent turns
        // this on itself).
        node.netns()
            .sysctl("net.ipv6.conf.all.forwarding", "1")
            .unwrap();
    }
    let b0 = cluster.pod(0, "b0", &["k8s:app=backend"]).unwrap();
    let b1 = cluster.pod(1, "b1", &["k8s:app=backend"]).unwrap();
    let _servers = (
        b0.serve_tcp(BACKEND_PORT).unwrap(),
        b1.serve_tcp(BACKEND_PORT).unwrap(),
    );
    let outside = cluster.outside_host6("client").unwrap();
    let node0 = cluster.node(0);
    let external_ips: [IpAddr; 2] = [
        Ipv4Addr::new(203, 0, 113, 42).into(),
        Ipv6Addr::new(0x2001, 0xdb8, 0xe, 0, 0, 0, 0, 0x42).into(),
    ];
    for (ip, via) in external_ips.iter().zip([
        IpAddr::from(node0.ip()),
        node0.ip6().expect("node 0's IPv6 address").into(),
    ]) {
        outside
            .namespace()
            .exec_ok(&[
                "ip",
                "route",
                "add",
                &ip.to_string(),
                "via",
                &via.to_string(),
            ])
            .unwrap();
    }

    let both: BTreeSet<String> = ["b0", "b1"].iter().map(|s| s.to_string()).collect();
    let mut id = 60;
    for (family, external_ip) in ["IPv4", "IPv6"].into_iter().zip(external_ips) {
        let node_ip = |index: usize| -> IpAddr {
            let node = cluster.node(index);
            match family {
                "IPv4" => node.ip().into(),
                _ => node.ip6().expect("an IPv6 underlay address").into(),
            }
        };
        let frontends = [
            ("NodePort", node_ip(0), NODE_PORT),
            ("NodePort", node_ip(1), NODE_PORT),
            ("ExternalIPs", external_ip, VIP_PORT),
        ];
        for (kind, frontend, port) in frontends {
            id += 1;
            let spec = external_spec(kind, frontend, port, &[&b0, &b1]);
            node0.client().service_put(id, &spec).unwrap();
            let seen = reached_from_outside(&outside, frontend, port, &both, PROPAGATION);
            assert_eq!(
                seen,
                both,
                "{family} {kind} {frontend} port {port} from outside reached {seen:?}\n{}",
                cluster.describe()
            );
        }
        let nat = node0.cli_ok(&["bpf", "nat", "list"]).unwrap();
        let from_node0 = match node_ip(0) {
            IpAddr::V4(ip) => format!("XLATE_SRC {ip}:"),
            IpAddr::V6(ip) => format!("XLATE_SRC [{ip}]:"),
        };
        assert!(
            nat.lines().any(|l| l.contains(&from_node0)),
            "{family}: node 0 sent b1 no flow from its own address:\n{nat}"
        );
    }
}

/// A server outside the cluster that reads each upload whole and answers
/// how many bytes it got. Its listener is made in `outside`'s namespace
/// and keeps it; the accepting thread needs none.
fn upload_sink(outside: &OutsideHost, port: u16) {
    use std::io::{Read, Write};

    let listener = outside
        .namespace()
        .run(move || std::net::TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut got = Vec::new();
            if conn.read_to_end(&mut got).is_ok() {
                let _ = conn.write_all(format!("{}\n", got.len()).as_bytes());
            }
        }
    });
}

/// Uploads `size` bytes from `pod` to `to` and returns the answer.
fn upload(pod: &ClusterPod, to: std::net::SocketAddr, size: usize) -> std::io::Result<String> {
    use std::io::{Read, Write};

    pod.namespace()
        .run(move || -> std::io::Result<String> {
            let mut conn = std::net::TcpStream::connect_timeout(&to, SHORT)?;
            conn.set_write_timeout(Some(Duration::from_secs(5)))?;
            conn.set_read_timeout(Some(Duration::from_secs(5)))?;
            conn.write_all(&vec![7u8; size])?;
            conn.shutdown(std::net::Shutdown::Write)?;
            let mut answer = String::new();
            conn.read_to_string(&mut answer)?;
            Ok(answer.trim().to_string())
        })
        .unwrap()
}

/// Path MTU discovery through a ClusterIP of each family: a pod uploads to
/// a backend outside the cluster whose route from the node has a smaller
/// MTU than the pod's. The node answers the pod's full-size segments with
/// ICMP "fragmentation needed" (IPv4) or packets too big (IPv6) quoting the
/// backend; the datapath turns the quote back into the ClusterIP the pod's
/// socket dialled, so the pod learns the path MTU towards the ClusterIP and
/// the upload completes (without the translation the error finds no socket
/// and the upload stalls).
#[test]
fn a_cluster_ip_flow_learns_the_path_mtu_over_both_families() {
    const UPLOAD: usize = 1 << 20;
    let cluster = Cluster::start_dual_stack_underlay(
        ClusterOptions {
            nodes: 1,
            etcd_members: 0,
        },
        &["--enable-ipv6=true"],
    )
    .unwrap();
    let node0 = cluster.node(0);
    node0
        .netns()
        .sysctl("net.ipv6.conf.all.forwarding", "1")
        .unwrap();
    let client = cluster.pod(0, "uploader", &["k8s:app=client"]).unwrap();
    let outside = cluster.outside_host6("sink").unwrap();
    upload_sink(&outside, BACKEND_PORT);
    let node6 = node0.ip6().expect("node 0's IPv6 address");
    let families: [(u16, IpAddr, IpAddr, IpAddr, IpAddr); 2] = [
        (
            78,
            Ipv4Addr::new(10, 96, 0, 78).into(),
            outside.ip().into(),
            client.ip().into(),
            node0.ip().into(),
        ),
        (
            77,
            Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0x77).into(),
            outside.ip6().unwrap().into(),
            client.ip6().expect("a dual-stack pod").into(),
            node6.into(),
        ),
    ];
    for (id, vip, sink, client_ip, node_ip) in families {
        // The sink answers the pod's own address through the node.
        outside
            .namespace()
            .exec_ok(&[
                "ip",
                "route",
                "replace",
                &client_ip.to_string(),
                "via",
                &node_ip.to_string(),
            ])
            .unwrap();
        let mut spec = spec(&[]);
        spec.frontend_address.ip = vip.to_string();
        spec.backend_addresses = vec![BackendAddress {
            ip: sink.to_string(),
            port: BACKEND_PORT,
            weight: 1,
            state: String::new(),
        }];
        node0.client().service_put(id, &spec).unwrap();
        let to = std::net::SocketAddr::new(vip, VIP_PORT);
        node0
            .netns()
            .exec_ok(&["ip", "link", "set", "eth0", "mtu", "1500"])
            .unwrap();
        assert!(
            eventually(PROPAGATION, Duration::from_millis(100), || {
                upload(&client, to, 10).is_ok_and(|a| a == "10")
            }),
            "the pod never reached the sink through {to}\n{}",
            cluster.describe()
        );

        // Smaller than the pod's 1500 on the node's way out, not on the sink's.
        node0
            .netns()
            .exec_ok(&["ip", "link", "set", "eth0", "mtu", "1400"])
            .unwrap();
        let answer = upload(&client, to, UPLOAD);
        assert_eq!(
            answer.as_deref().ok(),
            Some(UPLOAD.to_string().as_str()),
            "upload through {to}: {answer:?}\n{}",
            cluster.describe()
        );
        let route = client
            .namespace()
            .exec_ok(&["ip", "route", "get", &vip.to_string()])
            .unwrap();
        assert!(
            route.contains("mtu 1400"),
            "the pod learnt no path MTU towards the ClusterIP {vip}: {route}"
        );
    }
}

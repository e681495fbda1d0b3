//! Kubernetes mode against the real control plane (etcd, kube-apiserver,
//! kube-controller-manager built from the upstream Go modules): two nodes,
//! each an agent following the API server, pods created the way a kubelet
//! creates them. Policies are applied with `kubectl`; real connections
//! between pods on both nodes show what the datapath enforces.
//!
//! Needs root, etcd, and the control plane's binaries (`make setup` builds
//! them once into /var/cache/cilium-rs/k8s).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use testbed::cluster::{Cluster, ClusterOptions, ClusterPod};
use testbed::{eventually, traffic, NetNs};

/// Kubernetes' and Cilium's promise: a change is enforced within this.
const FOLLOW: Duration = Duration::from_secs(2);
const PORT: u16 = 8080;

/// Two nodes keeping identities and endpoints in etcd (kvstore mode).
fn two_nodes() -> Result<Cluster> {
    Cluster::start_kubernetes(
        ClusterOptions {
            nodes: 2,
            etcd_members: 1,
        },
        &["--identity-allocation-mode", "kvstore"],
    )
}

fn connects(from: &ClusterPod, to: Ipv4Addr) -> bool {
    from.tcp_connect(to, PORT, Duration::from_millis(700))
}

/// Waits until `from` → `to` is `allowed`, at most [`FOLLOW`] after
/// `since`; fails naming the pair and what every node sees.
fn follows(
    cluster: &Cluster,
    since: Instant,
    from: &ClusterPod,
    to: &ClusterPod,
    allowed: bool,
) -> Result<Duration> {
    let settled = eventually(FOLLOW * 3, Duration::from_millis(50), || {
        connects(from, to.ip()) == allowed
    });
    let took = since.elapsed();
    ensure!(
        settled && took <= FOLLOW + Duration::from_millis(700),
        "{} -> {}: expected {}, {} after {took:?}\n{}",
        from.name(),
        to.name(),
        if allowed { "allowed" } else { "denied" },
        if settled { "settled only" } else { "still not" },
        cluster.describe()
    );
    Ok(took)
}

fn namespace(cluster: &Cluster, name: &str, labels: &str) -> Result<()> {
    cluster.control_plane().apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\n"
    ))?;
    Ok(())
}

/// Isolates web, then lets this namespace's clients reach its `port`
/// (a number, or a name from web's Pod spec).
fn web_from_clients(port: &str) -> String {
    format!(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: web-from-clients, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {{matchLabels: {{app: client}}}}
    ports:
    - port: {port}
"
    )
}

/// Clients may only talk to ports their destination names `http`.
const CLIENTS_TO_HTTP_PORTS: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: clients-to-http-ports, namespace: shop}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to:
    - podSelector: {}
    ports:
    - port: http
";

/// A port web serves that it does not name.
const OTHER_PORT: u16 = 8081;

const WEB_FROM_TEAM_B: &str = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-team-b, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: b}}
";

#[test]
fn network_policies_from_kubectl_follow_pods_and_namespaces() -> Result<()> {
    let cluster = two_nodes()?;
    namespace(&cluster, "shop", "team: a")?;
    namespace(&cluster, "other", "team: b")?;
    let web = cluster.k8s_pod(0, "shop", "web", &["app=web"], &["http=8080"])?;
    let client = cluster.k8s_pod(1, "shop", "client", &["app=client"], &[])?;
    let stranger = cluster.k8s_pod(1, "shop", "stranger", &["app=stranger"], &[])?;
    let outsider = cluster.k8s_pod(0, "other", "client", &["app=client"], &[])?;
    let _server = web.serve_tcp(PORT)?;

    // The identity comes from the API server, not from the plugin; so do
    // the named ports.
    let status = web.endpoint()?.status;
    ensure!(
        status
            .named_ports
            .iter()
            .any(|p| p.name == "http" && p.port == PORT),
        "web's named ports: {:?}",
        status.named_ports
    );
    let labels = status.identity.labels;
    for expected in [
        "k8s:app=web",
        "k8s:io.kubernetes.pod.namespace=shop",
        "k8s:io.cilium.k8s.namespace.labels.team=a",
        "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
        "k8s:io.cilium.k8s.policy.cluster=default",
    ] {
        ensure!(
            labels.iter().any(|l| l == expected),
            "{expected} missing in {labels:?}"
        );
    }
    for pod in [&client, &stranger, &outsider] {
        ensure!(
            connects(pod, web.ip()),
            "{} cannot reach web without policy",
            pod.name()
        );
    }

    // podSelector alone: this namespace's clients only, on the port named
    // `http` in the web pod's spec.
    let applied = Instant::now();
    cluster.control_plane().apply(&web_from_clients("http"))?;
    follows(&cluster, applied, &stranger, &web, false)?;
    ensure!(connects(&client, web.ip()), "shop/client denied");
    ensure!(
        !connects(&outsider, web.ip()),
        "other/client allowed by a podSelector-only peer"
    );

    // namespaceSelector: every pod of the matching namespaces.
    let applied = Instant::now();
    cluster.control_plane().apply(WEB_FROM_TEAM_B)?;
    follows(&cluster, applied, &outsider, &web, true)?;
    ensure!(!connects(&stranger, web.ip()), "shop/stranger allowed");

    // Relabelling the namespace moves its pods out of the peer.
    let relabelled = Instant::now();
    cluster
        .control_plane()
        .kubectl(&["label", "namespace", "other", "team=c", "--overwrite"])?;
    follows(&cluster, relabelled, &outsider, &web, false)?;

    // Relabelling a pod moves it into the peer.
    let relabelled = Instant::now();
    cluster.control_plane().kubectl(&[
        "label",
        "pod",
        "-n",
        "shop",
        "stranger",
        "app=client",
        "--overwrite",
    ])?;
    follows(&cluster, relabelled, &stranger, &web, true)?;

    // Deleting the policies lifts the isolation.
    let deleted = Instant::now();
    cluster.control_plane().delete(&web_from_clients("http"))?;
    cluster.control_plane().delete(WEB_FROM_TEAM_B)?;
    follows(&cluster, deleted, &outsider, &web, true)?;

    // An egress port name resolves against the destination pod's ports,
    // here a pod on the other node: `http` is 8080 on web.
    let _other_port = web.serve_tcp(OTHER_PORT)?;
    let applied = Instant::now();
    cluster.control_plane().apply(CLIENTS_TO_HTTP_PORTS)?;
    let to_other = || client.tcp_connect(web.ip(), OTHER_PORT, Duration::from_millis(700));
    let isolated = eventually(FOLLOW * 3, Duration::from_millis(50), || !to_other());
    ensure!(
        isolated,
        "client -> web:{OTHER_PORT} still allowed ({:?})",
        applied.elapsed()
    );
    ensure!(
        connects(&client, web.ip()),
        "client -> web's named port http denied\n{}",
        cluster.describe()
    );
    Ok(())
}

const CNP_WEB: &str = "
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]
";

const CCNP_DENY_STRANGERS: &str = "
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: no-strangers}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: client, k8s:io.kubernetes.pod.namespace: other}}]
";

const CNP_UNENFORCEABLE: &str = "
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: broken, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: \"8080\"}], rules: {http: [{method: \"(\"}]}}]
";

#[test]
fn cilium_policies_are_enforced_and_report_their_status() -> Result<()> {
    let cluster = two_nodes()?;
    namespace(&cluster, "shop", "team: a")?;
    namespace(&cluster, "other", "team: b")?;
    let web = cluster.k8s_pod(0, "shop", "web", &["app=web"], &[])?;
    let client = cluster.k8s_pod(1, "shop", "client", &["app=client"], &[])?;
    let stranger = cluster.k8s_pod(1, "shop", "stranger", &["app=stranger"], &[])?;
    let outsider = cluster.k8s_pod(0, "other", "client", &["app=client"], &[])?;
    let _server = web.serve_tcp(PORT)?;

    // A CNP's peers are scoped to its namespace.
    let applied = Instant::now();
    cluster.control_plane().apply(CNP_WEB)?;
    follows(&cluster, applied, &stranger, &web, false)?;
    ensure!(connects(&client, web.ip()), "shop/client denied");
    ensure!(
        !connects(&outsider, web.ip()),
        "other/client allowed by a namespaced CNP"
    );

    // Each node reports the object as enforced in its status.
    let status = || -> Result<serde_json::Value> {
        let text = cluster
            .control_plane()
            .kubectl(&["get", "cnp", "-n", "shop", "web", "-o", "json"])?;
        Ok(serde_json::from_str::<serde_json::Value>(&text)?["status"]["nodes"].clone())
    };
    let reported = eventually(Duration::from_secs(5), Duration::from_millis(100), || {
        status().is_ok_and(|nodes| {
            ["node0", "node1"]
                .iter()
                .all(|n| nodes[n]["enforcing"] == true && nodes[n]["ok"] == true)
        })
    });
    ensure!(reported, "CNP status: {:?}", status()?);

    // A clusterwide deny wins over the namespaced allow.
    cluster.control_plane().apply(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web-from-other, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: other}}]\n",
    )?;
    follows(&cluster, Instant::now(), &outsider, &web, true)?;
    let applied = Instant::now();
    cluster.control_plane().apply(CCNP_DENY_STRANGERS)?;
    follows(&cluster, applied, &outsider, &web, false)?;
    ensure!(
        connects(&client, web.ip()),
        "shop/client denied by the CCNP"
    );

    // An object the agent cannot enforce: its status and `cilium status`
    // name the field; everything else keeps working.
    cluster.control_plane().apply(CNP_UNENFORCEABLE)?;
    let broken_status = || -> Result<String> {
        let text = cluster.control_plane().kubectl(&[
            "get",
            "cnp",
            "-n",
            "shop",
            "broken",
            "-o",
            "jsonpath={.status.nodes.node0.error}",
        ])?;
        Ok(text)
    };
    let reported = eventually(Duration::from_secs(5), Duration::from_millis(100), || {
        broken_status().is_ok_and(|e| e.contains("method"))
    });
    ensure!(reported, "broken CNP status: {:?}", broken_status());
    let cli = cluster.node(0).cli_ok(&["status"])?;
    ensure!(
        cli.contains("CiliumNetworkPolicy shop/broken") && cli.contains("method"),
        "cilium status does not show the broken CNP:\n{cli}"
    );
    ensure!(
        connects(&client, web.ip()),
        "shop/client denied after a broken CNP"
    );

    // A big object (4,000 rules, about 600 KB, near etcd's object limit)
    // is enforced like a small one, on both nodes.
    let mut big = String::from(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: big, namespace: shop}\nspecs:\n",
    );
    for i in 0..4000u32 {
        big.push_str(&format!(
            "- endpointSelector: {{matchLabels: {{app: web}}}}\n  egress:\n  - toCIDR: [\"172.{}.{}.0/24\"]\n    toPorts: [{{ports: [{{port: \"{}\", protocol: TCP}}]}}]\n",
            16 + i / 256,
            i % 256,
            1000 + i
        ));
    }
    cluster.control_plane().create(&big)?;
    let big_enforced = eventually(Duration::from_secs(20), Duration::from_millis(250), || {
        cluster
            .control_plane()
            .kubectl(&[
                "get",
                "cnp",
                "-n",
                "shop",
                "big",
                "-o",
                "jsonpath={.status.nodes.node0.enforcing} {.status.nodes.node1.enforcing}",
            ])
            .is_ok_and(|s| s == "true true")
    });
    ensure!(
        big_enforced,
        "the 4,000-rule CNP was not enforced on both nodes"
    );
    ensure!(
        connects(&client, web.ip()),
        "shop/client denied with the big CNP"
    );
    cluster
        .control_plane()
        .kubectl(&["delete", "cnp", "-n", "shop", "big"])?;

    let deleted = Instant::now();
    cluster.control_plane().delete(CCNP_DENY_STRANGERS)?;
    follows(&cluster, deleted, &outsider, &web, true)?;
    Ok(())
}

/// A server on [`PORT`] in `pod` that greets each connection with a line,
/// then echoes; for as long as the test runs.
fn echo_server(pod: &ClusterPod) -> Result<()> {
    let listener = pod
        .namespace()
        .run(|| TcpListener::bind((Ipv4Addr::UNSPECIFIED, PORT)))??;
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                // The line `tcp_connect` waits for, then an echo.
                if conn.write_all(b"web\n").is_err() {
                    return;
                }
                let mut buf = [0u8; 256];
                while let Ok(n @ 1..) = conn.read(&mut buf) {
                    if conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(())
}

fn echo(session: &mut TcpStream, text: &str) -> Result<()> {
    session.write_all(text.as_bytes())?;
    let mut back = vec![0u8; text.len()];
    session.read_exact(&mut back)?;
    ensure!(
        back == text.as_bytes(),
        "echo: {:?}",
        String::from_utf8_lossy(&back)
    );
    Ok(())
}

#[test]
fn enforcement_survives_the_api_server_going_away() -> Result<()> {
    let cluster = two_nodes()?;
    namespace(&cluster, "shop", "team: a")?;
    let web = cluster.k8s_pod(0, "shop", "web", &["app=web"], &[])?;
    let client = cluster.k8s_pod(1, "shop", "client", &["app=client"], &[])?;
    let stranger = cluster.k8s_pod(1, "shop", "stranger", &["app=stranger"], &[])?;
    echo_server(&web)?;
    cluster.control_plane().apply(&web_from_clients("8080"))?;
    follows(&cluster, Instant::now(), &stranger, &web, false)?;

    // A connection established before the outage carries on through it.
    let to = std::net::SocketAddr::from((web.ip(), PORT));
    let mut session = client
        .namespace()
        .run(move || TcpStream::connect_timeout(&to, Duration::from_secs(2)))??;
    session.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut greeting = [0u8; 4];
    session.read_exact(&mut greeting)?;
    echo(&mut session, "before\n")?;

    cluster
        .control_plane()
        .restart_apiserver(Duration::from_secs(10))?;
    echo(&mut session, "during and after\n").context("the established session was cut")?;
    ensure!(
        connects(&client, web.ip()),
        "client denied after the outage\n{}\n{}\n{}",
        cluster.describe(),
        cluster.node(0).agent().log_tail(),
        cluster.node(1).agent().log_tail()
    );
    ensure!(
        !connects(&stranger, web.ip()),
        "stranger allowed after the outage"
    );

    // Changes made after the server's return apply.
    let applied = Instant::now();
    cluster.control_plane().delete(&web_from_clients("8080"))?;
    let lifted = eventually(Duration::from_secs(10), Duration::from_millis(100), || {
        connects(&stranger, web.ip())
    });
    ensure!(
        lifted,
        "the deletion after the outage was not applied ({:?})\n{}",
        applied.elapsed(),
        cluster.describe()
    );
    echo(&mut session, "still\n")?;
    Ok(())
}

const NODE_PORT: u16 = 30080;

const WEB_SERVICE: &str = "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30080, protocol: TCP}
";

/// Which backends answer `frontend:port` from `from` over `tries` new
/// connections.
fn answering(from: &NetNs, frontend: Ipv4Addr, port: u16, tries: usize) -> BTreeSet<String> {
    (0..tries)
        .filter_map(|_| traffic::tcp_request(from, frontend, port, Duration::from_millis(700)))
        .map(|answer| answer.trim().to_string())
        .collect()
}

fn names(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// A NodePort Service, seen from a pod (its cluster IP and a node's
/// address) and from a host outside the cluster (both nodes' addresses:
/// one backend is local to the node dialled, the other is not).
#[test]
fn cluster_ip_and_node_port_services_balance_over_ready_pods_on_both_nodes() -> Result<()> {
    let cluster = two_nodes()?;
    namespace(&cluster, "shop", "team: a")?;
    let web0 = cluster.k8s_pod(0, "shop", "web-0", &["app=web"], &[])?;
    let web1 = cluster.k8s_pod(1, "shop", "web-1", &["app=web"], &[])?;
    let client = cluster.k8s_pod(1, "shop", "client", &["app=client"], &[])?;
    let outside = cluster.outside_host("client")?;
    let _servers = (web0.serve_tcp(PORT)?, web1.serve_tcp(PORT)?);
    cluster.control_plane().apply(WEB_SERVICE)?;
    let ip: Ipv4Addr = cluster
        .control_plane()
        .kubectl(&[
            "get",
            "svc",
            "-n",
            "shop",
            "web",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])?
        .trim()
        .parse()?;
    let frontends = [
        ("the pod", client.namespace(), ip, 80),
        (
            "the pod",
            client.namespace(),
            cluster.node(0).ip(),
            NODE_PORT,
        ),
        (
            "outside",
            outside.namespace(),
            cluster.node(0).ip(),
            NODE_PORT,
        ),
        (
            "outside",
            outside.namespace(),
            cluster.node(1).ip(),
            NODE_PORT,
        ),
    ];

    let both = names(&["web-0", "web-1"]);
    for (who, from, frontend, port) in frontends {
        let mut seen = Default::default();
        let balanced = eventually(Duration::from_secs(10), Duration::from_millis(100), || {
            seen = answering(from, frontend, port, 20);
            seen == both
        });
        ensure!(
            balanced,
            "{frontend}:{port} from {who} answered by {seen:?}\n{}",
            cluster.describe()
        );
    }

    // The agents' services carry the Service's name and namespace.
    let services = cluster.node(0).client().service_list()?;
    ensure!(
        services
            .iter()
            .any(|s| s.spec.frontend_address.ip == ip.to_string()
                && (s.spec.flags.name.as_str(), s.spec.flags.namespace.as_str())
                    == ("web", "shop")),
        "no service web in shop for {ip}: {services:#?}"
    );

    // Node 0 sent outside clients to web-1 on node 1 from its own address.
    let nat = cluster.node(0).cli_ok(&["bpf", "nat", "list"])?;
    let from_node0 = format!("XLATE_SRC {}:", cluster.node(0).ip());
    ensure!(
        nat.lines()
            .any(|l| l.contains(&format!("-> {}:{PORT}", web1.ip())) && l.contains(&from_node0)),
        "cilium bpf nat list on node0:\n{nat}"
    );

    // A pod turning not-ready leaves the rotation of every frontend.
    let changed = Instant::now();
    cluster
        .control_plane()
        .set_pod_ready("shop", "web-1", web1.ip(), false)?;
    for (who, from, frontend, port) in frontends {
        let mut seen = Default::default();
        let left = eventually(Duration::from_secs(5), Duration::from_millis(50), || {
            seen = answering(from, frontend, port, 10);
            seen == names(&["web-0"])
        });
        ensure!(
            left,
            "{frontend}:{port} from {who} after web-1 turned not ready: {seen:?}"
        );
    }
    ensure!(
        changed.elapsed() < Duration::from_secs(2) + Duration::from_millis(700),
        "the LB followed only after {:?}",
        changed.elapsed()
    );

    // Deleting the Service removes its frontends.
    cluster.control_plane().delete(WEB_SERVICE)?;
    for (who, from, frontend, port) in frontends {
        let gone = eventually(Duration::from_secs(5), Duration::from_millis(100), || {
            answering(from, frontend, port, 1).is_empty()
        });
        ensure!(
            gone,
            "{frontend}:{port} still answers {who} after the Service was deleted"
        );
    }
    Ok(())
}

/// `status reason` of the Node's NetworkUnavailable condition.
fn plane_condition(cluster: &Cluster, node: &str) -> String {
    cluster
        .control_plane()
        .kubectl(&[
            "get",
            "node",
            node,
            "-o",
            r#"jsonpath={.status.conditions[?(@.type=="NetworkUnavailable")].status} {.status.conditions[?(@.type=="NetworkUnavailable")].reason}"#,
        ])
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn crd_mode_needs_no_etcd_and_nodes_agree_on_identities() -> Result<()> {
    // No etcd: each agent has only its embedded store; identities,
    // endpoints and nodes go through the API server (CRD mode, the default).
    let cluster = Cluster::start_kubernetes(
        ClusterOptions {
            nodes: 2,
            etcd_members: 0,
        },
        &[
            "--identity-gc-interval",
            "2s",
            "--enable-endpoint-health-checking=true",
        ],
    )?;
    let discovered = eventually(Duration::from_secs(15), Duration::from_millis(200), || {
        cluster
            .nodes()
            .iter()
            .all(|n| n.known_nodes().is_ok_and(|known| known.len() == 2))
    });
    ensure!(
        discovered,
        "nodes did not find each other through CiliumNodes\n{}",
        cluster.describe()
    );
    // Each CiliumNode carries its health endpoint's address for the other
    // nodes' health checkers.
    let health_published = eventually(Duration::from_secs(15), Duration::from_millis(200), || {
        ["node0", "node1"].iter().all(|node| {
            cluster
                .control_plane()
                .kubectl(&[
                    "get",
                    "ciliumnode",
                    node,
                    "-o",
                    "jsonpath={.spec.health.ipv4}",
                ])
                .is_ok_and(|ip| ip.trim().parse::<Ipv4Addr>().is_ok())
        })
    });
    ensure!(health_published, "CiliumNodes without health addresses");
    // Each agent tells its Node the network is there.
    for node in ["node0", "node1"] {
        let set = eventually(Duration::from_secs(5), Duration::from_millis(100), || {
            plane_condition(&cluster, node) == "False CiliumIsUp"
        });
        ensure!(
            set,
            "{node}: NetworkUnavailable {:?}",
            plane_condition(&cluster, node)
        );
    }
    namespace(&cluster, "shop", "team: a")?;
    let web = cluster.k8s_pod(0, "shop", "web", &["app=web"], &[])?;
    let client = cluster.k8s_pod(1, "shop", "client", &["app=client"], &[])?;
    let stranger = cluster.k8s_pod(1, "shop", "stranger", &["app=stranger"], &[])?;
    let _server = web.serve_tcp(PORT)?;

    // Every pod's identity is a CiliumIdentity, its address a CiliumEndpoint.
    let plane = cluster.control_plane();
    for pod in [&web, &client, &stranger] {
        let id = pod.identity()?;
        let labels = plane.kubectl(&[
            "get",
            "ciliumidentity",
            &id.to_string(),
            "-o",
            "jsonpath={.security-labels}",
        ])?;
        ensure!(
            labels.contains(&format!("\"k8s:app\":\"{}\"", pod.name())),
            "identity {id}: {labels}"
        );
        let cep = plane.kubectl(&[
            "get",
            "cep",
            "-n",
            "shop",
            pod.name(),
            "-o",
            "jsonpath={.status.identity.id} {.status.networking.addressing[0].ipv4}",
        ])?;
        ensure!(
            cep == format!("{id} {}", pod.ip()),
            "CiliumEndpoint shop/{}: {cep:?}",
            pod.name()
        );
    }
    // The same pod has the same identity on both nodes: node 0 maps the
    // client's address to the number node 1 gave it.
    let ipcache = cluster.node(0).cli_ok(&["bpf", "ipcache", "list"])?;
    let want = format!("{}/32", client.ip());
    let line = ipcache
        .lines()
        .find(|l| l.starts_with(&want))
        .unwrap_or_default();
    ensure!(
        line.contains(&format!("identity={} ", client.identity()?)),
        "node0's ipcache for {want}: {line:?}"
    );

    // Policy across nodes works from those identities alone.
    let applied = Instant::now();
    plane.apply(&web_from_clients("8080"))?;
    follows(&cluster, applied, &stranger, &web, false)?;
    ensure!(connects(&client, web.ip()), "shop/client denied");

    // A pod gone: its CiliumEndpoint goes, then its unused identity; the
    // identities in use stay.
    let gone = stranger.identity()?;
    drop(stranger);
    let identity_exists = |id: u32| {
        plane
            .kubectl(&[
                "get",
                "ciliumidentity",
                &id.to_string(),
                "--ignore-not-found",
                "-o",
                "name",
            ])
            .is_ok_and(|out| !out.trim().is_empty())
    };
    let collected = eventually(Duration::from_secs(20), Duration::from_millis(250), || {
        !identity_exists(gone)
    });
    ensure!(
        collected,
        "CiliumIdentity {gone} of a deleted pod was not collected"
    );
    for pod in [&web, &client] {
        ensure!(
            identity_exists(pod.identity()?),
            "{}'s identity was collected",
            pod.name()
        );
    }
    ensure!(
        connects(&client, web.ip()),
        "shop/client denied after the collection"
    );
    Ok(())
}

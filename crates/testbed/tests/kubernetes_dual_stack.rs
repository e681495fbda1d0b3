//! Kubernetes mode carries IPv6 (issue 18), against the real control plane
//! of tests/kubernetes.rs, in CRD mode (no etcd): dual-stack pods attached
//! by the CNI plugin get both addresses; their CiliumEndpoints list both,
//! each CiliumNode its IPv6 pod CIDR and router address; the other node
//! learns a pod's IPv6 address and identity from its CiliumEndpoint alone.
//! The CiliumNode carries the health endpoint's IPv6 address too.
//! A NetworkPolicy's podSelector and IPv6 `ipBlock` with `except`, and a
//! CiliumNetworkPolicy's IPv6 `toCIDRSet`/`fromCIDR`, allow and deny real
//! IPv6 connections: between pods on two nodes (over VXLAN) and with two
//! IPv6 hosts outside the cluster, one inside the block and one in its
//! exception.
//!
//! A `RequireDualStack` Service and an IPv6 one, with ClusterIPs from the
//! control plane's dual-stack service range, are balanced over real pods
//! by the socket LB over each family.
//!
//! Needs root and the control plane's binaries (`make setup`).

#[path = "services/node.rs"]
#[allow(dead_code)]
mod node;
#[path = "services/servers.rs"]
#[allow(dead_code)]
mod servers;

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use node::TestCgroup;
use testbed::cluster::{Cluster, ClusterOptions, ClusterPod};
use testbed::kubernetes::{CLUSTER_CIDRS, SERVICE_CIDRS};
use testbed::{cmd, eventually, traffic, unique, HttpServer, NetNs, TcpServer};

const PORT: u16 = 8080;
const CONNECT: Duration = Duration::from_millis(700);
/// How long a policy change may take to show in every verdict.
const SETTLE: Duration = Duration::from_secs(10);

/// An IPv6 host outside the cluster, behind a veth from a node's
/// namespace: the node routes (forwards) between it and its pods.
struct Outside6 {
    netns: NetNs,
    address: Ipv6Addr,
    _server: TcpServer,
}

impl Outside6 {
    /// `net` is the host's /64 (`2001:db8:..:..`): the node side is `::1`,
    /// the host `::10`.
    fn attach(node: &NetNs, ifname: &str, net: &str) -> Result<Outside6> {
        let (pid, n) = unique::next_pair();
        let netns = NetNs::create(&unique::netns_name(pid, n, ifname))?;
        let (gateway, address) = (format!("{net}::1"), format!("{net}::10"));
        let (node_ns, ns) = (node.name(), netns.name());
        cmd::ip(&[
            "-n", node_ns, "link", "add", ifname, "type", "veth", "peer", "name", "eth0", "netns",
            ns,
        ])?;
        // The node's namespace has IPv6 off by default (the underlay is
        // IPv4): on for this link, and forwarding for the pods' traffic.
        node.sysctl(&format!("net.ipv6.conf.{ifname}.disable_ipv6"), "0")?;
        node.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        let gateway_cidr = format!("{gateway}/64");
        let address_cidr = format!("{address}/64");
        let steps: [&[&str]; 6] = [
            &[
                "-n",
                node_ns,
                "addr",
                "add",
                &gateway_cidr,
                "dev",
                ifname,
                "nodad",
            ],
            &["-n", node_ns, "link", "set", ifname, "up"],
            &["-n", ns, "link", "set", "lo", "up"],
            &[
                "-n",
                ns,
                "addr",
                "add",
                &address_cidr,
                "dev",
                "eth0",
                "nodad",
            ],
            &["-n", ns, "link", "set", "eth0", "up"],
            &["-n", ns, "-6", "route", "add", "default", "via", &gateway],
        ];
        for args in steps {
            cmd::ip(args)?;
        }
        let server = TcpServer::start(&netns, PORT, format!("{ifname}\n"))?;
        Ok(Outside6 {
            netns,
            address: address.parse()?,
            _server: server,
        })
    }

    fn connects(&self, to: IpAddr) -> bool {
        traffic::tcp_request(&self.netns, to, PORT, CONNECT).is_some()
    }
}

/// One expected verdict: a name for the report, whether it must connect,
/// and the attempt.
type Probe<'a> = (String, bool, Box<dyn Fn() -> bool + Sync + 'a>);

fn pod_to(from: &ClusterPod, to: IpAddr) -> Box<dyn Fn() -> bool + Sync + '_> {
    Box::new(move || from.tcp_connect_ip(to, PORT, CONNECT))
}

/// Waits until every probe gives its verdict (all tried in parallel, so a
/// round costs one timeout); the ones that never did, with their names.
fn unsettled(probes: &[Probe<'_>]) -> Vec<String> {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let wrong: Vec<String> = std::thread::scope(|scope| {
            let attempts: Vec<_> = probes
                .iter()
                .map(|(name, passes, attempt)| scope.spawn(move || (name, *passes, attempt())))
                .collect();
            attempts
                .into_iter()
                .map(|a| a.join().expect("probe thread"))
                .filter(|(_, passes, got)| passes != got)
                .map(|(name, passes, _)| {
                    format!(
                        "{name}: expected {}",
                        if passes { "allowed" } else { "denied" }
                    )
                })
                .collect()
        });
        if wrong.is_empty() || std::time::Instant::now() > deadline {
            return wrong;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ipv6_of(pod: &ClusterPod) -> Result<Ipv6Addr> {
    pod.ip6()
        .with_context(|| format!("{}: the CNI result has no IPv6 address", pod.name()))
}

/// Whether `ip` is inside `cidr` (`addr/len` of the same family).
fn contains(cidr: &str, ip: impl Into<IpAddr>) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    let bits = |ip: IpAddr| match ip {
        IpAddr::V4(ip) => (u128::from(u32::from(ip)), 32),
        IpAddr::V6(ip) => (u128::from(ip), 128),
    };
    let ((net, width), (ip, ip_width)) = (bits(net), bits(ip.into()));
    let mask = u128::MAX.checked_shl(128 - len.min(width)).unwrap_or(0) >> (128 - width);
    width == ip_width && net & mask == ip & mask
}

#[test]
fn dual_stack_pods_and_ipv6_policies_in_kubernetes_mode() -> Result<()> {
    let cluster = Cluster::start_kubernetes(
        ClusterOptions {
            nodes: 2,
            etcd_members: 0,
        },
        &["--enable-endpoint-health-checking=true"],
    )?;
    let plane = cluster.control_plane();
    let discovered = eventually(Duration::from_secs(15), Duration::from_millis(200), || {
        cluster
            .nodes()
            .iter()
            .all(|n| n.known_nodes().is_ok_and(|known| known.len() == 2))
    });
    ensure!(discovered, "nodes did not meet\n{}", cluster.describe());
    plane.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")?;
    let web = cluster.k8s_pod(0, "shop", "web", &["app=web"], &[])?;
    let client = cluster.k8s_pod(1, "shop", "client", &["app=client"], &[])?;
    let stranger = cluster.k8s_pod(1, "shop", "stranger", &["app=stranger"], &[])?;
    let _server = web.serve_tcp(PORT)?;

    // Both addresses from the CNI plugin, both in the CiliumEndpoint.
    for pod in [&web, &client, &stranger] {
        let ip6 = ipv6_of(pod)?;
        let cep = plane.kubectl(&[
            "get",
            "cep",
            "-n",
            "shop",
            pod.name(),
            "-o",
            "jsonpath={.status.networking.addressing[0].ipv4} {.status.networking.addressing[0].ipv6}",
        ])?;
        ensure!(
            cep == format!("{} {ip6}", pod.ip()),
            "CiliumEndpoint shop/{}: {cep:?}",
            pod.name()
        );
    }

    // The Pod lists both, as a dual-stack kubelet reports them (IPv4 first).
    let pod_ips = plane.kubectl(&[
        "get",
        "pod",
        "-n",
        "shop",
        "web",
        "-o",
        "jsonpath={.status.podIPs[*].ip}",
    ])?;
    ensure!(
        pod_ips == format!("{} {}", web.ip(), ipv6_of(&web)?),
        "Pod shop/web podIPs: {pod_ips:?}"
    );

    // node0's CiliumNode: both pod CIDRs (web's IPv6 address in the IPv6
    // one) and the IPv6 router address; node1 reads that CIDR from it.
    let web6 = ipv6_of(&web)?;
    let cidrs: Vec<String> = serde_json::from_str(&plane.kubectl(&[
        "get",
        "ciliumnode",
        "node0",
        "-o",
        "jsonpath={.spec.ipam.podCIDRs}",
    ])?)?;
    ensure!(
        cidrs.len() == 2 && cidrs[0] == cluster.node(0).pod_cidr() && contains(&cidrs[1], web6),
        "node0's podCIDRs {cidrs:?}: want {} and the range of {web6}",
        cluster.node(0).pod_cidr()
    );
    let internal = plane.kubectl(&[
        "get",
        "ciliumnode",
        "node0",
        "-o",
        r#"jsonpath={.spec.addresses[?(@.type=="CiliumInternalIP")].ip}"#,
    ])?;
    ensure!(
        internal.split_whitespace().any(|ip| ip
            .parse::<Ipv6Addr>()
            .is_ok_and(|ip| contains(&cidrs[1], ip))),
        "node0's CiliumInternalIPs {internal:?}: no IPv6 router address"
    );
    // The health endpoint is dual stack too.
    let health_published = eventually(Duration::from_secs(15), Duration::from_millis(200), || {
        plane
            .kubectl(&[
                "get",
                "ciliumnode",
                "node0",
                "-o",
                "jsonpath={.spec.health.ipv6}",
            ])
            .is_ok_and(|ip| {
                ip.trim()
                    .parse::<Ipv6Addr>()
                    .is_ok_and(|ip| contains(&cidrs[1], ip))
            })
    });
    ensure!(
        health_published,
        "node0's CiliumNode has no IPv6 health address in {}",
        cidrs[1]
    );
    let seen_by_node1 = cluster
        .node(1)
        .client()
        .cluster_nodes()?
        .nodes_added
        .into_iter()
        .find(|n| n.name == "node0")
        .and_then(|n| n.primary_address.ipv6)
        .map(|v6| v6.alloc_range);
    ensure!(
        seen_by_node1.as_ref() == Some(&cidrs[1]),
        "node1 sees node0's IPv6 range as {seen_by_node1:?}"
    );

    // node0 maps the client's IPv6 address to the identity node1 gave it,
    // learned from the CiliumEndpoint alone.
    let client6 = ipv6_of(&client)?;
    let want = format!("{client6}/128 ");
    let identity = format!("identity={} ", client.identity()?);
    let mapped = eventually(Duration::from_secs(10), Duration::from_millis(100), || {
        cluster
            .node(0)
            .cli_ok(&["bpf", "ipcache", "list"])
            .is_ok_and(|list| {
                list.lines()
                    .any(|l| l.starts_with(&want) && l.contains(&identity))
            })
    });
    ensure!(
        mapped,
        "node0's ipcache lacks {want}with {identity}\n{}",
        cluster.describe()
    );

    // Two IPv6 hosts outside, behind node0: one in the block, one in its
    // exception.
    let net = format!("2001:db8:{:x}", std::process::id() & 0xffff);
    let (block, except) = (format!("{net}::/48"), format!("{net}:1::/64"));
    let inside = Outside6::attach(cluster.node(0).netns(), "out6in", &format!("{net}:0"))?;
    let excepted = Outside6::attach(cluster.node(0).netns(), "out6ex", &format!("{net}:1"))?;
    let (web4, in6, ex6) = (IpAddr::from(web.ip()), inside.address, excepted.address);
    let web6 = IpAddr::from(web6);

    // Which of client, stranger, the block's host and the exception's host
    // may talk to web (the hosts both ways).
    let matrix = |client_ok: bool, stranger_ok: bool, in_ok: bool, ex_ok: bool| -> Vec<Probe<'_>> {
        vec![
            (
                "client -> web over IPv4".into(),
                client_ok,
                pod_to(&client, web4),
            ),
            (
                "client -> web over IPv6".into(),
                client_ok,
                pod_to(&client, web6),
            ),
            (
                "stranger -> web over IPv4".into(),
                stranger_ok,
                pod_to(&stranger, web4),
            ),
            (
                "stranger -> web over IPv6".into(),
                stranger_ok,
                pod_to(&stranger, web6),
            ),
            (
                format!("{in6} -> web"),
                in_ok,
                Box::new(|| inside.connects(web6)),
            ),
            (
                format!("{ex6} -> web"),
                ex_ok,
                Box::new(|| excepted.connects(web6)),
            ),
            (format!("web -> {in6}"), in_ok, pod_to(&web, in6.into())),
            (format!("web -> {ex6}"), ex_ok, pod_to(&web, ex6.into())),
        ]
    };
    // Without policy everything connects (stranger too).
    let failures = unsettled(&matrix(true, true, true, true));
    ensure!(
        failures.is_empty(),
        "without policy: {failures:?}\n{}",
        cluster.describe()
    );

    // The podSelector admits the client over both families; the ipBlock
    // the block's host both ways, never its exception's.
    let network_policy = format!(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: web, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - podSelector: {{matchLabels: {{app: client}}}}
    - ipBlock: {{cidr: \"{block}\", except: [\"{except}\"]}}
  egress:
  - to:
    - ipBlock: {{cidr: \"{block}\", except: [\"{except}\"]}}
"
    );
    plane.apply(&network_policy)?;
    let failures = unsettled(&matrix(true, false, true, false));
    ensure!(
        failures.is_empty(),
        "NetworkPolicy with ipBlock {block} except {except}: {failures:?}\n{}",
        cluster.describe()
    );

    // The same through the CRD: IPv6 toCIDRSet with except and fromCIDR,
    // turned the other way round; no pod is admitted.
    plane.delete(&network_policy)?;
    plane.apply(&format!(
        "
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: web-cidr, namespace: shop}}
spec:
  endpointSelector: {{matchLabels: {{app: web}}}}
  ingress:
  - fromCIDR: [\"{ex6}/128\"]
  egress:
  - toCIDRSet: [{{cidr: \"{block}\", except: [\"{net}:0::/64\"]}}]
"
    ))?;
    let failures = unsettled(&matrix(false, false, false, true));
    ensure!(
        failures.is_empty(),
        "CiliumNetworkPolicy with IPv6 CIDRs: {failures:?}\n{}",
        cluster.describe()
    );
    Ok(())
}

/// `--ipam kubernetes`: each node's pod ranges, both families, are the
/// ones kube-controller-manager wrote into its Node (`spec.podCIDRs`); the
/// CiliumNode repeats them, and pods on the two nodes reach each other
/// over both families.
#[test]
fn host_scope_ipam_takes_both_pod_cidrs_from_the_node() -> Result<()> {
    let cluster = Cluster::start_kubernetes(
        ClusterOptions {
            nodes: 2,
            etcd_members: 0,
        },
        &["--ipam", "kubernetes"],
    )?;
    let plane = cluster.control_plane();
    let (cluster4, cluster6) = CLUSTER_CIDRS.split_once(',').context("two CIDRs")?;
    let pod_cidrs = |kind: &str, node: &str| -> Result<Vec<String>> {
        let path = match kind {
            "ciliumnode" => "jsonpath={.spec.ipam.podCIDRs}",
            _ => "jsonpath={.spec.podCIDRs}",
        };
        let out = plane.kubectl(&["get", kind, node, "-o", path])?;
        serde_json::from_str(&out).with_context(|| format!("{kind} {node}: {out:?}"))
    };
    plane.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")?;
    let web = cluster.k8s_pod(0, "shop", "web", &["app=web"], &[])?;
    let client = cluster.k8s_pod(1, "shop", "client", &["app=client"], &[])?;
    let _server = web.serve_tcp(PORT)?;
    for (index, pod) in [(0, &web), (1, &client)] {
        let node = format!("node{index}");
        let cidrs = pod_cidrs("node", &node)?;
        let network = |cidr: &str| cidr.split('/').next().unwrap_or_default().parse::<IpAddr>();
        ensure!(
            cidrs.len() == 2
                && network(&cidrs[0]).is_ok_and(|net| contains(cluster4, net))
                && network(&cidrs[1]).is_ok_and(|net| contains(cluster6, net))
                && contains(&cidrs[0], pod.ip())
                && contains(&cidrs[1], ipv6_of(pod)?),
            "Node {node}'s podCIDRs {cidrs:?} (from {CLUSTER_CIDRS}) should hold {} and {:?}",
            pod.ip(),
            pod.ip6()
        );
        let published = eventually(Duration::from_secs(10), Duration::from_millis(100), || {
            pod_cidrs("ciliumnode", &node).is_ok_and(|c| c == cidrs)
        });
        ensure!(
            published,
            "CiliumNode {node}: {:?}, Node: {cidrs:?}",
            pod_cidrs("ciliumnode", &node)
        );
    }
    let probes: Vec<Probe<'_>> = vec![
        (
            "client -> web over IPv4".into(),
            true,
            pod_to(&client, web.ip().into()),
        ),
        (
            "client -> web over IPv6".into(),
            true,
            pod_to(&client, ipv6_of(&web)?.into()),
        ),
    ];
    let failures = unsettled(&probes);
    ensure!(failures.is_empty(), "{failures:?}\n{}", cluster.describe());
    Ok(())
}

const WEB_SERVICES: &str = "
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ipFamilyPolicy: RequireDualStack
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web6, namespace: shop}
spec:
  ipFamilies: [IPv6]
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
";

/// `curl http://FRONTEND/` `tries` times from `client`'s namespace inside
/// `cgroup` (where the node's socket LB is attached): the backends that
/// answered. Fails unless every answer came and curl's peer was the
/// frontend (the socket LB shows the ClusterIP, never the backend).
fn curl_spread(
    cgroup: &TestCgroup,
    client: &ClusterPod,
    frontend: IpAddr,
    tries: usize,
) -> Result<std::collections::BTreeSet<String>> {
    let url = format!("http://{}/", std::net::SocketAddr::new(frontend, 80));
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..tries {
        let mut curl = std::process::Command::new("nsenter");
        curl.arg(format!("--net={}", client.namespace().path().display()))
            .args([
                "--",
                "curl",
                "-s",
                "--max-time",
                "3",
                "-w",
                "\n%{remote_ip}",
            ])
            .arg(&url);
        cgroup.join_on_exec(&mut curl)?;
        let out = curl.output().context("running curl")?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "curl {i} {url}: {}: {text}",
            out.status
        );
        let (body, peer) = text.rsplit_once('\n').context("curl output")?;
        ensure!(
            peer.parse::<IpAddr>().ok() == Some(frontend),
            "curl {i} {url}: the peer is {peer}, not the ClusterIP"
        );
        seen.insert(
            body.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
        );
    }
    Ok(seen)
}

/// A `RequireDualStack` Service gets a ClusterIP of each family from the
/// API server's dual-stack service range, the EndpointSlice controller
/// writes an IPv4 and an IPv6 slice of its dual-stack pods, and the agent
/// balances each ClusterIP over that family's backends: curl from a pod
/// (socket LB on) reaches both backends over each. An `ipFamilies: [IPv6]`
/// Service gets an IPv6 ClusterIP only, balanced the same way. `cilium
/// service list` shows all three frontends.
#[test]
fn dual_stack_and_ipv6_services_balance_over_pods_with_the_socket_lb() -> Result<()> {
    // Declared first, dropped last: after the agent and the pods.
    let cgroup = TestCgroup::create()?;
    let cgroup_root = cgroup.path().display().to_string();
    let cluster = Cluster::start_kubernetes(
        ClusterOptions {
            nodes: 1,
            etcd_members: 0,
        },
        &["--enable-socket-lb", "true", "--cgroup-root", &cgroup_root],
    )?;
    let plane = cluster.control_plane();
    plane.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")?;
    let webs = [
        cluster.k8s_pod(0, "shop", "web-0", &["app=web"], &[])?,
        cluster.k8s_pod(0, "shop", "web-1", &["app=web"], &[])?,
    ];
    let client = cluster.k8s_pod(0, "shop", "client", &["app=client"], &[])?;
    let _servers = webs
        .iter()
        .map(|w| HttpServer::start(w.namespace(), PORT, w.name()))
        .collect::<Result<Vec<_>>>()?;
    plane.apply(WEB_SERVICES)?;

    let cluster_ips = |name: &str| -> Result<Vec<IpAddr>> {
        plane
            .kubectl(&[
                "get",
                "svc",
                "-n",
                "shop",
                name,
                "-o",
                "jsonpath={.spec.clusterIPs[*]}",
            ])?
            .split_whitespace()
            .map(|ip| Ok(ip.parse()?))
            .collect()
    };
    let (web, web6) = (cluster_ips("web")?, cluster_ips("web6")?);
    let (service4, service6) = SERVICE_CIDRS.split_once(',').context("two CIDRs")?;
    ensure!(
        web.len() == 2 && contains(service4, web[0]) && contains(service6, web[1]),
        "web's clusterIPs {web:?}: want one from {service4} and one from {service6}"
    );
    ensure!(
        web6.len() == 1 && contains(service6, web6[0]),
        "web6's clusterIPs {web6:?}: want one from {service6}"
    );
    // kube-controller-manager's EndpointSlice controller writes a slice
    // per family of the dual-stack Service.
    let slices = eventually(Duration::from_secs(10), Duration::from_millis(100), || {
        plane
            .kubectl(&[
                "get",
                "endpointslices",
                "-n",
                "shop",
                "-l",
                "kubernetes.io/service-name=web",
                "-o",
                "jsonpath={.items[*].addressType}",
            ])
            .is_ok_and(|types| {
                let mut types: Vec<&str> = types.split_whitespace().collect();
                types.sort();
                types == ["IPv4", "IPv6"]
            })
    });
    ensure!(slices, "no IPv4 and IPv6 EndpointSlices for shop/web");

    let both: std::collections::BTreeSet<String> =
        webs.iter().map(|w| w.name().to_string()).collect();
    for frontend in web.iter().chain(&web6) {
        let mut seen = Default::default();
        let balanced = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
            seen = curl_spread(&cgroup, &client, *frontend, 12).unwrap_or_default();
            seen == both
        });
        ensure!(
            balanced,
            "{frontend}:80 answered by {seen:?} ({:?})\n{}",
            curl_spread(&cgroup, &client, *frontend, 1).err(),
            cluster.describe()
        );
    }

    let list = cluster.node(0).cli_ok(&["service", "list"])?;
    for frontend in web.iter().chain(&web6) {
        let shown = format!("{}/TCP", std::net::SocketAddr::new(*frontend, 80));
        ensure!(
            list.lines().any(|l| l.contains(&shown)),
            "cilium service list lacks {shown}:\n{list}"
        );
    }
    Ok(())
}

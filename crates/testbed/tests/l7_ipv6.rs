//! L7 policy over IPv6 (issue 18): dual-stack pods whose HTTP connections
//! to each other's IPv6 addresses an L7 rule covers go through cilium-proxy
//! as their IPv4 ones do (the datapath assigns them to the proxy's [::]
//! listener with `bpf_sk_assign`), on ingress and on egress; DNS queries to
//! a server's IPv6 address go through the DNS proxy over UDP and TCP, and
//! the AAAA answers toFQDNs selectors claim open their addresses. Real
//! `curl -6`, `dig` and dnsmasq; the proxy's records name the IPv6
//! addresses and the peers' identities (its ipcache holds the IPv6
//! entries). Across two nodes the same HTTP rules hold through the VXLAN
//! overlay, and a node's own IPv6 connections to a pod on another node
//! arrive as `remote-node`.
//!
//! Needs root, dnsmasq and dig (and etcd for the two-node test). Each test
//! starts its own agent on private paths and ranges.

#[path = "l7/support.rs"]
mod support;

use std::net::Ipv6Addr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use api::MonitorEvent;
use testbed::cluster::{Cluster, ClusterOptions, ClusterPod};
use testbed::{
    cmd, eventually, unique, Agent, AgentOptions, BackgroundProcess, HttpServer, Monitor, NetNs,
    Pod,
};

const INGRESS_L7_POLICY: &str = "\
- endpointSelector:
    matchLabels: {app: web}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: client}
    toPorts:
    - ports: [{port: \"80\", protocol: TCP}]
      rules:
        http:
        - method: GET
          path: /public
        - method: POST
          path: /upload
";

const EGRESS_L7_POLICY: &str = "\
- endpointSelector:
    matchLabels: {app: client}
  egress:
  - toEndpoints:
    - matchLabels: {app: web}
    toPorts:
    - ports: [{port: \"80\", protocol: TCP}]
      rules:
        http:
        - method: GET
          path: /public
        - method: POST
          path: /upload
";

/// A place curl runs in: a pod on one agent, a pod in a cluster, a node.
trait Client {
    fn run(&self, args: &[&str]) -> std::process::Output;
}

impl Client for Pod {
    fn run(&self, args: &[&str]) -> std::process::Output {
        self.exec(args)
    }
}

impl Client for ClusterPod {
    fn run(&self, args: &[&str]) -> std::process::Output {
        self.exec(args)
    }
}

impl Client for NetNs {
    fn run(&self, args: &[&str]) -> std::process::Output {
        self.exec(args).expect("exec in the node's namespace")
    }
}

/// `curl -6` (or plain curl for IPv4 URLs) in `pod`: stdout, `-w` output
/// included. `-g`: the brackets of an IPv6 URL are no glob.
fn curl(pod: &impl Client, args: &[&str]) -> String {
    let mut full = vec!["curl", "-s", "-g", "--max-time", "3"];
    full.extend(args);
    String::from_utf8_lossy(&pod.run(&full).stdout).into_owned()
}

/// The body followed by ` <status>` (`000` when the connection failed).
fn request(pod: &impl Client, method: &str, url: &str) -> String {
    curl(pod, &["-6", "-X", method, "-w", " %{http_code}", url])
}

fn url6(ip: Ipv6Addr, path: &str) -> String {
    format!("http://[{ip}]{path}")
}

fn ip6(pod: &Pod) -> Result<Ipv6Addr> {
    pod.ip6()
        .with_context(|| format!("pod {} has no IPv6 address", pod.name()))
}

/// The same requests through the proxy whichever side's rule sends them
/// there: allowed and denied paths, request bodies by Content-Length and
/// chunked, and a keep-alive connection carrying an allowed then a denied
/// request.
fn check_requests(agent: &Agent, client: &impl Client, web: Ipv6Addr) -> Result<()> {
    let mut last = String::new();
    let allowed = eventually(Duration::from_secs(5), Duration::from_millis(100), || {
        last = request(client, "GET", &url6(web, "/public"));
        last == "web GET /public\n 200"
    });
    ensure!(
        allowed,
        "GET /public over IPv6 is allowed, got {last:?}\n{}",
        support::proxy_report(agent)
    );
    let got = request(client, "GET", &url6(web, "/private"));
    ensure!(
        got.starts_with("Access denied") && got.ends_with(" 403"),
        "GET /private over IPv6 must be denied with 403 Access denied, got {got:?}"
    );
    let upload = url6(web, "/upload");
    let body = "x".repeat(3000);
    let got = curl(
        client,
        &["-6", "-w", " %{http_code}", "--data-binary", &body, &upload],
    );
    ensure!(
        got == "web POST /upload\n 200",
        "POST /upload with a Content-Length body, got {got:?}"
    );
    let got = curl(
        client,
        &[
            "-6",
            "-w",
            " %{http_code}",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            &body,
            &upload,
        ],
    );
    ensure!(
        got == "web POST /upload\n 200",
        "POST /upload with a chunked body, got {got:?}"
    );
    let got = curl(
        client,
        &[
            "-6",
            "-w",
            " %{http_code}",
            "--data-binary",
            &body,
            &url6(web, "/elsewhere"),
        ],
    );
    ensure!(
        got.ends_with(" 403"),
        "POST with a body to a path no rule allows, got {got:?}"
    );
    let got = curl(
        client,
        &[
            "-6",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            &url6(web, "/public"),
            &url6(web, "/public"),
            &url6(web, "/private"),
        ],
    );
    ensure!(
        got == "200 1\n200 0\n403 0\n",
        "keep-alive over IPv6: two allowed requests then a denied one on one connection, \
         got {got:?}"
    );
    Ok(())
}

/// What both HTTP tests start from: one agent, dual-stack pods web (HTTP
/// on port 80), client and other, and the proxy's l7 records watched from
/// before any rule.
struct HttpScene {
    monitor: Monitor,
    _server: HttpServer,
    other: Pod,
    client: Pod,
    web: Pod,
    agent: Agent,
}

impl HttpScene {
    fn start() -> Result<HttpScene> {
        let agent = Agent::start_with(AgentOptions::default().with_unique_range())?;
        let web = Pod::create_dual_stack(&agent, "web", &["k8s:app=web"])?;
        let client = Pod::create_dual_stack(&agent, "client", &["k8s:app=client"])?;
        let other = Pod::create_dual_stack(&agent, "other", &["k8s:app=other"])?;
        let server = web.serve_http(80)?;
        let monitor = Monitor::start(&agent, &["l7"])?;
        Ok(HttpScene {
            monitor,
            _server: server,
            other,
            client,
            web,
            agent,
        })
    }
}

/// The proxy's record of the GET /private it denied over IPv6.
fn denied_private_over_ipv6(monitor: &mut Monitor) -> Result<MonitorEvent> {
    monitor
        .wait_for(
            |ev| {
                ev.l7.as_ref().is_some_and(|l7| {
                    l7.verdict == "Denied" && l7.path == "/private" && ev.src_ip.contains(':')
                })
            },
            Duration::from_secs(5),
        )
        .with_context(|| format!("no IPv6 l7 event for GET /private: {:?}", monitor.seen()))
}

#[test]
fn http_ingress_rules_over_ipv6() -> Result<()> {
    let mut scene = HttpScene::start()?;
    let HttpScene {
        ref agent,
        ref web,
        ref client,
        ref other,
        ref mut monitor,
        ..
    } = scene;
    let (web6, client6) = (ip6(web)?, ip6(client)?);

    support::apply_policy(agent, &[web], INGRESS_L7_POLICY)?;
    check_requests(agent, client, web6)?;
    let got = request(other, "GET", &url6(web6, "/public"));
    ensure!(
        got == " 000",
        "a peer the rule does not select stays dropped at L3/L4 over IPv6, got {got:?}"
    );
    // The IPv4 listener beside the IPv6 one still serves the same port.
    let got = curl(
        client,
        &[
            "-w",
            " %{http_code}",
            &format!("http://{}/private", web.ip()),
        ],
    );
    ensure!(
        got.ends_with(" 403"),
        "the same rule over IPv4, got {got:?}"
    );

    let denied = denied_private_over_ipv6(monitor)?;
    let (client_id, web_id) = (client.identity(agent)?, web.identity(agent)?);
    ensure!(
        denied.src_ip == client6.to_string()
            && denied.dst_ip == web6.to_string()
            && denied.dst_port == 80
            && denied.direction == "ingress"
            && denied.src_identity == client_id
            && denied.dst_identity == web_id
            && denied.l7.as_ref().unwrap().status == 403,
        "the record names the client {client6} ({client_id}) and web [{web6}]:80 ({web_id}) \
         with 403: {denied:?}"
    );
    Ok(())
}

#[test]
fn http_egress_rules_over_ipv6() -> Result<()> {
    let mut scene = HttpScene::start()?;
    let HttpScene {
        ref agent,
        ref web,
        ref client,
        ref other,
        ref mut monitor,
        ..
    } = scene;
    // other serves too: what stops the client is the rule, not a closed port.
    let _other_server = other.serve_http(80)?;
    let (web6, client6) = (ip6(web)?, ip6(client)?);

    support::apply_policy(agent, &[client], EGRESS_L7_POLICY)?;
    check_requests(agent, client, web6)?;
    let got = request(client, "GET", &url6(ip6(other)?, "/public"));
    ensure!(
        got == " 000",
        "egress to a pod no rule names is dropped over IPv6, got {got:?}"
    );

    let denied = denied_private_over_ipv6(monitor)?;
    let (client_id, web_id) = (client.identity(agent)?, web.identity(agent)?);
    ensure!(
        denied.src_ip == client6.to_string()
            && denied.dst_ip == web6.to_string()
            && denied.direction == "egress"
            && denied.endpoint == client.endpoint_id()
            && denied.src_identity == client_id
            && denied.dst_identity == web_id,
        "the record is the client's {client6} ({client_id}) egress to web {web6} ({web_id}): \
         {denied:?}"
    );
    Ok(())
}

/// web takes TCP 80 from the client alone (L3/L4): on web's node the
/// client's identity has to arrive with the proxy's upstream connection.
const WEB_FROM_CLIENT: &str = "\
- endpointSelector:
    matchLabels: {app: web}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: client}
    toPorts:
    - ports: [{port: \"80\", protocol: TCP}]
";

/// web takes TCP 80 from the entity `entity` alone.
fn web_from_entity(entity: &str) -> String {
    format!(
        "- endpointSelector:\n    matchLabels: {{app: web}}\n  ingress:\n  \
         - fromEntities: [{entity}]\n    toPorts:\n    \
         - ports: [{{port: \"80\", protocol: TCP}}]\n"
    )
}

/// Replaces every node's rules with `yaml` and waits until each of `pods`
/// has realized them on its node.
fn apply_on_every_node(cluster: &Cluster, pods: &[&ClusterPod], yaml: &str) -> Result<()> {
    for node in cluster.nodes() {
        node.cli_ok(&["policy", "delete", "--all"])?;
        let file = node.agent().temp_dir().join("policy.yaml");
        std::fs::write(&file, yaml)?;
        let out = node.cli_ok(&["policy", "import", &file.display().to_string()])?;
        let revision = testbed::conformance::parse_revision(&out)?;
        for pod in pods.iter().filter(|p| p.node() == node.index()) {
            let realized = eventually(Duration::from_secs(10), Duration::from_millis(50), || {
                pod.endpoint()
                    .is_ok_and(|ep| ep.status.policy.realized.policy_revision >= revision)
            });
            ensure!(realized, "{}: revision {revision} not realized", pod.name());
        }
    }
    Ok(())
}

/// Across two nodes (VXLAN over an IPv4 underlay; the nodes also have
/// IPv6 addresses): web's ingress HTTP rule holds for a client on the
/// other node (web's node hands the tunnelled connection to its proxy and
/// its answers go back through the overlay), the client's egress HTTP rule
/// holds towards web (the upstream leaves through the overlay with the
/// client's identity, which web's node checks), and node 0's own stack
/// reaches web's IPv6 address through the tunnel as `remote-node`, not
/// `host`, as in Cilium.
#[test]
fn http_rules_and_node_traffic_over_ipv6_across_two_nodes() -> Result<()> {
    let cluster = Cluster::start_dual_stack_underlay(
        ClusterOptions {
            nodes: 2,
            etcd_members: 1,
        },
        &["--enable-ipv6=true"],
    )?;
    let client = cluster.pod(0, "client", &["k8s:app=client"])?;
    let web = cluster.pod(1, "web", &["k8s:app=web"])?;
    let _server = HttpServer::start(web.namespace(), 80, "web")?;
    let web6 = web.ip6().context("web has no IPv6 address")?;
    let pods = [&client, &web];
    let report = |node: usize| {
        format!(
            "{}\n{}",
            support::proxy_report(cluster.node(node).agent()),
            cluster.describe()
        )
    };

    apply_on_every_node(&cluster, &pods, INGRESS_L7_POLICY)?;
    check_requests(cluster.node(1).agent(), &client, web6)
        .with_context(|| format!("ingress rule on node 1\n{}", report(1)))?;

    apply_on_every_node(
        &cluster,
        &pods,
        &format!("{EGRESS_L7_POLICY}{WEB_FROM_CLIENT}"),
    )?;
    check_requests(cluster.node(0).agent(), &client, web6)
        .with_context(|| format!("egress rule on node 0\n{}", report(0)))?;

    // Node 0's own connection to web's IPv6 address: remote-node on
    // web's node.
    let node0 = cluster.node(0).netns();
    let public = url6(web6, "/public");
    apply_on_every_node(&cluster, &pods, &web_from_entity("remote-node"))?;
    let mut last = String::new();
    let reached = eventually(Duration::from_secs(5), Duration::from_millis(100), || {
        last = request(node0, "GET", &public);
        last == "web GET /public\n 200"
    });
    ensure!(
        reached,
        "node 0 reaches web [{web6}] on node 1 under fromEntities: [remote-node], got {last:?}\n{}",
        cluster.describe()
    );
    apply_on_every_node(&cluster, &pods, &web_from_entity("host"))?;
    let mut drops = Monitor::start(cluster.node(1).agent(), &["drop"])?;
    let got = request(node0, "GET", &public);
    ensure!(
        got == " 000",
        "node 0 is not web's host: fromEntities: [host] must drop it, got {got:?}"
    );
    let web_id = web.identity()?;
    drops
        .wait_for(
            |ev| {
                ev.src_identity == identity::REMOTE_NODE
                    && ev.dst_identity == web_id
                    && ev.dst_ip == web6.to_string()
            },
            Duration::from_secs(5),
        )
        .with_context(|| {
            format!(
                "node 1 must drop node 0's IPv6 connection as remote-node to web ({web_id}); \
                 seen: {:?}",
                drops.seen()
            )
        })?;
    Ok(())
}

/// The client may ask the DNS server only for names under allowed.test.
const DNS_POLICY: &str = "\
- endpointSelector:
    matchLabels: {app: client}
  egress:
  - toEndpoints:
    - matchLabels: {app: dns}
    toPorts:
    - ports: [{port: \"53\", protocol: ANY}]
      rules:
        dns:
        - matchPattern: \"*.allowed.test\"
";

/// Names and addresses the server answers (AAAA and A records).
const DNS_HOSTS: &str = "\
2001:db8:5::1 web.allowed.test
198.18.5.1 web.allowed.test
2001:db8:5::2 denied.test
";

/// dnsmasq in `pod`, listening on the pod's IPv6 address only, answering
/// `hosts_text` (an /etc/hosts text whose first line is web.allowed.test's
/// AAAA) with a TTL of 10 minutes (so what toFQDNs learns outlives an
/// agent restart), until the server answers there.
fn dns_server(agent: &Agent, pod: &Pod, hosts_text: &str) -> Result<BackgroundProcess> {
    let dir = agent.temp_dir();
    let hosts = dir.join("dns6-hosts");
    std::fs::write(&hosts, hosts_text)?;
    let first = hosts_text.split_whitespace().next().unwrap_or_default();
    let server = ip6(pod)?;
    let conf = dir.join("dnsmasq6.conf");
    std::fs::write(
        &conf,
        format!(
            "port=53\nlisten-address={server}\nbind-interfaces\nno-resolv\nno-hosts\n\
             pid-file=\nuser=root\naddn-hosts={}\nlocal=/test/\nlocal-ttl=600\n",
            hosts.display()
        ),
    )?;
    let conf_arg = format!("--conf-file={}", conf.display());
    let process = BackgroundProcess::spawn(
        pod.namespace(),
        &[
            "dnsmasq",
            "--keep-in-foreground",
            "--log-queries",
            &conf_arg,
        ],
        &dir.join("dnsmasq6.log"),
    )?;
    let at = format!("@{server}");
    let up = eventually(Duration::from_secs(5), Duration::from_millis(50), || {
        pod.exec(&[
            "dig",
            "+short",
            "+time=1",
            "+tries=1",
            &at,
            "web.allowed.test",
            "AAAA",
        ])
        .stdout
        .starts_with(first.as_bytes())
    });
    ensure!(up, "dnsmasq did not answer at {server}: {}", process.log());
    Ok(process)
}

/// `dig` from `pod` at `server` over UDP (or TCP): the status and the
/// answer section's last fields.
fn dig(pod: &Pod, server: Ipv6Addr, name: &str, kind: &str, tcp: bool) -> (String, Vec<String>) {
    let at = format!("@{server}");
    let mut args = vec!["dig", "+time=2", "+tries=1", &at, name, kind];
    if tcp {
        args.push("+tcp");
    }
    let out = String::from_utf8_lossy(&pod.exec(&args).stdout).into_owned();
    let status = out
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("no answer")
        .to_string();
    let answers = out
        .split(";; ANSWER SECTION:")
        .nth(1)
        .map(|section| {
            section
                .lines()
                .skip(1)
                .take_while(|l| !l.trim().is_empty())
                .filter_map(|l| l.split_whitespace().last().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (status, answers)
}

#[test]
fn dns_rules_over_ipv6() -> Result<()> {
    let agent = Agent::start_with(AgentOptions::default().with_unique_range())?;
    let dns = Pod::create_dual_stack(&agent, "dns", &["k8s:app=dns"])?;
    let client = Pod::create_dual_stack(&agent, "client", &["k8s:app=client"])?;
    let _server = dns_server(&agent, &dns, DNS_HOSTS)?;
    let (server, client6) = (ip6(&dns)?, ip6(&client)?);

    let mut monitor = Monitor::start(&agent, &["l7"])?;
    support::apply_policy(&agent, &[&client], DNS_POLICY)?;
    // The redirect may reach the datapath a moment before the proxy
    // listens on it (as for IPv4): the first query is retried.
    let mut first = (String::new(), Vec::new());
    let answered = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
        first = dig(&client, server, "web.allowed.test", "AAAA", false);
        first.0 == "NOERROR"
    });
    ensure!(
        answered,
        "AAAA web.allowed.test over IPv6 UDP, got {first:?}\n{}",
        support::proxy_report(&agent)
    );
    for tcp in [false, true] {
        let over = if tcp { "TCP" } else { "UDP" };
        let got = dig(&client, server, "web.allowed.test", "AAAA", tcp);
        ensure!(
            got == ("NOERROR".to_string(), vec!["2001:db8:5::1".to_string()]),
            "AAAA web.allowed.test over IPv6 {over} is allowed and answered, got {got:?}\n{}",
            support::proxy_report(&agent)
        );
        let got = dig(&client, server, "web.allowed.test", "A", tcp);
        ensure!(
            got == ("NOERROR".to_string(), vec!["198.18.5.1".to_string()]),
            "A web.allowed.test over IPv6 {over}, got {got:?}"
        );
        let got = dig(&client, server, "denied.test", "AAAA", tcp);
        ensure!(
            got.0 == "REFUSED" && got.1.is_empty(),
            "denied.test over IPv6 {over} is refused by the proxy, got {got:?}"
        );
    }

    let answered = monitor
        .wait_for(
            |ev| {
                ev.l7.as_ref().is_some_and(|l7| {
                    l7.dns.as_ref().is_some_and(|d| {
                        d.kind == "response" && d.ips.iter().any(|ip| ip == "2001:db8:5::1")
                    })
                })
            },
            Duration::from_secs(5),
        )
        .with_context(|| format!("no DNS response record with the AAAA: {:?}", monitor.seen()))?;
    // The monitor's record keeps the query's sides (Hubble turns them).
    ensure!(
        answered.src_ip == client6.to_string()
            && answered.dst_ip == server.to_string()
            && answered.dst_port == 53,
        "the answer's record names the client {client6} and the server [{server}]:53: \
         {answered:?}"
    );
    Ok(())
}

const IPV6_FORWARDING: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

/// A namespace outside the cluster with an IPv6 address of a documentation
/// prefix of its own, behind a veth whose host side routes to it, serving
/// HTTP on 80; the host forwards IPv6 while it lives.
struct Outside6 {
    server: Option<HttpServer>,
    host_ifname: String,
    _netns: NetNs,
    forwarding_before: String,
    address: Ipv6Addr,
}

impl Outside6 {
    fn create() -> Result<Outside6> {
        let (pid, n) = unique::next_pair();
        let netns = NetNs::create(&unique::netns_name(pid, n, "l7out6"))?;
        let host_ifname = format!("lo6{:06x}{:03x}", pid & 0xff_ffff, n & 0xfff);
        let net = format!("2001:db8:{:x}:7", pid & 0xffff);
        let (gateway, address) = (format!("{net}::1"), format!("{net}::10"));
        let ns = netns.name().to_string();
        let mut outside = Outside6 {
            server: None,
            host_ifname: host_ifname.clone(),
            _netns: netns,
            forwarding_before: std::fs::read_to_string(IPV6_FORWARDING)?,
            address: address.parse()?,
        };
        let (gateway_cidr, address_cidr) = (format!("{gateway}/64"), format!("{address}/64"));
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
            &["addr", "add", &gateway_cidr, "dev", &host_ifname, "nodad"],
            &["link", "set", &host_ifname, "up"],
            &["-n", &ns, "link", "set", "lo", "up"],
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &address_cidr,
                "dev",
                "eth0",
                "nodad",
            ],
            &["-n", &ns, "link", "set", "eth0", "up"],
            &["-n", &ns, "-6", "route", "add", "default", "via", &gateway],
        ];
        for args in steps {
            cmd::ip(args)?;
        }
        std::fs::write(IPV6_FORWARDING, "1")?;
        outside.server = Some(HttpServer::start(&outside._netns, 80, "outside6")?);
        Ok(outside)
    }
}

impl Drop for Outside6 {
    fn drop(&mut self) {
        self.server = None;
        let _ = std::fs::write(IPV6_FORWARDING, self.forwarding_before.trim());
        cmd::run_ignoring_errors("ip", &["link", "del", "dev", &self.host_ifname]);
    }
}

/// DNS through the proxy, and HTTP to what web.allowed.test resolves to.
const FQDN_POLICY: &str = "\
- endpointSelector:
    matchLabels: {app: client}
  egress:
  - toEndpoints:
    - matchLabels: {app: dns}
    toPorts:
    - ports: [{port: \"53\", protocol: ANY}]
      rules:
        dns:
        - matchPattern: \"*\"
  - toFQDNs:
    - matchName: web.allowed.test
    toPorts:
    - ports: [{port: \"80\", protocol: TCP}]
";

#[test]
fn to_fqdns_allows_the_ipv6_address_of_an_aaaa_answer() -> Result<()> {
    let mut agent = Agent::start_with(AgentOptions::default().with_unique_range())?;
    let outside = Outside6::create()?;
    let dns = Pod::create_dual_stack(&agent, "dns", &["k8s:app=dns"])?;
    let client = Pod::create_dual_stack(&agent, "client", &["k8s:app=client"])?;
    let target = outside.address;
    let hosts = format!("{target} web.allowed.test\n{target} unlisted.test\n");
    let _server = dns_server(&agent, &dns, &hosts)?;
    let server = ip6(&dns)?;
    support::apply_policy(&agent, &[&client], FQDN_POLICY)?;

    let url = url6(target, "/");
    let got = request(&client, "GET", &url);
    ensure!(
        got == " 000",
        "nothing resolved yet: {target} is world-ipv6, which no rule allows, got {got:?}"
    );
    // A name no toFQDNs selector names does not open its address.
    let mut unlisted = (String::new(), Vec::new());
    let answered = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
        unlisted = dig(&client, server, "unlisted.test", "AAAA", false);
        unlisted.0 == "NOERROR"
    });
    ensure!(
        answered && unlisted.1 == [target.to_string()],
        "AAAA unlisted.test, got {unlisted:?}\n{}",
        support::proxy_report(&agent)
    );
    let got = request(&client, "GET", &url);
    ensure!(
        got == " 000",
        "unlisted.test's answer opens nothing, got {got:?}"
    );

    let got = dig(&client, server, "web.allowed.test", "AAAA", false);
    ensure!(
        got == ("NOERROR".to_string(), vec![target.to_string()]),
        "AAAA web.allowed.test, got {got:?}"
    );
    // The answer reached the pod after the datapath allowed its address.
    let got = request(&client, "GET", &url);
    ensure!(
        got == "outside6 GET /\n 200",
        "web.allowed.test's AAAA {target} is allowed on 80, got {got:?}\n{}",
        agent
            .cli_ok(&["bpf", "ipcache", "list"])
            .unwrap_or_default()
    );
    let lookups = agent.cli_ok(&["fqdn", "cache", "list"])?;
    ensure!(
        lookups.contains("web.allowed.test") && lookups.contains(&target.to_string()),
        "cilium fqdn cache list shows the name and its IPv6 address: {lookups}"
    );

    // A crash and a restart, with no DNS lookup after them: the address
    // stays allowed while the agent is down (the datapath keeps its maps)
    // and after it restored its FQDN cache, as an IPv4 one does.
    agent.kill();
    let got = request(&client, "GET", &url);
    ensure!(
        got == "outside6 GET /\n 200",
        "{target} with the agent dead (kill -9), got {got:?}"
    );
    agent.start_again()?;
    let got = request(&client, "GET", &url);
    ensure!(
        got == "outside6 GET /\n 200",
        "{target} after the restart, without a new lookup, got {got:?}\n{}\n{}",
        agent.cli_ok(&["fqdn", "cache", "list"]).unwrap_or_default(),
        agent
            .cli_ok(&["bpf", "ipcache", "list"])
            .unwrap_or_default()
    );
    let lookups = agent.cli_ok(&["fqdn", "cache", "list"])?;
    ensure!(
        lookups.contains("web.allowed.test") && lookups.contains(&target.to_string()),
        "the restored FQDN cache shows the name and its IPv6 address: {lookups}"
    );
    Ok(())
}

//! Egress L7 policy through the datapath: the CLIENT's policy names the
//! HTTP requests it may send to a server pod, on the same node or another
//! one. The datapath
//! hands the client's connection to cilium-proxy on the way out of the
//! client's veth; the proxy judges each request against the client's egress
//! rules for the server's identity. Real curl clients, as in l7.rs.
//!
//! Cast: `web` (app=web) serving HTTP on 80, `other` (app=other) likewise,
//! `client` (app=client) carrying the egress policy, and `visitor` (no
//! policy) to show the rules belong to the client alone.
//!
//! Towards another node the proxy's upstream connection leaves the client's
//! node through the overlay with the client's identity as the VNI, so the
//! server's node still enforces its own ingress policy against the client.
//!
//! Needs root (and etcd for the two-node test). Each test starts its own
//! agents on private paths and ranges.

#[path = "l7/support.rs"]
mod support;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use testbed::cluster::{Cluster, ClusterOptions, ClusterPod};
use testbed::{eventually, Agent, AgentOptions, HttpServer, Monitor, Pod};

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
";

/// `curl` in `pod`: the body followed by ` <status>` (`000` when the
/// connection failed).
fn request(pod: &Pod, method: &str, url: &str) -> String {
    curl(pod.exec(&curl_args(method, url)))
}

fn curl_args<'a>(method: &'a str, url: &'a str) -> [&'a str; 9] {
    [
        "curl",
        "-s",
        "--max-time",
        "2",
        "-X",
        method,
        "-w",
        " %{http_code}",
        url,
    ]
}

fn curl(out: std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn egress_http_rules_allow_and_deny_requests_to_a_local_pod() -> Result<()> {
    let agent = Agent::start_with(AgentOptions::default().with_unique_range())?;
    let web = Pod::create(&agent, "web", &["k8s:app=web"])?;
    let other = Pod::create(&agent, "other", &["k8s:app=other"])?;
    let client = Pod::create(&agent, "client", &["k8s:app=client"])?;
    let visitor = Pod::create(&agent, "visitor", &["k8s:app=visitor"])?;
    let _web_server = web.serve_http(80)?;
    let _other_server = other.serve_http(80)?;
    let url = |pod: &Pod, path: &str| format!("http://{}{path}", pod.ip());

    let mut monitor = Monitor::start(&agent, &["l7"])?;
    support::apply_policy(&agent, &[&client], EGRESS_L7_POLICY)?;

    let got = request(&client, "GET", &url(&web, "/public"));
    ensure!(
        got == "web GET /public\n 200",
        "GET /public is allowed by the client's egress rule, got {got:?}\n{}",
        support::proxy_report(&agent)
    );
    for (method, path) in [("GET", "/private"), ("POST", "/public")] {
        let got = request(&client, method, &url(&web, path));
        ensure!(
            got.starts_with("Access denied") && got.ends_with(" 403"),
            "{method} {path} must be denied with 403 Access denied, got {got:?}"
        );
    }
    let got = request(&client, "GET", &url(&other, "/public"));
    ensure!(
        got == " 000",
        "egress to a pod no rule names must be dropped, got {got:?}"
    );
    let got = request(&visitor, "GET", &url(&web, "/private"));
    ensure!(
        got == "web GET /private\n 200",
        "a pod without egress policy is not restricted, got {got:?}"
    );

    let client_id = client.identity(&agent)?;
    let web_id = web.identity(&agent)?;
    let denied = monitor
        .wait_for(
            |ev| {
                ev.l7
                    .as_ref()
                    .is_some_and(|l7| l7.verdict == "Denied" && l7.path == "/private")
            },
            Duration::from_secs(5),
        )
        .with_context(|| {
            format!(
                "no l7 monitor event for the denied GET /private; seen: {:?}",
                monitor.seen()
            )
        })?;
    ensure!(
        denied.direction == "egress"
            && denied.endpoint == client.endpoint_id()
            && denied.src_identity == client_id
            && denied.dst_identity == web_id
            && denied.l7.as_ref().unwrap().status == 403,
        "l7 event must be the client's (endpoint {}, identity {client_id}) egress to web \
         ({web_id}) with 403: {denied:?}",
        client.endpoint_id()
    );
    Ok(())
}

/// Only the web pod may be reached on 80, and only by the client (so the
/// server's node really enforces the identity the overlay carries).
const WEB_INGRESS_POLICY: &str = "\
- endpointSelector:
    matchLabels: {app: web}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: client}
    toPorts:
    - ports: [{port: \"80\", protocol: TCP}]
";

#[test]
fn egress_http_rules_hold_towards_a_pod_on_another_node() -> Result<()> {
    let cluster = Cluster::start(ClusterOptions {
        nodes: 2,
        etcd_members: 1,
    })?;
    let client = cluster.pod(0, "client", &["k8s:app=client"])?;
    let web = cluster.pod(1, "web", &["k8s:app=web"])?;
    let _server = HttpServer::start(web.namespace(), 80, "web")?;
    cluster.import_policy(&format!("{EGRESS_L7_POLICY}{WEB_INGRESS_POLICY}"))?;
    let get = |pod: &ClusterPod, method: &str, path: &str| {
        curl(pod.exec(&curl_args(method, &format!("http://{}{path}", web.ip()))))
    };

    let mut last = String::new();
    let allowed = eventually(Duration::from_secs(10), Duration::from_millis(200), || {
        last = get(&client, "GET", "/public");
        last == "web GET /public\n 200"
    });
    ensure!(
        allowed,
        "GET /public from node 0 to web on node 1 is allowed by the client's egress rule, \
         got {last:?}\n{}\n{}",
        support::proxy_report(cluster.node(0).agent()),
        cluster.describe()
    );
    for (method, path) in [("GET", "/private"), ("POST", "/public")] {
        let got = get(&client, method, path);
        ensure!(
            got.starts_with("Access denied") && got.ends_with(" 403"),
            "{method} {path} across nodes must be denied with 403 Access denied, got {got:?}"
        );
    }
    // The node's own (unproxied) connections reach the web pod as
    // remote-node, which web's ingress policy does not allow.
    let mut drops = Monitor::start(cluster.node(1).agent(), &["drop"])?;
    let from_host = curl(
        cluster
            .node(0)
            .netns()
            .exec(&curl_args("GET", &format!("http://{}/public", web.ip())))?,
    );
    ensure!(
        from_host == " 000",
        "node 0 itself is not the client: web's node must drop it, got {from_host:?}"
    );
    let web_id = web.identity()?;
    drops
        .wait_for(
            |ev| ev.src_identity == identity::REMOTE_NODE && ev.dst_identity == web_id,
            Duration::from_secs(5),
        )
        .with_context(|| {
            format!(
                "node 1 must drop node 0's connection as remote-node ({}) to web ({web_id}); \
                 seen: {:?}",
                identity::REMOTE_NODE,
                drops.seen()
            )
        })?;
    Ok(())
}

//! Egress L7 policy through the datapath: the CLIENT's policy names the
//! HTTP requests it may send to a server pod on the same node. The datapath
//! hands the client's connection to cilium-proxy on the way out of the
//! client's veth; the proxy judges each request against the client's egress
//! rules for the server's identity. Real curl clients, as in l7.rs.
//!
//! Cast: `web` (app=web) serving HTTP on 80, `other` (app=other) likewise,
//! `client` (app=client) carrying the egress policy, and `visitor` (no
//! policy) to show the rules belong to the client alone.
//!
//! Known limitation (not exercised here): egress L7 towards pods on other
//! nodes is not supported yet.
//!
//! Needs root. The test starts its own agent on private paths and a /24.

#[path = "l7/support.rs"]
mod support;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use testbed::{Agent, AgentOptions, Monitor, Pod};

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
    let out = pod.exec(&[
        "curl",
        "-s",
        "--max-time",
        "2",
        "-X",
        method,
        "-w",
        " %{http_code}",
        url,
    ]);
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

//! L7 policy through the datapath: connections an L7 rule covers are handed
//! to cilium-proxy by `bpf_sk_assign`, which judges each request; real curl
//! clients in real pods.
//!
//! Cast (Cilium's Star Wars demo): `deathstar` (org=empire, class=deathstar)
//! serving HTTP on 80; `tiefighter` (org=empire) and `xwing` (org=alliance).

#[path = "l7/support.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use testbed::{eventually, Agent, AgentOptions, HttpServer, Monitor, Pod};

const L4_POLICY: &str = "\
- endpointSelector:
    matchLabels: {org: empire, class: deathstar}
  ingress:
  - fromEndpoints:
    - matchLabels: {org: empire}
    toPorts:
    - ports: [{port: \"80\", protocol: TCP}]
";

const L7_POLICY: &str = "\
- endpointSelector:
    matchLabels: {org: empire, class: deathstar}
  ingress:
  - fromEndpoints:
    - matchLabels: {org: empire}
    toPorts:
    - ports: [{port: \"80\", protocol: TCP}]
      rules:
        http:
        - method: POST
          path: /v1/request-landing
        - method: GET
          path: /public
        - method: GET
          path: /token
          headers: ['X-Token: [0-9]+']
        - method: GET
          path: /present
          headers: [X-Present]
";

struct Galaxy {
    _web: HttpServer,
    deathstar: Pod,
    tiefighter: Pod,
    xwing: Pod,
    agent: Agent,
}

impl Galaxy {
    fn start() -> Result<Galaxy> {
        let agent = Agent::start_with(AgentOptions::default().with_unique_range())?;
        let deathstar = Pod::create(
            &agent,
            "deathstar",
            &["k8s:org=empire", "k8s:class=deathstar"],
        )?;
        let tiefighter = Pod::create(
            &agent,
            "tiefighter",
            &["k8s:org=empire", "k8s:class=tiefighter"],
        )?;
        let xwing = Pod::create(&agent, "xwing", &["k8s:org=alliance", "k8s:class=xwing"])?;
        Ok(Galaxy {
            _web: deathstar.serve_http(80)?,
            deathstar,
            tiefighter,
            xwing,
            agent,
        })
    }

    /// Replaces every rule with `policy` and waits until the deathstar
    /// enforces it.
    fn apply(&self, policy: &str) -> Result<()> {
        support::apply_policy(&self.agent, &[&self.deathstar], policy)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.deathstar.ip())
    }
}

/// `curl` in `pod`; stdout (`-w` output included) and whether curl succeeded.
fn curl(pod: &Pod, args: &[&str]) -> (String, bool) {
    let mut full = vec!["curl", "-s", "--max-time", "3"];
    full.extend(args);
    let out = pod.exec(&full);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

/// The HTTP status of one request (`000` when the connection failed).
fn status(pod: &Pod, method: &str, url: &str, headers: &[&str]) -> String {
    let mut args = vec!["-o", "/dev/null", "-w", "%{http_code}", "-X", method, url];
    for h in headers {
        args.extend(["-H", h]);
    }
    curl(pod, &args).0
}

#[test]
fn star_wars_l3_l4_then_l7() -> Result<()> {
    let galaxy = Galaxy::start()?;
    let landing = galaxy.url("/v1/request-landing");
    galaxy.apply(L4_POLICY)?;
    ensure!(
        eventually(Duration::from_secs(3), Duration::from_millis(100), || {
            status(&galaxy.tiefighter, "POST", &landing, &[]) == "200"
        }),
        "the empire must land under the L3/L4 policy"
    );
    ensure!(
        status(&galaxy.xwing, "POST", &landing, &[]) == "000",
        "the alliance must be dropped by the L3/L4 policy"
    );

    let mut monitor = Monitor::start(&galaxy.agent, &["l7"])?;
    galaxy.apply(L7_POLICY)?;
    let (body, ok) = curl(&galaxy.tiefighter, &["-X", "POST", &landing]);
    ensure!(
        ok && body == "deathstar POST /v1/request-landing\n",
        "allowed request must arrive unchanged, got {body:?}\n{}",
        support::proxy_report(&galaxy.agent)
    );
    let exhaust = galaxy.url("/v1/exhaust-port");
    let (body, _) = curl(
        &galaxy.tiefighter,
        &["-X", "PUT", "-w", " %{http_code}", &exhaust],
    );
    ensure!(
        body.starts_with("Access denied") && body.ends_with(" 403"),
        "PUT /v1/exhaust-port must be denied with 403 Access denied, got {body:?}"
    );
    ensure!(
        status(&galaxy.xwing, "POST", &landing, &[]) == "000",
        "the alliance stays dropped at L3/L4"
    );

    let event = monitor
        .wait_for(
            |ev| {
                ev.l7
                    .as_ref()
                    .is_some_and(|l7| l7.method == "PUT" && l7.verdict == "Denied")
            },
            Duration::from_secs(5),
        )
        .context("no l7 monitor event for the denied PUT")?;
    let tiefighter_id = galaxy.tiefighter.identity(&galaxy.agent)?;
    ensure!(
        event.src_identity == tiefighter_id && event.l7.as_ref().unwrap().status == 403,
        "l7 event must name the tiefighter's identity {tiefighter_id} and status 403: {event:?}"
    );
    Ok(())
}

#[test]
fn paths_methods_and_headers() -> Result<()> {
    let galaxy = Galaxy::start()?;
    galaxy.apply(L7_POLICY)?;
    let pod = &galaxy.tiefighter;
    let cases: &[(&str, &str, &[&str], &str)] = &[
        ("GET", "/public", &[], "200"),
        // Anchored: "/public" must not allow "/publicity".
        ("GET", "/publicity", &[], "403"),
        ("POST", "/public", &[], "403"),
        ("GET", "/token", &["X-Token: 12345"], "200"),
        ("GET", "/token", &["X-Token: abc"], "403"),
        ("GET", "/token", &[], "403"),
        ("GET", "/present", &["X-Present: anything"], "200"),
        ("GET", "/present", &[], "403"),
    ];
    for (method, path, headers, want) in cases {
        let got = status(pod, method, &galaxy.url(path), headers);
        ensure!(
            got == *want,
            "{method} {path} {headers:?}: want {want}, got {got}"
        );
    }

    // One keep-alive connection: an allowed request, then a denied one.
    let (out, _) = curl(
        pod,
        &[
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            &galaxy.url("/public"),
            &galaxy.url("/private"),
        ],
    );
    ensure!(
        out == "200 1\n403 0\n",
        "keep-alive: want allowed then denied on one connection, got {out:?}"
    );

    // The proxy's request counters reach the agent's metrics (polled every
    // 2 s): 4 requests forwarded, 6 denied, nothing unparsable.
    let l7 = |rule: &str| -> f64 {
        let samples = galaxy.agent.client().metrics_list().unwrap_or_default();
        samples
            .iter()
            .find(|s| {
                s.name == "cilium_policy_l7_total"
                    && s.labels.get("rule").map(String::as_str) == Some(rule)
            })
            .map_or(-1.0, |s| s.value)
    };
    let counted = || {
        [
            l7("received"),
            l7("forwarded"),
            l7("denied"),
            l7("parse_errors"),
        ]
    };
    ensure!(
        eventually(Duration::from_secs(8), Duration::from_millis(250), || {
            counted() == [10.0, 4.0, 6.0, 0.0]
        }),
        "cilium_policy_l7_total received/forwarded/denied/parse_errors: want [10, 4, 6, 0], got {:?}",
        counted()
    );
    let list = galaxy
        .agent
        .cli_ok(&["metrics", "list", "-p", "cilium_proxy_redirects"])?;
    ensure!(
        list.lines().any(|l| l.contains("protocol=\"http\"")
            && l.split_whitespace().last().and_then(|v| v.parse().ok()) == Some(1.0)),
        "one HTTP redirect: {list}"
    );
    Ok(())
}

#[test]
fn proxied_connection_survives_an_agent_restart() -> Result<()> {
    let mut galaxy = Galaxy::start()?;
    galaxy.apply(L7_POLICY)?;
    let addr = std::net::SocketAddr::from((galaxy.deathstar.ip(), 80));
    let stream = galaxy
        .tiefighter
        .namespace()
        .run(move || TcpStream::connect_timeout(&addr, Duration::from_secs(3)))??;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut request = |path: &str| -> Result<String> {
        write!(writer, "GET {path} HTTP/1.1\r\nHost: deathstar\r\n\r\n")?;
        let mut status_line = String::new();
        reader.read_line(&mut status_line)?;
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            if header.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse()?;
                }
            }
        }
        let mut body = vec![0; length];
        std::io::Read::read_exact(&mut reader, &mut body)?;
        Ok(status_line.trim().to_string())
    };
    ensure!(request("/public")?.contains("200"), "first request");
    galaxy.agent.kill();
    ensure!(
        request("/private")?.contains("403"),
        "the proxy keeps judging while the agent is down"
    );
    galaxy.agent.start_again()?;
    ensure!(
        request("/public")?.contains("200"),
        "the same connection still works after the restart"
    );
    Ok(())
}

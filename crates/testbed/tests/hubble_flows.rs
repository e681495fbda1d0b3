//! `cilium flows` and Hubble's flow metrics end to end (issue 19): an agent
//! with `--enable-hubble` and Prometheus, netns pods, real packets.
//!
//! - Allowed UDP, a policy drop and an L7-denied HTTP request (403) appear
//!   in `cilium flows -o json` with both pods' names, namespaces and
//!   labels, the verdict and the drop reason, and the real `hubble observe`
//!   lists the very same flows (same JSON, same compact lines).
//! - Each filter flag returns exactly the flows it describes, through both
//!   CLIs (the filters are Hubble flow filters, applied by the agent).
//! - `hubble_flows_processed_total` and `hubble_drop_total` count exactly
//!   the stored flows, and the scrape passes promtool.
//! - `--last 100` after 10,000 flows is the newest 100; `--follow` prints
//!   the flows that come after it started, and only those.
//!
//! Needs root, curl and promtool; the comparisons with `hubble observe`
//! are skipped (saying so) when the hubble binary is absent.

#[path = "hubble/support.rs"]
mod support;

use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use support::{
    cilium_flows, cilium_flows_json, field, free_port, hubble_socket, now_rfc3339, pods_of,
    promtool_check, real_hubble, samples, scrape, text, udp_dport, Hubble, SHOP_DNS_RULE,
};
use testbed::{eventually, Agent, AgentOptions, HttpServer, Pod, UdpServer};

const UDP_PORT: u16 = 53;
const HTTP_PORT: u16 = 80;
const NAMESPACE: &str = "shop";

/// With [`SHOP_DNS_RULE`] (UDP 53): the client may GET /public on TCP 80
/// (rule shop-web); the intruder nothing, and UDP 5353 is denied to it
/// outright (rule no-intruders). The rules carry the labels of the
/// CiliumNetworkPolicy objects they would come from, which flows name.
const WEB_AND_NO_INTRUDERS_RULES: &str = "\
- endpointSelector:
    matchLabels: {app: server}
  labels: [k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy,
           k8s:io.cilium.k8s.policy.name=shop-web, k8s:io.cilium.k8s.policy.namespace=shop]
  ingress:
  - fromEndpoints:
    - matchLabels: {app: client}
    toPorts:
    - ports: [{port: \"80\", protocol: TCP}]
      rules:
        http:
        - method: GET
          path: /public
- endpointSelector:
    matchLabels: {app: server}
  labels: [k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy,
           k8s:io.cilium.k8s.policy.name=no-intruders, k8s:io.cilium.k8s.policy.namespace=shop]
  ingressDeny:
  - fromEndpoints:
    - matchLabels: {app: intruder}
    toPorts:
    - ports: [{port: \"5353\", protocol: UDP}]
";

struct Lab {
    _udp: UdpServer,
    _web: HttpServer,
    client: Pod,
    intruder: Pod,
    server: Pod,
    agent: Agent,
    socket: PathBuf,
    prometheus: u16,
    hubble: Option<Hubble>,
}

impl Lab {
    /// `test` names the socket's directory, unique per test and process.
    fn start(test: &str, capacity: usize) -> Lab {
        let prometheus = free_port();
        let (socket, mut extra_args) = hubble_socket(test);
        extra_args.extend([
            "--hubble-event-buffer-capacity".into(),
            capacity.to_string(),
            "--prometheus-serve-addr".into(),
            format!("127.0.0.1:{prometheus}"),
        ]);
        let agent = Agent::start_with(AgentOptions {
            extra_args,
            ..AgentOptions::default().with_unique_range()
        })
        .unwrap();
        let ns = format!("k8s:io.kubernetes.pod.namespace={NAMESPACE}");
        let client = Pod::create(&agent, "client", &["k8s:app=client", &ns]).unwrap();
        let intruder = Pod::create(&agent, "intruder", &["k8s:app=intruder", &ns]).unwrap();
        let server = Pod::create(&agent, "server", &["k8s:app=server", &ns]).unwrap();
        let udp = server.serve_udp(UDP_PORT).unwrap();
        let web = server.serve_http(HTTP_PORT).unwrap();
        let policy = [SHOP_DNS_RULE, WEB_AND_NO_INTRUDERS_RULES].concat();
        agent.import_policy(&policy, &[&server]).unwrap();
        let hubble = real_hubble(&socket);
        Lab {
            _udp: udp,
            _web: web,
            client,
            intruder,
            server,
            agent,
            socket,
            prometheus,
            hubble,
        }
    }

    fn socket_dir(&self) -> PathBuf {
        self.socket.parent().unwrap().to_path_buf()
    }

    fn flows(&self, args: &[&str]) -> Vec<Value> {
        cilium_flows_json(&self.agent, &self.socket, args)
    }

    /// The HTTP status of GET `path` from the client (`000`: no answer).
    fn get(&self, path: &str) -> String {
        let url = format!("http://{}:{HTTP_PORT}{path}", self.server.ip());
        let out = self.client.exec(&[
            "curl",
            "-s",
            "--max-time",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &url,
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sum of a metric's series.
    fn total(&self, metric: &str) -> f64 {
        samples(&scrape(self.prometheus))
            .iter()
            .filter(|(series, _)| series.split('{').next() == Some(metric))
            .map(|(_, v)| v)
            .sum()
    }
}

fn is_l7_http(f: &Value) -> bool {
    !field(field(f, "l7"), "http").is_null()
}

fn event_type(f: &Value) -> (i64, i64) {
    let e = field(f, "event_type");
    (
        field(e, "type").as_i64().unwrap_or(0),
        field(e, "sub_type").as_i64().unwrap_or(0),
    )
}

fn has_label(f: &Value, side: &str, label: &str) -> bool {
    field(field(f, side), "labels")
        .as_array()
        .is_some_and(|l| l.iter().any(|v| v == label))
}

fn in_shop(f: &Value, side: &str, pod: &str) -> bool {
    text(f, &[side, "namespace"]) == NAMESPACE && text(f, &[side, "pod_name"]) == pod
}

fn ports(f: &Value) -> (u64, u64) {
    let l4 = field(f, "l4");
    let p = if field(l4, "UDP").is_null() {
        field(l4, "TCP")
    } else {
        field(l4, "UDP")
    };
    (
        field(p, "source_port").as_u64().unwrap_or(0),
        field(p, "destination_port").as_u64().unwrap_or(0),
    )
}

#[test]
fn allowed_denied_and_l7_denied_flows_through_cilium_flows_and_hubble_observe() {
    let lab = Lab::start("hubble-flows-kinds", 4095);
    for _ in 0..3 {
        assert!(lab
            .client
            .udp_roundtrip(lab.server.ip(), UDP_PORT, Duration::from_secs(2)));
    }
    assert!(!lab
        .intruder
        .udp_roundtrip(lab.server.ip(), UDP_PORT, Duration::from_millis(700)));
    assert!(
        eventually(Duration::from_secs(10), Duration::from_millis(200), || lab
            .get("/public")
            == "200"),
        "GET /public must pass the L7 policy"
    );
    assert_eq!(lab.get("/private"), "403", "GET /private must be denied");
    assert!(!lab
        .intruder
        .udp_roundtrip(lab.server.ip(), 5353, Duration::from_millis(300)));
    std::thread::sleep(Duration::from_millis(500));
    let until = now_rfc3339();
    let window = ["--since", "1h", "--until", until.as_str()];
    let all = lab.flows(&window);

    // Allowed: client -> server UDP, forwarded, both pods named.
    let allowed: Vec<&Value> = all
        .iter()
        .filter(|f| pods_of(f) == ("client", "server") && udp_dport(f) == 53)
        .collect();
    assert!(!allowed.is_empty(), "no client -> server flow in {all:#?}");
    for f in &allowed {
        assert_eq!(text(f, &["verdict"]), "FORWARDED", "{f:#}");
        assert!(in_shop(f, "source", "client") && in_shop(f, "destination", "server"));
        assert!(has_label(f, "source", "k8s:app=client"), "{f:#}");
    }
    // Denied by policy: a drop with its reason, both pods named.
    let denied = all
        .iter()
        .find(|f| {
            pods_of(f) == ("intruder", "server") && event_type(f).0 == 1 && udp_dport(f) == 53
        })
        .unwrap_or_else(|| panic!("no intruder drop in {all:#?}"));
    assert_eq!(text(denied, &["verdict"]), "DROPPED");
    assert_eq!(text(denied, &["drop_reason_desc"]), "POLICY_DENIED");
    assert!(in_shop(denied, "source", "intruder") && in_shop(denied, "destination", "server"));
    assert!(has_label(denied, "destination", "k8s:app=server"));
    // Denied by the L7 rule: an HTTP flow with the 403, dropped.
    let forbidden = all
        .iter()
        .find(|f| is_l7_http(f) && field(field(field(f, "l7"), "http"), "code") == 403)
        .unwrap_or_else(|| panic!("no HTTP 403 flow in {all:#?}"));
    assert_eq!(text(forbidden, &["verdict"]), "DROPPED", "{forbidden:#}");
    assert_eq!(text(forbidden, &["Type"]), "L7");
    assert!(in_shop(forbidden, "source", "client") && in_shop(forbidden, "destination", "server"));
    assert!(text(forbidden, &["l7", "http", "url"]).ends_with("/private"));

    // The rules behind each decision (beyond Cilium, which fills these
    // from the datapath: the agent derives them from the server's rules).
    // (The client's egress, where no rule applies, names none.)
    let rules = |f: &Value, side: &str| -> Vec<String> {
        field(f, side)
            .as_array()
            .map(|a| a.iter().map(|p| text(p, &["name"]).to_string()).collect())
            .unwrap_or_default()
    };
    let verdict_to = |from: &str, port: u64| {
        all.iter()
            .find(|f| {
                event_type(f).0 == 5
                    && text(f, &["traffic_direction"]) == "INGRESS"
                    && pods_of(f) == (from, "server")
                    && ports(f).1 == port
            })
            .unwrap_or_else(|| panic!("no policy verdict {from} -> server:{port} in {all:#?}"))
    };
    let dns_ok = verdict_to("client", 53);
    assert_eq!(
        rules(dns_ok, "ingress_allowed_by"),
        ["shop-dns"],
        "{dns_ok:#}"
    );
    let by = &field(dns_ok, "ingress_allowed_by")[0];
    assert_eq!(text(by, &["kind"]), "CiliumNetworkPolicy");
    assert_eq!(text(by, &["namespace"]), NAMESPACE);
    assert!(field(by, "labels").as_array().is_some_and(|l| l
        .iter()
        .any(|v| v == "k8s:io.cilium.k8s.policy.name=shop-dns")));
    assert_eq!(
        rules(verdict_to("client", 80), "ingress_allowed_by"),
        ["shop-web"]
    );
    let denied_by_rule = verdict_to("intruder", 5353);
    assert_eq!(text(denied_by_rule, &["verdict"]), "DROPPED");
    assert_eq!(rules(denied_by_rule, "ingress_denied_by"), ["no-intruders"]);
    let deny_drop = all
        .iter()
        .find(|f| event_type(f).0 == 1 && udp_dport(f) == 5353)
        .unwrap_or_else(|| panic!("no drop to 5353 in {all:#?}"));
    assert_eq!(text(deny_drop, &["drop_reason_desc"]), "POLICY_DENY");
    assert_eq!(rules(deny_drop, "ingress_denied_by"), ["no-intruders"]);
    // Default deny: no rule denied it, none is named.
    assert!(rules(denied, "ingress_denied_by").is_empty(), "{denied:#}");
    assert!(rules(verdict_to("intruder", 53), "ingress_denied_by").is_empty());
    // The request the L7 rules refused names the rule whose rules they are.
    assert_eq!(rules(forbidden, "ingress_denied_by"), ["shop-web"]);
    let public = all
        .iter()
        .find(|f| is_l7_http(f) && field(field(field(f, "l7"), "http"), "code") == 200)
        .unwrap_or_else(|| panic!("no HTTP 200 flow in {all:#?}"));
    assert_eq!(rules(public, "ingress_allowed_by"), ["shop-web"]);
    // --print-policy-names, as hubble prints them.
    let named_args = [
        &window[..],
        &["--type", "policy-verdict", "--print-policy-names"],
    ]
    .concat();
    let named = cilium_flows(&lab.agent, &lab.socket, &named_args);
    assert!(
        named
            .lines()
            .any(|l| l.contains("DENIED BY no-intruders (CiliumNetworkPolicy)")),
        "{named}"
    );
    assert!(
        named
            .lines()
            .any(|l| l.contains("ALLOWED BY shop-dns (CiliumNetworkPolicy)")),
        "{named}"
    );
    if let Some(h) = &lab.hubble {
        let theirs = h.run(&[&["observe"], &named_args[..]].concat());
        assert_eq!(
            named, theirs,
            "--print-policy-names: cilium flows vs hubble observe"
        );
    }

    // Each filter returns exactly the flows it describes, server-side.
    type Pick = fn(&Value) -> bool;
    let cases: [(&[&str], Pick); 9] = [
        (&["--verdict", "DROPPED"], |f| {
            text(f, &["verdict"]) == "DROPPED"
        }),
        (&["--pod", "shop/intruder"], |f| {
            in_shop(f, "source", "intruder") || in_shop(f, "destination", "intruder")
        }),
        (&["-n", "shop", "--type", "l7"], |f| {
            event_type(f).0 == 129
                && (text(f, &["source", "namespace"]) == NAMESPACE
                    || text(f, &["destination", "namespace"]) == NAMESPACE)
        }),
        (&["--protocol", "udp", "--port", "53"], |f| {
            !field(field(f, "l4"), "UDP").is_null() && (ports(f).0 == 53 || ports(f).1 == 53)
        }),
        (&["--label", "app=server"], |f| {
            has_label(f, "source", "k8s:app=server")
                || has_label(f, "destination", "k8s:app=server")
        }),
        (&["--type", "drop"], |f| event_type(f).0 == 1),
        (
            &["--to-pod", "shop/server", "--verdict", "FORWARDED"],
            |f| in_shop(f, "destination", "server") && text(f, &["verdict"]) == "FORWARDED",
        ),
        (&["--protocol", "http"], is_l7_http),
        (&["--type", "trace:to-endpoint"], |f| {
            event_type(f) == (4, 0)
        }),
    ];
    for (args, pick) in cases {
        let mut full = window.to_vec();
        full.extend_from_slice(args);
        let got = lab.flows(&full);
        let want: Vec<Value> = all.iter().filter(|f| pick(f)).cloned().collect();
        assert_eq!(got, want, "cilium flows {args:?}");
        if !args.contains(&"trace:to-endpoint") {
            assert!(!got.is_empty(), "cilium flows {args:?} found nothing");
        }
        if let Some(h) = &lab.hubble {
            assert_eq!(h.observe(&full), got, "hubble observe {args:?}");
        }
    }

    // The real hubble lists the same flows and prints the same lines.
    let compact = cilium_flows(
        &lab.agent,
        &lab.socket,
        &[&window[..], &["-o", "compact"]].concat(),
    );
    eprintln!("{compact}");
    assert_eq!(compact.lines().count(), all.len());
    assert!(compact
        .lines()
        .any(|l| l.contains("shop/intruder:") && l.contains("Policy denied DROPPED")));
    assert!(compact
        .lines()
        .any(|l| l.contains("http-request DROPPED (HTTP/1.1 403 (GET http://")));
    if let Some(h) = &lab.hubble {
        assert_eq!(h.observe(&window), all, "hubble observe -o json");
        let theirs = h.run(&[&["observe"], &window[..], &["-o", "compact"]].concat());
        assert_eq!(compact, theirs, "cilium flows vs hubble observe -o compact");
    }
    let table = cilium_flows(
        &lab.agent,
        &lab.socket,
        &[&window[..], &["-o", "table"]].concat(),
    );
    let mut rows = table.lines();
    assert!(rows.next().unwrap().starts_with("TIMESTAMP "), "{table}");
    assert_eq!(rows.count(), all.len());

    // Metrics count exactly the stored flows.
    let text_metrics = scrape(lab.prometheus);
    let s = samples(&text_metrics);
    let series = |name: &str| s.get(name).copied().unwrap_or(0.0);
    assert_eq!(lab.total("hubble_flows_processed_total"), all.len() as f64);
    let udp_policy_drops = all
        .iter()
        .filter(|f| {
            text(f, &["drop_reason_desc"]) == "POLICY_DENIED"
                && !field(field(f, "l4"), "UDP").is_null()
        })
        .count();
    assert!(udp_policy_drops >= 1);
    assert_eq!(
        series(r#"hubble_drop_total{reason="POLICY_DENIED",protocol="UDP"}"#),
        udp_policy_drops as f64,
        "{text_metrics}"
    );
    let http_denied = all
        .iter()
        .filter(|f| is_l7_http(f) && text(f, &["verdict"]) == "DROPPED")
        .count();
    assert_eq!(
        series(
            r#"hubble_flows_processed_total{protocol="HTTP",type="L7",subtype="HTTP",verdict="DROPPED"}"#
        ),
        http_denied as f64,
        "{text_metrics}"
    );
    let udp_drops = all
        .iter()
        .filter(|f| event_type(f).0 == 1 && !field(field(f, "l4"), "UDP").is_null())
        .count();
    assert_eq!(
        series(
            r#"hubble_flows_processed_total{protocol="UDP",type="Drop",subtype="",verdict="DROPPED"}"#
        ),
        udp_drops as f64,
        "{text_metrics}"
    );
    let dropped = all
        .iter()
        .filter(|f| text(f, &["verdict"]) == "DROPPED")
        .count();
    assert_eq!(lab.total("hubble_drop_total"), dropped as f64);
    promtool_check(&text_metrics);

    // No Hubble behind --server: a clear error.
    let out = lab
        .agent
        .cli(&["flows", "--server", "unix:///nonexistent/hubble.sock"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is Hubble enabled"), "{err}");
    let dir = lab.socket_dir();
    drop(lab);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn last_100_after_10000_flows_are_the_newest_100() {
    const FLOWS: f64 = 10_000.0;
    let lab = Lab::start("hubble-flows-last", 16_383);
    let target = (lab.server.ip(), UDP_PORT);
    // Denied datagrams from the intruder: each one a drop at least. Sent
    // in bursts the events ring keeps up with, until 10,000 flows are in.
    let mut sent = 0;
    while lab.total("hubble_flows_processed_total") < FLOWS {
        assert!(
            sent < 40_000,
            "{sent} datagrams sent and still under {FLOWS} flows"
        );
        lab.intruder
            .namespace()
            .run(move || {
                let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
                for i in 0..1_000u32 {
                    socket.send_to(&i.to_be_bytes(), target).unwrap();
                    if i % 100 == 99 {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            })
            .unwrap();
        sent += 1_000;
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let until = now_rfc3339();
    let window = ["--since", "1h", "--until", until.as_str()];
    let all = lab.flows(&window);
    assert!(all.len() as f64 >= FLOWS, "{} flows stored", all.len());
    let last = lab.flows(&["--last", "100", "--until", &until]);
    assert_eq!(last.len(), 100);
    assert_eq!(
        last,
        all[all.len() - 100..],
        "--last 100 is not the newest 100"
    );
    let first = lab.flows(&["--first", "3"]);
    assert_eq!(first, all[..3]);
    if let Some(h) = &lab.hubble {
        assert_eq!(h.observe(&["--last", "100", "--until", &until]), last);
    }
    // The counters saw every flow, those the ring evicted too.
    let counted = lab.total("hubble_flows_processed_total");
    assert!(counted >= all.len() as f64);
    if counted <= 16_383.0 {
        assert_eq!(counted, all.len() as f64);
    }
    let dir = lab.socket_dir();
    drop(lab);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn follow_prints_new_flows_as_they_come() {
    let lab = Lab::start("hubble-flows-follow", 4095);
    // A flow from before: --follow alone shows only what comes after.
    assert!(!lab
        .intruder
        .udp_roundtrip(lab.server.ip(), UDP_PORT, Duration::from_millis(300)));
    std::thread::sleep(Duration::from_millis(300));
    let server = format!("unix://{}", lab.socket.display());
    let mut child = lab
        .agent
        .cli_command(&[
            "flows", "--server", &server, "-f", "-o", "json", "--type", "drop",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(700)).is_err(),
        "--follow printed a flow from before it started"
    );
    let sent_from = lab.intruder.ip().to_string();
    assert!(!lab
        .intruder
        .udp_roundtrip(lab.server.ip(), UDP_PORT, Duration::from_millis(300)));
    let line = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("no flow followed within 5 s");
    let _ = child.kill();
    let _ = child.wait();
    let flow: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(text(&flow, &["verdict"]), "DROPPED", "{flow:#}");
    assert_eq!(text(&flow, &["IP", "source"]), sent_from);
    assert_eq!(pods_of(&flow), ("intruder", "server"));
    let dir = lab.socket_dir();
    drop(lab);
    let _ = std::fs::remove_dir_all(dir);
}

//! L7 flows of the DNS and Kafka proxies in `cilium flows` and the real
//! `hubble observe` (issue 19), next to tests/hubble_flows.rs (L3/L4 and
//! HTTP flows), with the same helpers (tests/hubble/support.rs).
//!
//! - DNS: a pod whose egress `rules.dns` allow `*.allowed.test`, resolving
//!   through a real dnsmasq outside the cluster. An allowed query over UDP
//!   is a forwarded request flow, pod to server, and a forwarded response
//!   flow, server to pod, with the answer's addresses (L4 UDP, the proxy's
//!   transport); the same over TCP
//!   says TCP; a denied name is a dropped request flow that says REFUSED.
//! - Kafka: produce to an allowed topic and to a denied one: Kafka flows
//!   with the topic, forwarded and dropped (error 29), both pods named.
//!
//! Needs root, dnsmasq, dig, kcat and socat; the comparisons with `hubble
//! observe` are skipped (saying so) when the hubble binary is absent.

#[path = "l7/kafka.rs"]
mod kafka;
#[path = "l7/support.rs"]
mod l7_support;
#[path = "hubble/support.rs"]
mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{ensure, Result};
use serde_json::Value;
use support::{
    cilium_flows, cilium_flows_json, field, hubble_socket, now_rfc3339, real_hubble, text, Hubble,
};
use testbed::cluster::{Cluster, ClusterOptions, ClusterPod, DnsServer, DnsServerConfig};
use testbed::{eventually, Agent, AgentOptions};

const NAMESPACE: &str = "shop";

/// The L7 flows so far through `cilium flows`, and the same through the
/// real `hubble observe` when it is there.
fn l7_flows(agent: &Agent, socket: &std::path::Path, hubble: Option<&Hubble>) -> Vec<Value> {
    let until = now_rfc3339();
    let window = ["--since", "1h", "--until", until.as_str(), "--type", "l7"];
    let ours = cilium_flows_json(agent, socket, &window);
    if let Some(h) = hubble {
        assert_eq!(h.observe(&window), ours, "hubble observe -o json");
        let compact = [&window[..], &["-o", "compact"]].concat();
        assert_eq!(
            cilium_flows(agent, socket, &compact),
            h.run(&[&["observe"], &compact[..]].concat()),
            "cilium flows vs hubble observe -o compact"
        );
    }
    ours
}

fn l4(f: &Value) -> (&'static str, u64, u64) {
    let l4 = field(f, "l4");
    let (name, p) = if field(l4, "UDP").is_null() {
        ("TCP", field(l4, "TCP"))
    } else {
        ("UDP", field(l4, "UDP"))
    };
    (
        name,
        field(p, "source_port").as_u64().unwrap_or(0),
        field(p, "destination_port").as_u64().unwrap_or(0),
    )
}

fn in_shop(f: &Value, side: &str, pod: &str) -> bool {
    text(f, &[side, "namespace"]) == NAMESPACE && text(f, &[side, "pod_name"]) == pod
}

// ---- DNS ----

fn dns_policy(server: Ipv4Addr) -> String {
    format!(
        "\
- endpointSelector:
    matchLabels: {{app: client}}
  egress:
  - toCIDR: [{server}/32]
    toPorts:
    - ports: [{{port: \"53\", protocol: ANY}}]
      rules:
        dns:
        - matchPattern: \"*.allowed.test\"
"
    )
}

/// `dig`'s status line from the pod ("NOERROR", "REFUSED", ...).
fn dig(pod: &ClusterPod, server: Ipv4Addr, name: &str, tcp: bool) -> String {
    let at = format!("@{server}");
    let mut args = vec!["dig", "+time=2", "+tries=1", &at, name];
    if tcp {
        args.push("+tcp");
    }
    let out = String::from_utf8_lossy(&pod.exec(&args).stdout).into_owned();
    out.split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("no answer")
        .to_string()
}

fn dns(f: &Value) -> &Value {
    field(field(f, "l7"), "dns")
}

fn query(f: &Value) -> &str {
    text(dns(f), &["query"]).trim_end_matches('.')
}

#[test]
fn dns_queries_and_answers_are_l7_flows_with_their_verdicts() -> Result<()> {
    let (socket, args) = hubble_socket("hubble-l7-dns");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cluster = Cluster::start_with_agent_args(
        ClusterOptions {
            nodes: 1,
            etcd_members: 0,
        },
        &args,
    )?;
    let agent = cluster.node(0).agent();
    let host = cluster.outside_host("dns")?;
    let _dnsmasq = DnsServer::start(
        &host,
        agent.temp_dir(),
        &DnsServerConfig {
            hosts: vec![
                ("web.allowed.test".into(), Ipv4Addr::new(198, 18, 0, 1)),
                ("denied.test".into(), Ipv4Addr::new(198, 18, 0, 12)),
            ],
            ttl: 60,
            ..Default::default()
        },
    )?;
    let ns = format!("k8s:io.kubernetes.pod.namespace={NAMESPACE}");
    let client = cluster.pod(0, "client", &["k8s:app=client", &ns])?;
    let server = host.ip();
    cluster.import_policy(&dns_policy(server))?;
    let mut status = String::new();
    ensure!(
        eventually(Duration::from_secs(10), Duration::from_millis(200), || {
            status = dig(&client, server, "web.allowed.test", false);
            status == "NOERROR"
        }),
        "web.allowed.test over UDP: {status}\n{}",
        cluster.describe()
    );
    let status = dig(&client, server, "web.allowed.test", true);
    ensure!(status == "NOERROR", "web.allowed.test over TCP: {status}");
    let status = dig(&client, server, "denied.test", false);
    ensure!(status == "REFUSED", "denied.test: {status}");
    std::thread::sleep(Duration::from_millis(500));

    let hubble = real_hubble(&socket);
    let all = l7_flows(agent, &socket, hubble.as_ref());
    let of = |name: &str, kind: &str, transport: &str| -> Vec<&Value> {
        all.iter()
            .filter(|f| {
                query(f) == name && text(f, &["l7", "type"]) == kind && l4(f).0 == transport
            })
            .collect()
    };
    let server_ip = server.to_string();
    // The allowed query over UDP: the request, client -> server:53.
    let requests = of("web.allowed.test", "REQUEST", "UDP");
    ensure!(!requests.is_empty(), "no UDP request flow in {all:#?}");
    let request = requests[requests.len() - 1];
    ensure!(
        text(request, &["verdict"]) == "FORWARDED"
            && text(request, &["Type"]) == "L7"
            && in_shop(request, "source", "client")
            && text(request, &["IP", "destination"]) == server_ip
            && l4(request).2 == 53
            && text(request, &["traffic_direction"]) == "EGRESS",
        "{request:#}"
    );
    // Outside the cluster, the server's side is its identity and labels.
    let dst = field(request, "destination");
    ensure!(
        field(dst, "identity").as_u64().unwrap_or(0) != 0
            && field(dst, "labels")
                .as_array()
                .is_some_and(|l| !l.is_empty()),
        "the server's side: {dst:#}"
    );
    ensure!(
        dns(request)["qtypes"] == serde_json::json!(["A"]),
        "{request:#}"
    );
    // Its answer: forwarded, the address, NOERROR (rcode 0), over UDP.
    let answers = of("web.allowed.test", "RESPONSE", "UDP");
    ensure!(!answers.is_empty(), "no UDP response flow in {all:#?}");
    let answer = answers[answers.len() - 1];
    ensure!(
        text(answer, &["verdict"]) == "FORWARDED"
            && dns(answer)["ips"] == serde_json::json!(["198.18.0.1"])
            && dns(answer)["rcode"].as_u64().unwrap_or(0) == 0
            && dns(answer)["ttl"].as_u64() == Some(60),
        "{answer:#}"
    );
    // ... from the server to the pod, as Cilium's DNS proxy logs answers.
    ensure!(
        text(answer, &["IP", "source"]) == server_ip
            && in_shop(answer, "destination", "client")
            && l4(answer).1 == 53
            && l4(answer).2 == l4(request).1
            && field(answer, "is_reply") == true,
        "the answer goes from the server to the client: {answer:#}"
    );
    // Over TCP, the flows say TCP.
    ensure!(
        !of("web.allowed.test", "REQUEST", "TCP").is_empty()
            && !of("web.allowed.test", "RESPONSE", "TCP").is_empty(),
        "no TCP flows for the query over TCP in {all:#?}"
    );
    // The denied name: a dropped request that says REFUSED, no answer.
    let refused = of("denied.test", "REQUEST", "UDP");
    ensure!(refused.len() == 1, "denied.test requests: {refused:#?}");
    let refused = refused[0];
    ensure!(
        text(refused, &["verdict"]) == "DROPPED"
            && dns(refused)["rcode"].as_u64() == Some(5)
            && in_shop(refused, "source", "client"),
        "{refused:#}"
    );
    ensure!(of("denied.test", "RESPONSE", "UDP").is_empty());

    // `--protocol dns` is exactly these flows.
    let until = now_rfc3339();
    let dns_only = cilium_flows_json(
        agent,
        &socket,
        &["--since", "1h", "--until", &until, "--protocol", "dns"],
    );
    ensure!(dns_only.len() == all.len(), "--protocol dns: {dns_only:#?}");
    let compact = cilium_flows(
        agent,
        &socket,
        &["--since", "1h", "--until", &until, "--type", "l7"],
    );
    eprintln!("{compact}");
    ensure!(
        compact
            .lines()
            .any(|l| l.contains("dns-request proxy DROPPED") && l.contains("denied.test")),
        "{compact}"
    );
    let dir = socket.parent().unwrap().to_path_buf();
    drop(cluster);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

// ---- Kafka ----

const KAFKA_POLICY: &str = "\
- endpointSelector:
    matchLabels: {app: kafka}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: producer}
    toPorts:
    - ports: [{port: \"9092\", protocol: TCP}]
      rules:
        kafka:
        - role: produce
          topic: orders
";

fn kafka(f: &Value) -> &Value {
    field(field(f, "l7"), "kafka")
}

#[test]
fn kafka_produce_to_an_allowed_and_a_denied_topic_are_l7_flows() -> Result<()> {
    let (socket, args) = hubble_socket("hubble-l7-kafka");
    let ns = format!("k8s:io.kubernetes.pod.namespace={NAMESPACE}");
    let scene = kafka::KafkaScene::start_with(
        AgentOptions {
            extra_args: args,
            ..AgentOptions::default().with_unique_range()
        },
        &[&ns],
    )?;
    l7_support::apply_policy(&scene.agent, &[&scene.kafka], KAFKA_POLICY)?;
    let out = scene.produce(&scene.producer, "orders", "order-1")?;
    ensure!(
        out.status.success(),
        "producing to orders: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        l7_support::proxy_report(&scene.agent)
    );
    let out = scene.produce(&scene.producer, "secrets", "plans")?;
    ensure!(!out.status.success(), "producing to secrets must fail");
    std::thread::sleep(Duration::from_millis(500));

    let hubble = real_hubble(&socket);
    let all = l7_flows(&scene.agent, &socket, hubble.as_ref());
    let about = |topic: &str| -> Vec<&Value> {
        all.iter()
            .filter(|f| text(kafka(f), &["topic"]) == topic)
            .collect()
    };
    let both_pods = |f: &Value| {
        in_shop(f, "source", "producer")
            && in_shop(f, "destination", "kafka")
            && text(f, &["Type"]) == "L7"
            && l4(f).0 == "TCP"
            && l4(f).2 == u64::from(kafka::BROKER_PORT)
    };
    let allowed = about("orders");
    ensure!(
        allowed
            .iter()
            .any(|f| text(kafka(f), &["api_key"]) == "produce"),
        "no produce to orders in {all:#?}"
    );
    for f in &allowed {
        ensure!(
            text(f, &["verdict"]) == "FORWARDED"
                && both_pods(f)
                && field(kafka(f), "error_code").as_i64().unwrap_or(0) == 0,
            "{f:#}"
        );
    }
    // The client gives up on the topic at its first refusal (metadata or
    // produce): each request about it is a dropped flow.
    let denied = about("secrets");
    ensure!(!denied.is_empty(), "no request about secrets in {all:#?}");
    for f in &denied {
        ensure!(
            text(f, &["verdict"]) == "DROPPED"
                && both_pods(f)
                && field(kafka(f), "error_code").as_i64() == Some(29),
            "{f:#}"
        );
    }
    // `--protocol kafka --verdict DROPPED` is exactly the refused requests.
    let until = now_rfc3339();
    let dropped = cilium_flows_json(
        &scene.agent,
        &socket,
        &[
            "--since",
            "1h",
            "--until",
            &until,
            "--protocol",
            "kafka",
            "--verdict",
            "DROPPED",
        ],
    );
    let want: Vec<Value> = denied.into_iter().cloned().collect();
    ensure!(
        dropped == want,
        "--protocol kafka --verdict DROPPED: {dropped:#?}"
    );
    let dir = socket.parent().unwrap().to_path_buf();
    drop(scene);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

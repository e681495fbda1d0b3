//! What shows addresses shows IPv6 ones (issue 18): a dual-stack pod's
//! IPv6 drop appears in `cilium monitor` with its IPv6 addresses (bracketed
//! before a port, as Cilium prints them) and in `cilium flows -o json` with
//! `IP.ipVersion` IPv6; an allowed IPv6 connection's entries are in
//! `cilium bpf ct list global`, and the pods' IPv6 addresses in
//! `cilium bpf ipcache list`, next to the IPv4 ones.
//!
//! Needs root.

#[path = "hubble/support.rs"]
mod support;

use std::net::IpAddr;
use std::time::Duration;

use support::{cilium_flows_json, field, text};
use testbed::monitor::CliMonitor;
use testbed::{eventually, Agent, AgentOptions, Pod};

/// web takes TCP 80 from client, nothing else.
const POLICY: &str = r#"
- endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"#;

#[test]
fn ipv6_flows_show_their_ipv6_addresses_in_monitor_flows_and_maps() {
    let dir = std::env::temp_dir().join(format!("dual-stack-observe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("hubble.sock");
    let agent = Agent::start_with(
        AgentOptions {
            extra_args: vec![
                "--enable-ipv6=true".into(),
                "--enable-hubble".into(),
                "true".into(),
                "--hubble-socket-path".into(),
                socket.display().to_string(),
            ],
            ..Default::default()
        }
        .with_unique_range(),
    )
    .expect("agent starts");
    let client = Pod::create_dual_stack(&agent, "client", &["k8s:app=client"]).expect("pod");
    let web = Pod::create_dual_stack(&agent, "web", &["k8s:app=web"]).expect("pod");
    let _servers = [80, 8080].map(|port| web.serve_tcp(port).expect("tcp server"));
    let (client6, web6) = (client.ip6().expect("IPv6"), web.ip6().expect("IPv6"));

    agent
        .import_policy(POLICY, &[&client, &web])
        .expect("policy realized");

    // The drop, as `cilium monitor` prints it.
    let monitor = CliMonitor::start(&agent, &["--type", "drop"]).expect("cilium monitor");
    let web6_ip = IpAddr::from(web6);
    assert!(!client.tcp_connect_ip(web6_ip, 8080, Duration::from_millis(500)));
    let wanted = format!("-> [{web6}]:8080 tcp SYN");
    let line = monitor
        .wait_for_line(
            |l| l.contains(&wanted) && l.contains(&format!(": [{client6}]:")),
            Duration::from_secs(5),
        )
        .unwrap_or_else(|| panic!("no drop line with {wanted:?} from [{client6}]"));
    assert!(line.contains("xx drop (Policy denied)"), "{line}");

    // The same drop as a Hubble flow.
    let dropped = eventually(Duration::from_secs(5), Duration::from_millis(100), || {
        cilium_flows_json(&agent, &socket, &["--verdict", "DROPPED"])
            .iter()
            .any(|f| {
                text(f, &["IP", "ipVersion"]) == "IPv6"
                    && text(f, &["IP", "source"]) == client6.to_string()
                    && text(f, &["IP", "destination"]) == web6.to_string()
                    && field(field(field(f, "l4"), "TCP"), "destination_port").as_u64()
                        == Some(8080)
            })
    });
    let flows = cilium_flows_json(&agent, &socket, &[]);
    assert!(
        dropped,
        "no IPv6 flow {client6} -> {web6}:8080 dropped:\n{flows:#?}"
    );
    // IPv4 flows keep saying IPv4.
    assert!(client.tcp_connect_ip(web.ip().into(), 80, Duration::from_secs(2)));
    let v4 = eventually(Duration::from_secs(5), Duration::from_millis(100), || {
        cilium_flows_json(&agent, &socket, &[]).iter().any(|f| {
            text(f, &["IP", "destination"]) == web.ip().to_string()
                && text(f, &["IP", "ipVersion"]) == "IPv4"
        })
    });
    assert!(v4, "no IPv4 flow to {}", web.ip());

    // An allowed IPv6 connection in the conntrack table, both directions.
    assert!(client.tcp_connect_ip(web6_ip, 80, Duration::from_secs(2)));
    let ct = agent
        .cli_ok(&["bpf", "ct", "list", "global"])
        .expect("ct list");
    let to_web = format!(" -> [{web6}]:80 ");
    for dir in ["OUT", "IN"] {
        assert!(
            ct.lines()
                .any(|l| l.starts_with(&format!("TCP {dir} [{client6}]:")) && l.contains(&to_web)),
            "no {dir} entry [{client6}] -> [{web6}]:80 in\n{ct}"
        );
    }

    // Both of web's addresses in the ipcache, with its identity.
    let identity = web.endpoint(&agent).expect("endpoint").status.identity.id;
    let ipcache = agent
        .cli_ok(&["bpf", "ipcache", "list"])
        .expect("ipcache list");
    for prefix in [format!("{}/32", web.ip()), format!("{web6}/128")] {
        assert!(
            ipcache.lines().any(|l| l.starts_with(&format!("{prefix} "))
                && l.contains(&format!("identity={identity} "))),
            "{prefix} with identity {identity} not in\n{ipcache}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! Service names on flows (issue 19): a ClusterIP service with a name and
//! namespace (Cilium's `flags.name` / `flags.namespace` in the REST model,
//! what the Kubernetes watcher sets) in front of a pod. Connections to its
//! frontend are flows whose `destination_service` names it (the backend's
//! conntrack entry says which service it was balanced for), their replies
//! come from the frontend and name it as `source_service`; a connection
//! straight to the backend's address names no service. `cilium flows -o
//! json` and the real `hubble observe` agree.
//!
//! Needs root and curl; the comparison with `hubble observe` is skipped
//! (saying so) when the hubble binary is absent.

#[path = "hubble/support.rs"]
mod support;

use std::time::Duration;

use api::{BackendAddress, FrontendAddress, ServiceFlags, ServiceSpec};
use serde_json::Value;
use support::{cilium_flows_json, field, hubble_binary, text, Hubble};
use testbed::{eventually, Agent, AgentOptions, Pod};

const FRONTEND: &str = "10.96.0.10";
const SERVICE_ID: u16 = 7;

fn service(f: &Value, side: &str) -> (String, String) {
    let s = field(f, side);
    (
        text(s, &["namespace"]).to_string(),
        text(s, &["name"]).to_string(),
    )
}

fn curl(pod: &Pod, ip: &str) -> String {
    let url = format!("http://{ip}:80/");
    let out = pod.exec(&[
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

#[test]
fn flows_to_a_named_cluster_ip_service_name_it() {
    let dir = std::env::temp_dir().join(format!("hubble-services-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("hubble.sock");
    let agent = Agent::start_with(AgentOptions {
        extra_args: vec![
            "--enable-hubble".into(),
            "true".into(),
            "--hubble-socket-path".into(),
            socket.display().to_string(),
            // Balanced by the packets' programs (the conntrack entry keeps
            // the service): the socket balancer leaves no trace in packets.
            "--enable-socket-lb".into(),
            "false".into(),
        ],
        ..AgentOptions::default().with_unique_range()
    })
    .unwrap();
    let ns = "k8s:io.kubernetes.pod.namespace=shop";
    let client = Pod::create(&agent, "client", &["k8s:app=client", ns]).unwrap();
    let server = Pod::create(&agent, "server", &["k8s:app=server", ns]).unwrap();
    let _web = server.serve_http(80).unwrap();
    let spec = ServiceSpec {
        id: u32::from(SERVICE_ID),
        frontend_address: FrontendAddress {
            ip: FRONTEND.into(),
            port: 80,
            protocol: "TCP".into(),
        },
        backend_addresses: vec![BackendAddress {
            ip: server.ip().to_string(),
            port: 80,
            ..Default::default()
        }],
        flags: ServiceFlags {
            kind: "ClusterIP".into(),
            name: "web".into(),
            namespace: "shop".into(),
        },
    };
    agent.client().service_put(SERVICE_ID, &spec).unwrap();
    let stored = agent.client().service_get(SERVICE_ID).unwrap();
    assert_eq!(
        (
            stored.spec.flags.name.as_str(),
            stored.spec.flags.namespace.as_str()
        ),
        ("web", "shop")
    );

    assert!(
        eventually(
            Duration::from_secs(10),
            Duration::from_millis(200),
            || curl(&client, FRONTEND) == "200"
        ),
        "the ClusterIP must answer"
    );
    // Straight to the backend, after the service's flows.
    std::thread::sleep(Duration::from_millis(300));
    let split = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(curl(&client, &server.ip().to_string()), "200");
    std::thread::sleep(Duration::from_millis(500));

    let until = date(&["+%Y-%m-%dT%H:%M:%S.%3NZ"]);
    let window = ["--since", "1h", "--until", until.as_str()];
    let all = cilium_flows_json(&agent, &socket, &window);
    assert!(!all.is_empty(), "no flows until {until}");
    let web = ("shop".to_string(), "web".to_string());
    let to_service: Vec<&Value> = all
        .iter()
        .filter(|f| service(f, "destination_service") == web)
        .collect();
    assert!(
        !to_service.is_empty(),
        "no flow names web as its destination: {all:#?}"
    );
    for f in &to_service {
        // After translation: the backend, the pod behind the service.
        assert_eq!(text(f, &["IP", "destination"]), server.ip().to_string());
        assert_eq!(text(f, &["destination", "pod_name"]), "server", "{f:#}");
    }
    let from_service: Vec<&Value> = all
        .iter()
        .filter(|f| service(f, "source_service") == web)
        .collect();
    assert!(
        from_service
            .iter()
            .any(|f| text(f, &["IP", "source"]) == FRONTEND),
        "no reply from the frontend names web: {all:#?}"
    );
    // Flows of the direct connection (after `split`) name no service.
    let direct: Vec<&Value> = all
        .iter()
        .filter(|f| parse_time(text(f, &["time"])) > split)
        .collect();
    assert!(!direct.is_empty(), "no flows of the direct connection");
    for f in &direct {
        assert!(
            field(f, "destination_service").is_null() && field(f, "source_service").is_null(),
            "a direct connection names a service: {f:#}"
        );
    }

    match hubble_binary() {
        Some(bin) => {
            let h = Hubble {
                bin,
                socket: socket.clone(),
            };
            assert_eq!(h.observe(&window), all, "hubble observe -o json");
        }
        None => eprintln!("SKIPPED (comparison with hubble observe): no hubble binary"),
    }
    drop(agent);
    let _ = std::fs::remove_dir_all(dir);
}

/// `date -u ARGS`' output.
fn date(args: &[&str]) -> String {
    let out = std::process::Command::new("date")
        .arg("-u")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An RFC 3339 UTC timestamp ("2026-12-07T12:26:42.262Z") as a time.
fn parse_time(text: &str) -> std::time::SystemTime {
    let secs: f64 = date(&["-d", text, "+%s.%N"]).parse().unwrap();
    std::time::UNIX_EPOCH + Duration::from_secs_f64(secs)
}

const FRONTEND6: &str = "fd00:96::a";

/// The IPv6 twin, per packet as above: dual-stack pods, an IPv6 frontend;
/// the backend's IPv6 conntrack entry names the service.
#[test]
fn flows_to_a_named_ipv6_cluster_ip_service_name_it() {
    let dir = std::env::temp_dir().join(format!("hubble-services6-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("hubble.sock");
    let agent = Agent::start_with(AgentOptions {
        extra_args: vec![
            "--enable-hubble".into(),
            "true".into(),
            "--hubble-socket-path".into(),
            socket.display().to_string(),
            "--enable-socket-lb".into(),
            "false".into(),
        ],
        ..AgentOptions::default().with_unique_range()
    })
    .unwrap();
    let ns = "k8s:io.kubernetes.pod.namespace=shop";
    let client = Pod::create_dual_stack(&agent, "client", &["k8s:app=client", ns]).unwrap();
    let server = Pod::create_dual_stack(&agent, "server", &["k8s:app=server", ns]).unwrap();
    let server6 = server.ip6().unwrap();
    let _web = server.serve_http(80).unwrap();
    let spec = ServiceSpec {
        id: u32::from(SERVICE_ID),
        frontend_address: FrontendAddress {
            ip: FRONTEND6.into(),
            port: 80,
            protocol: "TCP".into(),
        },
        backend_addresses: vec![BackendAddress {
            ip: server6.to_string(),
            port: 80,
            ..Default::default()
        }],
        flags: ServiceFlags {
            kind: "ClusterIP".into(),
            name: "web6".into(),
            namespace: "shop".into(),
        },
    };
    agent.client().service_put(SERVICE_ID, &spec).unwrap();
    // The pods' neighbour discovery made flows already: the flow store's
    // view of the services (refreshed every 2 s) predates this one.
    std::thread::sleep(Duration::from_millis(2100));
    let frontend = format!("[{FRONTEND6}]");
    assert!(
        eventually(
            Duration::from_secs(10),
            Duration::from_millis(200),
            || curl(&client, &frontend) == "200"
        ),
        "the IPv6 ClusterIP must answer"
    );
    std::thread::sleep(Duration::from_millis(500));

    let until = date(&["+%Y-%m-%dT%H:%M:%S.%3NZ"]);
    let all = cilium_flows_json(
        &agent,
        &socket,
        &["--since", "1h", "--until", until.as_str()],
    );
    let web = ("shop".to_string(), "web6".to_string());
    let to_service: Vec<&Value> = all
        .iter()
        .filter(|f| service(f, "destination_service") == web)
        .collect();
    assert!(
        !to_service.is_empty(),
        "no flow names web6 as its destination: {all:#?}"
    );
    for f in &to_service {
        assert_eq!(
            text(f, &["IP", "destination"]),
            server6.to_string(),
            "{f:#}"
        );
        assert_eq!(text(f, &["IP", "ipVersion"]), "IPv6", "{f:#}");
    }
    assert!(
        all.iter()
            .filter(|f| service(f, "source_service") == web)
            .any(|f| text(f, &["IP", "source"]) == FRONTEND6),
        "no reply from the IPv6 frontend names web6: {all:#?}"
    );
    drop(agent);
    let _ = std::fs::remove_dir_all(dir);
}

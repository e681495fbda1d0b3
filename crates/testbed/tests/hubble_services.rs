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

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use api::{BackendAddress, FrontendAddress, ServiceFlags, ServiceSpec};
use serde_json::Value;
use support::{cilium_flows_json, field, hubble_socket, now_rfc3339, real_hubble, text};
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
    let (agent, socket) = start_agent("hubble-services");
    let ns = "k8s:io.kubernetes.pod.namespace=shop";
    let client = Pod::create(&agent, "client", &["k8s:app=client", ns]).unwrap();
    let server = Pod::create(&agent, "server", &["k8s:app=server", ns]).unwrap();
    let _web = server.serve_http(80).unwrap();
    put_cluster_ip(&agent, "web", FRONTEND, server.ip().into());
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

    let until = now_rfc3339();
    let window = ["--since", "1h", "--until", until.as_str()];
    let all = cilium_flows_json(&agent, &socket, &window);
    assert!(!all.is_empty(), "no flows until {until}");
    let to_service = naming(&all, "destination_service", "web");
    assert!(
        !to_service.is_empty(),
        "no flow names web as its destination: {all:#?}"
    );
    for f in &to_service {
        // After translation: the backend, the pod behind the service.
        assert_eq!(text(f, &["IP", "destination"]), server.ip().to_string());
        assert_eq!(text(f, &["destination", "pod_name"]), "server", "{f:#}");
    }
    assert!(
        naming(&all, "source_service", "web")
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

    if let Some(hubble) = real_hubble(&socket) {
        assert_eq!(hubble.observe(&window), all, "hubble observe -o json");
    }
    finish(agent, &socket);
}

/// An agent serving Hubble on a private socket (returned), balancing
/// services by the packets' programs: the conntrack entry keeps the
/// service, where the socket balancer leaves no trace in packets.
fn start_agent(test: &str) -> (Agent, PathBuf) {
    let (socket, mut extra_args) = hubble_socket(test);
    extra_args.extend(["--enable-socket-lb".into(), "false".into()]);
    let agent = Agent::start_with(AgentOptions {
        extra_args,
        ..AgentOptions::default().with_unique_range()
    })
    .unwrap();
    (agent, socket)
}

/// Stops the agent and removes the socket's directory.
fn finish(agent: Agent, socket: &Path) {
    drop(agent);
    let _ = std::fs::remove_dir_all(socket.parent().unwrap());
}

/// ClusterIP service shop/`name` (id [`SERVICE_ID`]): `frontend`:80 to
/// `backend`:80.
fn put_cluster_ip(agent: &Agent, name: &str, frontend: &str, backend: IpAddr) {
    let spec = ServiceSpec {
        id: u32::from(SERVICE_ID),
        frontend_address: FrontendAddress {
            ip: frontend.into(),
            port: 80,
            protocol: "TCP".into(),
        },
        backend_addresses: vec![BackendAddress {
            ip: backend.to_string(),
            port: 80,
            ..Default::default()
        }],
        flags: ServiceFlags {
            kind: "ClusterIP".into(),
            name: name.into(),
            namespace: "shop".into(),
        },
    };
    agent.client().service_put(SERVICE_ID, &spec).unwrap();
}

/// The flows whose `side` (`destination_service` or `source_service`)
/// names service shop/`name`.
fn naming<'a>(all: &'a [Value], side: &str, name: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|f| service(f, side) == ("shop".to_string(), name.to_string()))
        .collect()
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
    let (agent, socket) = start_agent("hubble-services6");
    let ns = "k8s:io.kubernetes.pod.namespace=shop";
    let client = Pod::create_dual_stack(&agent, "client", &["k8s:app=client", ns]).unwrap();
    let server = Pod::create_dual_stack(&agent, "server", &["k8s:app=server", ns]).unwrap();
    let server6 = server.ip6().unwrap();
    let _web = server.serve_http(80).unwrap();
    put_cluster_ip(&agent, "web6", FRONTEND6, server6.into());
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

    let until = now_rfc3339();
    let all = cilium_flows_json(
        &agent,
        &socket,
        &["--since", "1h", "--until", until.as_str()],
    );
    let to_service = naming(&all, "destination_service", "web6");
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
        naming(&all, "source_service", "web6")
            .iter()
            .any(|f| text(f, &["IP", "source"]) == FRONTEND6),
        "no reply from the IPv6 frontend names web6: {all:#?}"
    );
    finish(agent, &socket);
}

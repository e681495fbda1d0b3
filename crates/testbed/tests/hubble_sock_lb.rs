//! Service names under socket load balancing (issue 19). With the socket
//! LB on, connect() already goes to the backend, so no packet ever carries
//! the ClusterIP. As in Cilium, the translation itself is a flow (type
//! SOCK, Cilium's trace-sock event): `pre-xlate-fwd` (TRACED) to the
//! frontend names the service as `destination_service`, `post-xlate-fwd`
//! (TRANSLATED) goes to the backend pod, and curl's getpeername() is given
//! the frontend back (`post-xlate-rev`, the frontend as source naming the
//! service as `source_service`). The packets' own flows to the backend name
//! no service: Cilium's L3/L4 flows name a service only by its frontend
//! address, and the backend's conntrack entry has no service (no packet
//! was translated). The real `hubble observe` lists the same flows and
//! prints the translation points.
//!
//! The agent's socket LB is attached to a cgroup of the test's own; curl
//! runs in the client pod's network namespace and in that cgroup. Needs
//! root, curl and cgroup v2 at /sys/fs/cgroup/unified.

#[path = "hubble/support.rs"]
mod support;

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use api::{BackendAddress, FrontendAddress, ServiceFlags, ServiceSpec};
use serde_json::Value;
use support::{cilium_flows_json, field, hubble_socket, now_rfc3339, real_hubble, text};
use testbed::{unique, Agent, AgentOptions, Pod};

const CGROUP2: &str = "/sys/fs/cgroup/unified";
const FRONTEND: &str = "10.96.0.30";
const SERVICE_ID: u16 = 30;

/// A cgroup for the agent's socket LB, removed on drop.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn create() -> TestCgroup {
        let path = Path::new(CGROUP2).join(format!("cilium-socklb-flows-{}", unique::next_tag()));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TestCgroup(path)
    }

    /// `cmd` joins the cgroup before it execs.
    fn join_on_exec(&self, cmd: &mut Command) {
        let procs = CString::new(self.0.join("cgroup.procs").display().to_string()).unwrap();
        // SAFETY: open/write/close are async-signal-safe; "0" moves the
        // writing process itself.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                Ok(())
            });
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while std::fs::remove_dir(&self.0).is_err() && self.0.exists() && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// curl from `pod`'s network namespace, inside `cgroup`: the HTTP code.
fn curl_in(cgroup: &TestCgroup, pod: &Pod, url: &str) -> String {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", pod.namespace().path().display()))
        .args(["--", "curl", "-s", "--max-time", "3", "-o", "/dev/null"])
        .args(["-w", "%{http_code}", url]);
    cgroup.join_on_exec(&mut cmd);
    let out = cmd.output().expect("running curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn service(f: &Value, side: &str) -> (String, String) {
    let s = field(f, side);
    (
        text(s, &["namespace"]).to_string(),
        text(s, &["name"]).to_string(),
    )
}

fn point(f: &Value) -> &str {
    text(f, &["sock_xlate_point"])
}

/// An agent serving Hubble on a private socket, its socket LB on `cgroup`.
fn agent_with_socket_lb(cgroup: &TestCgroup, test: &str) -> (Agent, PathBuf) {
    let (socket, mut args) = hubble_socket(test);
    args.extend([
        "--enable-socket-lb".into(),
        "true".into(),
        "--cgroup-root".into(),
        cgroup.0.display().to_string(),
    ]);
    let agent = Agent::start_with(AgentOptions {
        extra_args: args,
        ..AgentOptions::default().with_unique_range()
    })
    .unwrap();
    (agent, socket)
}

/// shop/web: `frontend`:80 over `backend`:80.
fn put_web_service(agent: &Agent, frontend: &str, backend: &str) {
    let spec = ServiceSpec {
        id: u32::from(SERVICE_ID),
        frontend_address: FrontendAddress {
            ip: frontend.into(),
            port: 80,
            protocol: "TCP".into(),
        },
        backend_addresses: vec![BackendAddress {
            ip: backend.into(),
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
}

#[test]
fn socket_lb_translations_are_sock_flows_naming_the_service() {
    let cgroup = TestCgroup::create();
    let (agent, socket) = agent_with_socket_lb(&cgroup, "hubble-sock-lb");
    let ns = "k8s:io.kubernetes.pod.namespace=shop";
    let client = Pod::create(&agent, "client", &["k8s:app=client", ns]).unwrap();
    let server = Pod::create(&agent, "server", &["k8s:app=server", ns]).unwrap();
    let _web = server.serve_http(80).unwrap();
    put_web_service(&agent, FRONTEND, &server.ip().to_string());
    // The flow store's view of the services is refreshed every 2 s.
    std::thread::sleep(Duration::from_millis(2100));
    let since = now_rfc3339();
    let url = format!("http://{FRONTEND}:80/");
    assert_eq!(
        curl_in(&cgroup, &client, &url),
        "200",
        "the ClusterIP must answer"
    );
    std::thread::sleep(Duration::from_millis(500));
    let until = now_rfc3339();
    let window = ["--since", since.as_str(), "--until", until.as_str()];

    let all = cilium_flows_json(&agent, &socket, &window);
    let sock: Vec<&Value> = all
        .iter()
        .filter(|f| text(f, &["Type"]) == "SOCK")
        .collect();
    let web = ("shop".to_string(), "web".to_string());
    let pre = sock
        .iter()
        .find(|f| point(f) == "SOCK_XLATE_POINT_PRE_DIRECTION_FWD")
        .unwrap_or_else(|| panic!("no pre-xlate-fwd flow: {all:#?}"));
    assert_eq!(text(pre, &["verdict"]), "TRACED");
    assert_eq!(text(pre, &["IP", "destination"]), FRONTEND);
    assert_eq!(service(pre, "destination_service"), web, "{pre:#}");
    assert_eq!(text(pre, &["source", "pod_name"]), "client", "{pre:#}");
    assert_eq!(text(pre, &["IP", "source"]), client.ip().to_string());
    assert_eq!(field(pre, "event_type")["type"], 7, "Cilium's TraceSock");
    assert_ne!(field(pre, "socket_cookie"), &Value::Null, "{pre:#}");

    let post = sock
        .iter()
        .find(|f| point(f) == "SOCK_XLATE_POINT_POST_DIRECTION_FWD")
        .unwrap_or_else(|| panic!("no post-xlate-fwd flow: {all:#?}"));
    assert_eq!(text(post, &["verdict"]), "TRANSLATED");
    assert_eq!(text(post, &["IP", "destination"]), server.ip().to_string());
    assert_eq!(
        text(post, &["destination", "pod_name"]),
        "server",
        "{post:#}"
    );
    assert_eq!(
        field(post, "socket_cookie"),
        field(pre, "socket_cookie"),
        "one socket"
    );

    let rev = sock
        .iter()
        .find(|f| point(f) == "SOCK_XLATE_POINT_POST_DIRECTION_REV")
        .unwrap_or_else(|| panic!("curl's getpeername() made no post-xlate-rev flow: {all:#?}"));
    assert_eq!(text(rev, &["IP", "source"]), FRONTEND);
    assert_eq!(service(rev, "source_service"), web, "{rev:#}");
    assert_eq!(text(rev, &["destination", "pod_name"]), "client");

    // The packets went to the backend only; as in Cilium they name no service.
    let packets: Vec<&Value> = all
        .iter()
        .filter(|f| text(f, &["Type"]) == "L3_L4")
        .collect();
    assert!(
        packets
            .iter()
            .any(|f| text(f, &["IP", "destination"]) == server.ip().to_string()),
        "no packet flow to the backend: {all:#?}"
    );
    assert!(
        packets
            .iter()
            .all(|f| text(f, &["IP", "destination"]) != FRONTEND
                && text(f, &["IP", "source"]) != FRONTEND),
        "a packet carried the ClusterIP: {all:#?}"
    );

    if let Some(hubble) = real_hubble(&socket) {
        assert_eq!(hubble.observe(&window), all, "hubble observe -o json");
        let by_type = hubble.observe(&[&["--type", "trace-sock"][..], &window].concat());
        assert_eq!(
            by_type.iter().collect::<Vec<_>>(),
            sock,
            "hubble observe --type trace-sock: the SOCK flows"
        );
        let translated = hubble.observe(&[&["--verdict", "TRANSLATED"][..], &window].concat());
        assert!(
            !translated.is_empty() && translated.iter().all(|f| text(f, &["Type"]) == "SOCK"),
            "hubble observe --verdict TRANSLATED: {translated:#?}"
        );
        let compact = hubble.run(&[&["observe", "-o", "compact"][..], &window].concat());
        for expected in [
            "pre-xlate-fwd TRACED (TCP)",
            "post-xlate-fwd TRANSLATED (TCP)",
        ] {
            assert!(compact.contains(expected), "{expected:?} in:\n{compact}");
        }
        let ours =
            support::cilium_flows(&agent, &socket, &[&["-o", "compact"][..], &window].concat());
        assert_eq!(
            ours, compact,
            "cilium flows -o compact prints what hubble prints"
        );
    }
    drop(agent);
    let _ = std::fs::remove_dir_all(socket.parent().unwrap());
}

const FRONTEND6: &str = "fd00:96::30";

/// The IPv6 twin: connect6 to an IPv6 ClusterIP; the source is the client
/// pod's IPv6 address.
#[test]
fn ipv6_socket_lb_translations_are_sock_flows_naming_the_service() {
    let cgroup = TestCgroup::create();
    let (agent, socket) = agent_with_socket_lb(&cgroup, "hubble-sock-lb6");
    let ns = "k8s:io.kubernetes.pod.namespace=shop";
    let client = Pod::create_dual_stack(&agent, "client", &["k8s:app=client", ns]).unwrap();
    let server = Pod::create_dual_stack(&agent, "server", &["k8s:app=server", ns]).unwrap();
    let _web = server.serve_http(80).unwrap();
    let server6 = server.ip6().unwrap().to_string();
    put_web_service(&agent, FRONTEND6, &server6);
    std::thread::sleep(Duration::from_millis(2100));
    let since = now_rfc3339();
    let url = format!("http://[{FRONTEND6}]:80/");
    assert_eq!(
        curl_in(&cgroup, &client, &url),
        "200",
        "the IPv6 ClusterIP must answer"
    );
    std::thread::sleep(Duration::from_millis(500));
    let until = now_rfc3339();
    let all = cilium_flows_json(&agent, &socket, &["--since", &since, "--until", &until]);
    let web = ("shop".to_string(), "web".to_string());
    let find = |p: &str| {
        all.iter()
            .find(|f| text(f, &["Type"]) == "SOCK" && point(f) == p)
            .unwrap_or_else(|| panic!("no {p} flow: {all:#?}"))
    };
    let pre = find("SOCK_XLATE_POINT_PRE_DIRECTION_FWD");
    assert_eq!(text(pre, &["IP", "destination"]), FRONTEND6);
    assert_eq!(text(pre, &["IP", "ipVersion"]), "IPv6", "{pre:#}");
    assert_eq!(
        text(pre, &["IP", "source"]),
        client.ip6().unwrap().to_string()
    );
    assert_eq!(text(pre, &["source", "pod_name"]), "client");
    assert_eq!(service(pre, "destination_service"), web, "{pre:#}");
    let post = find("SOCK_XLATE_POINT_POST_DIRECTION_FWD");
    assert_eq!(text(post, &["IP", "destination"]), server6);
    // The backend is a local endpoint found by its IPv6 address.
    fn pod<'a>(f: &'a Value, side: &str) -> (&'a str, &'a str) {
        (text(f, &[side, "namespace"]), text(f, &[side, "pod_name"]))
    }
    let shop = |name: &'static str| ("shop", name);
    assert_eq!(pod(post, "source"), shop("client"), "{post:#}");
    assert_eq!(pod(post, "destination"), shop("server"), "{post:#}");
    // The translated connection's IPv6 packets name both pods, whichever
    // side's program reported them.
    let client6 = client.ip6().unwrap().to_string();
    let packets: Vec<&Value> = all
        .iter()
        .filter(|f| text(f, &["Type"]) == "L3_L4" && text(f, &["IP", "ipVersion"]) == "IPv6")
        .filter(|f| {
            let pods = [client6.as_str(), server6.as_str()];
            pods.contains(&text(f, &["IP", "source"]))
                && pods.contains(&text(f, &["IP", "destination"]))
        })
        .collect();
    assert!(
        packets
            .iter()
            .any(|f| text(f, &["IP", "source"]) == client6
                && text(f, &["IP", "destination"]) == server6),
        "no IPv6 packet flow client -> server: {all:#?}"
    );
    for f in packets {
        let (src, dst) = (text(f, &["IP", "source"]), text(f, &["IP", "destination"]));
        let name = |ip: &str| {
            if ip == client6 {
                shop("client")
            } else {
                shop("server")
            }
        };
        assert_eq!(pod(f, "source"), name(src), "{f:#}");
        assert_eq!(pod(f, "destination"), name(dst), "{f:#}");
    }
    let rev = find("SOCK_XLATE_POINT_POST_DIRECTION_REV");
    assert_eq!(service(rev, "source_service"), web, "{rev:#}");
    drop(agent);
    let _ = std::fs::remove_dir_all(socket.parent().unwrap());
}

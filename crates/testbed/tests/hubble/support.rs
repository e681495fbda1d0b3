//! Shared by the Hubble tests: the agent's Hubble flags on a private
//! socket, the real `hubble` CLI, our `cilium flows`, reading their JSON
//! flows, and scraping the agent's metrics.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use testbed::Agent;

/// The rule every labelled Hubble scene starts from: the shop's server
/// takes UDP 53 from the client. Its labels are those of the
/// CiliumNetworkPolicy shop/shop-dns it would come from, which flows name.
pub const SHOP_DNS_RULE: &str = "\
- endpointSelector:
    matchLabels: {app: server}
  labels: [k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy,
           k8s:io.cilium.k8s.policy.name=shop-dns, k8s:io.cilium.k8s.policy.namespace=shop]
  ingress:
  - fromEndpoints:
    - matchLabels: {app: client}
    toPorts:
    - ports: [{port: \"53\", protocol: UDP}]
";

/// The hubble CLI: `$HUBBLE_BIN`, else where scripts/hubble-cli.sh builds it.
pub fn hubble_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("HUBBLE_BIN") {
        return Some(PathBuf::from(bin)).filter(|p| p.is_file());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/hubble-cli.sh");
    let out = Command::new(script).arg("bin").output().ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    path.is_file().then_some(path)
}

/// A private directory for a test's Hubble socket (not the node's own
/// default path), and the agent flags that serve Hubble there.
pub fn hubble_socket(test: &str) -> (PathBuf, Vec<String>) {
    let dir = std::env::temp_dir().join(format!("{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("hubble.sock");
    let args = vec![
        "--enable-hubble".into(),
        "true".into(),
        "--hubble-socket-path".into(),
        socket.display().to_string(),
    ];
    (socket, args)
}

/// The real hubble CLI on `socket`; `None` (saying the comparisons are
/// skipped) without the binary.
pub fn real_hubble(socket: &Path) -> Option<Hubble> {
    let hubble = hubble_binary().map(|bin| Hubble {
        bin,
        socket: socket.to_path_buf(),
    });
    if hubble.is_none() {
        eprintln!(
            "SKIPPED (comparisons with hubble observe): no hubble binary \
             (make setup, scripts/hubble-cli.sh, or HUBBLE_BIN)"
        );
    }
    hubble
}

/// Now, as RFC 3339 with milliseconds (both CLIs read it).
pub fn now_rfc3339() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%3NZ"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn ok_stdout(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One JSON value per non-empty line; jsonpb's whole response becomes its flow.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v.get("flow").cloned().unwrap_or(v)
        })
        .collect()
}

pub struct Hubble {
    pub bin: PathBuf,
    pub socket: PathBuf,
}

impl Hubble {
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("timeout")
            .arg("30")
            .arg(&self.bin)
            .args(args)
            .arg("--server")
            .arg(format!("unix://{}", self.socket.display()))
            .env("HOME", self.socket.parent().unwrap())
            .output()
            .expect("running hubble");
        ok_stdout(&format!("hubble {args:?}"), out)
    }

    /// `hubble observe -o json ARGS`: one flow per line.
    pub fn observe(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["observe", "-o", "json"];
        all.extend_from_slice(args);
        json_lines(&self.run(&all))
    }
}

/// `cilium flows --server unix://SOCKET ARGS` (our CLI).
pub fn cilium_flows(agent: &Agent, socket: &Path, args: &[&str]) -> String {
    let server = format!("unix://{}", socket.display());
    let mut all = vec!["flows", "--server", &server];
    all.extend_from_slice(args);
    let out = agent.cli(&all);
    ok_stdout(&format!("cilium {all:?}"), out)
}

/// `cilium flows -o json ARGS`: one flow per line.
pub fn cilium_flows_json(agent: &Agent, socket: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    json_lines(&cilium_flows(agent, socket, &all))
}

/// A field by its proto name or its JSON (lowerCamelCase) name.
pub fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    if let Some(x) = v.get(name) {
        return x;
    }
    let mut camel = String::new();
    let mut up = false;
    for c in name.chars() {
        if c == '_' {
            up = true;
        } else if up {
            camel.extend(c.to_uppercase());
            up = false;
        } else {
            camel.push(c);
        }
    }
    v.get(&camel).unwrap_or(&Value::Null)
}

pub fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(v, |v, name| field(v, name))
        .as_str()
        .unwrap_or("")
}

pub fn pods_of(flow: &Value) -> (&str, &str) {
    (
        text(flow, &["source", "pod_name"]),
        text(flow, &["destination", "pod_name"]),
    )
}

pub fn udp_dport(flow: &Value) -> u64 {
    field(field(field(flow, "l4"), "UDP"), "destination_port")
        .as_u64()
        .unwrap_or(0)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` on the agent's Prometheus port (curl de-chunks).
pub fn scrape(port: u16) -> String {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .output()
        .expect("running curl");
    ok_stdout("scraping /metrics", out)
}

/// `series -> value` of an exposition.
pub fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// `promtool check metrics` finds nothing to say.
pub fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt package prometheus, make setup)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
}

//! HTTP/2 and gRPC through the real proxy process: a Python grpcio server and
//! client (pip `grpcio`), and curl with HTTP/2 prior knowledge.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{curl, free_port, Process, Proxy};
use serde_json::json;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc");

fn grpc_server() -> (Process, u16) {
    let mut child = Command::new("python3")
        .arg(format!("{DIR}/server.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with grpcio (pip install grpcio), see /work/notes/proxy.md");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("grpc server did not start: {line:?}"));
    (Process(child), port)
}

fn call(port: u16, method: &str) -> String {
    call_sized(port, method, None)
}

fn call_sized(port: u16, method: &str, size: Option<usize>) -> String {
    let size = size.map(|s| s.to_string());
    let mut args = vec![
        format!("{DIR}/client.py"),
        format!("127.0.0.1:{port}"),
        method.to_string(),
    ];
    args.extend(size);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = common::run("python3", &args);
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn grpc_method_allowed_and_denied() {
    let (_server, upstream_port) = grpc_server();
    let mut proxy = Proxy::start();
    let port = free_port();
    proxy.fixed_redirect(
        port,
        "http",
        &format!("127.0.0.1:{upstream_port}"),
        json!([{"identity": 0, "rules": {"http": [{"method": "POST", "path": "/demo\\.Greeter/Allowed"}]}}]),
    );
    assert_eq!(call(port, "Allowed"), "OK echo:hi");
    // 4 MiB each way: far beyond HTTP/2's initial 64 KiB windows.
    let big = 4 << 20;
    assert_eq!(
        call_sized(port, "Allowed", Some(big)),
        format!("OK {}", big + 5)
    );
    assert_eq!(call(port, "Denied"), "PERMISSION_DENIED Access denied");
    let denied = proxy.control.wait_event(|e| e["verdict"] == "Denied");
    assert_eq!(denied["path"], "/demo.Greeter/Denied");
    assert_eq!(denied["protocol"], "http2");
    let allowed = proxy.control.wait_event(|e| e["verdict"] == "Forwarded");
    assert_eq!(allowed["path"], "/demo.Greeter/Allowed");
    assert_eq!(allowed["status"], 200);
    // Plain HTTP/2 (not gRPC): a denied request gets 403 and the body.
    let url = format!("http://127.0.0.1:{port}/other");
    assert_eq!(
        curl(&["--http2-prior-knowledge", &url]),
        (403, "Access denied\r\n".to_string())
    );
}

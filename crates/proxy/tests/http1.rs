//! HTTP/1.1 through the real proxy process, driven by curl and raw sockets;
//! every body framing in `framing`, other real clients in `clients`.

#[path = "http1/clients.rs"]
mod clients;
mod common;
#[path = "http1/framing.rs"]
mod framing;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{curl, free_port, raw_exchange, EchoServer, Proxy};
use serde_json::json;

fn deathstar_proxy() -> (Proxy, u16, EchoServer) {
    let upstream = EchoServer::start();
    let mut proxy = Proxy::start();
    let port = free_port();
    proxy.fixed_redirect(
        port,
        "http",
        &upstream.addr,
        json!([{"identity": 0, "rules": {"http": [
            {"method": "GET", "path": "/public"},
            {"method": "POST", "path": "/v1/request-landing"},
            {"path": "/token", "headers": ["X-Token: [0-9]+"]},
            {"path": "/presence", "headers": ["X-Present"]},
            {"path": "/literal", "headers": ["X-Mode: strict"]},
            {"method": "GET", "path": "/api/.*", "host": "api\\.example\\.com"},
            {"path": "/open/.*"}
        ]}}]),
    );
    (proxy, port, upstream)
}

#[test]
fn methods_and_anchored_paths() {
    let (mut proxy, port, _upstream) = deathstar_proxy();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let (status, body) = curl(&[&url("/public")]);
    assert_eq!(status, 200);
    assert!(body.starts_with("GET /public HTTP/1.1\r\n"), "{body}");
    assert_eq!(
        curl(&[&url("/publicity")]),
        (403, "Access denied\r\n".to_string())
    );
    assert_eq!(curl(&[&url("/public/x")]).0, 403);
    assert_eq!(curl(&["-X", "PUT", &url("/public")]).0, 403);
    assert_eq!(curl(&["-X", "POST", &url("/v1/request-landing")]).0, 200);
    assert_eq!(curl(&["-X", "PUT", &url("/v1/exhaust-port")]).0, 403);
    assert_eq!(
        curl(&["-H", "Host: api.example.com", &url("/api/v1")]).0,
        200
    );
    assert_eq!(
        curl(&["-H", "Host: apixexample.com", &url("/api/v1")]).0,
        403
    );
    let denied = proxy
        .control
        .wait_event(|e| e["verdict"] == "Denied" && e["path"] == "/publicity");
    assert_eq!(denied["status"], 403);
    assert_eq!(denied["method"], "GET");
    assert_eq!(denied["protocol"], "http");
    assert_eq!(denied["endpoint_id"], 42);
    let allowed = proxy
        .control
        .wait_event(|e| e["verdict"] == "Forwarded" && e["path"] == "/public");
    assert_eq!(allowed["status"], 200);
}

#[test]
fn header_presence_and_value_rules() {
    let (_proxy, port, _upstream) = deathstar_proxy();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    assert_eq!(curl(&["-H", "X-Token: 12345", &url("/token")]).0, 200);
    assert_eq!(curl(&["-H", "X-Token: 12a", &url("/token")]).0, 403);
    assert_eq!(curl(&[&url("/token")]).0, 403);
    assert_eq!(
        curl(&["-H", "X-Present: whatever", &url("/presence")]).0,
        200
    );
    assert_eq!(curl(&[&url("/presence")]).0, 403);
    assert_eq!(curl(&["-H", "X-Mode: strict", &url("/literal")]).0, 200);
    assert_eq!(curl(&["-H", "X-Mode: stricter", &url("/literal")]).0, 403);
}

/// One transfer of a `curl_chain`: status, connections curl opened for it
/// (0 = it reused the previous one), body.
#[derive(Debug)]
struct Transfer {
    status: u16,
    connects: u32,
    body: Vec<u8>,
}

/// Runs the transfers in one curl process, separated by `--next`, so they
/// share a connection while the proxy keeps it alive. Each has a 5 s limit:
/// a request stuck in the proxy fails the test instead of hanging it.
fn curl_chain<S: AsRef<str>>(transfers: &[Vec<S>]) -> Vec<Transfer> {
    const MARK: &str = "\n@@%{http_code} %{num_connects}@@\n";
    let mut args = vec![];
    for (i, transfer) in transfers.iter().enumerate() {
        if i > 0 {
            args.push("--next");
        }
        args.extend(["-s", "-S", "--max-time", "5", "-w", MARK]);
        args.extend(transfer.iter().map(AsRef::as_ref));
    }
    let output = common::run("curl", &args);
    let mut rest = &output.stdout[..];
    let mut results = Vec::new();
    while let Some(start) = rest.windows(3).position(|w| w == b"\n@@") {
        let body = rest[..start].to_vec();
        rest = &rest[start + 3..];
        let end = rest.windows(3).position(|w| w == b"@@\n").unwrap();
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        let (status, connects) = text.split_once(' ').unwrap();
        results.push(Transfer {
            status: status.parse().unwrap(),
            connects: connects.parse().unwrap(),
            body,
        });
        rest = &rest[end + 3..];
    }
    assert_eq!(
        results.len(),
        transfers.len(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    results
}

#[test]
fn keep_alive_connection_survives_a_denied_request() {
    let (_proxy, port, _upstream) = deathstar_proxy();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let results = curl_chain(&[
        vec![url("/public")],
        vec![url("/private")],
        vec![url("/public")],
    ]);
    let codes: Vec<(u16, u32)> = results.iter().map(|t| (t.status, t.connects)).collect();
    // One TCP connection: the second and third requests reuse it.
    assert_eq!(codes, vec![(200, 1), (403, 0), (200, 0)], "{results:?}");
}

#[test]
fn malformed_requests_get_400_and_close_while_others_are_served() {
    let (mut proxy, port, _upstream) = deathstar_proxy();
    // A slow, well-behaved client stays connected throughout.
    let mut steady = TcpStream::connect(("127.0.0.1", port)).unwrap();
    steady
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let big_header = format!(
        "GET /public HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let attacks: Vec<Vec<u8>> = vec![
        b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
        b"POST /public HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde".to_vec(),
        b"POST /v1/request-landing HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".to_vec(),
        b"POST /v1/request-landing HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n".to_vec(),
        b"GET /public HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n".to_vec(),
        b"GET /public HTTP/1.1\nHost: x\n\n".to_vec(),
        big_header.into_bytes(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage".to_vec(),
    ];
    for attack in &attacks {
        let (response, closed) = raw_exchange(port, attack);
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{response:?} for {:?}",
            String::from_utf8_lossy(&attack[..attack.len().min(80)])
        );
        assert!(
            closed,
            "connection left open after {:?}",
            String::from_utf8_lossy(&attack[..40])
        );
    }
    // The steady connection and new ones still work.
    steady
        .write_all(b"GET /public HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    let n = steady.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
    assert_eq!(curl(&[&format!("http://127.0.0.1:{port}/public")]).0, 200);
    let error = proxy.control.wait_event(|e| e["verdict"] == "Error");
    assert_eq!(error["status"], 400);
}

#[test]
fn policy_updates_apply_to_open_connections_and_sync_replaces_state() {
    let (mut proxy, port, upstream) = deathstar_proxy();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut ask = |path: &str| {
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        common::read_response(&mut stream)
    };
    assert!(ask("/other").starts_with("HTTP/1.1 403"));
    // Full-state sync (as after an agent restart): /other allowed for identity 0.
    let reply = proxy.control.command(json!({
        "op": "sync",
        "ipcache": [{"prefix": "127.0.0.0/8", "identity": 1234}],
        "redirects": [{
            "proxy_port": port, "parser": "http", "direction": "ingress", "endpoint_id": 7,
            "fixed_upstream": upstream.addr,
            "policies": [{"identity": 0, "rules": {"http": [{"path": "/other"}]}},
                         {"identity": 1234, "rules": {"http": [{"path": "/by-identity"}]}}]
        }]
    }));
    assert_eq!(reply["type"], "ack", "{reply}");
    assert!(ask("/other").starts_with("HTTP/1.1 200"));
    assert!(ask("/public").starts_with("HTTP/1.1 403"));
    // Identities are resolved when a connection is accepted: this one
    // predates the ipcache entry, a new one gets identity 1234.
    assert!(ask("/by-identity").starts_with("HTTP/1.1 403"));
    assert_eq!(
        curl(&[&format!("http://127.0.0.1:{port}/by-identity")]).0,
        200
    );
    let event = proxy
        .control
        .wait_event(|e| e["path"] == "/by-identity" && e["verdict"] == "Forwarded");
    assert_eq!(event["src_identity"], 1234);
    assert_eq!(event["endpoint_id"], 7);
    // A bad regex is refused and leaves the state as it was.
    let reply = proxy.control.command(json!({
        "op": "upsert_redirect",
        "redirect": {"proxy_port": port, "parser": "http", "direction": "ingress", "endpoint_id": 7,
            "fixed_upstream": upstream.addr,
            "policies": [{"identity": 0, "rules": {"http": [{"path": "(("}]}}]}
    }));
    assert_eq!(reply["type"], "error");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("policies[0].rules.http[0].path"),
        "{reply}"
    );
    assert!(ask("/other").starts_with("HTTP/1.1 200"));
    let status = proxy.control.command(json!({"op": "status"}));
    assert_eq!(status["status"]["redirects"], json!([port]));
    assert_eq!(status["status"]["ipcache_entries"], 1);
    // A new control connection (agent restart) sees the same proxy.
    let mut second = common::Control::connect(&proxy.socket);
    let reply = second.command(json!({"op": "remove_redirect", "proxy_port": port}));
    assert_eq!(reply["type"], "ack");
    // The listener's task ends asynchronously after the ack.
    let closed = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    assert!(closed, "port {port} still accepts after remove_redirect");
    // The open connection outlives its listener.
    assert!(ask("/other").starts_with("HTTP/1.1 200"));
}

#[test]
fn agent_restart_keeps_proxied_connections() {
    let (mut proxy, port, upstream) = deathstar_proxy();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut ask = |path: &str| {
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        common::read_response(&mut stream)
    };
    assert!(ask("/public").starts_with("HTTP/1.1 200"));
    // The agent dies: its control connection goes away.
    let socket = proxy.socket.clone();
    drop(std::mem::replace(
        &mut proxy.control,
        common::Control::connect(&socket),
    ));
    assert!(ask("/public").starts_with("HTTP/1.1 200"));
    // The restarted agent re-sends the full state, with a changed rule.
    let reply = proxy.control.command(json!({
        "op": "sync", "ipcache": [],
        "redirects": [{"proxy_port": port, "parser": "http", "direction": "ingress", "endpoint_id": 42,
            "fixed_upstream": upstream.addr,
            "policies": [{"identity": 0, "rules": {"http": [{"method": "GET", "path": "/public|/v2/.*"}]}}]}]
    }));
    assert_eq!(reply["type"], "ack", "{reply}");
    assert!(ask("/public").starts_with("HTTP/1.1 200"));
    assert!(ask("/v2/x").starts_with("HTTP/1.1 200"));
    assert!(ask("/private").starts_with("HTTP/1.1 403"));
}

#[test]
fn denied_request_expecting_continue_is_answered_at_once() {
    let (_proxy, port, _upstream) = deathstar_proxy();
    let (response, closed) = raw_exchange(
        port,
        b"PUT /private HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n",
    );
    assert!(
        response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{response}"
    );
    assert!(response.ends_with("Access denied\r\n"));
    assert!(closed);
    // Allowed with Expect: the upstream's 100 Continue reaches curl, which
    // then sends the body; it arrives intact.
    let (status, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        "landing-data",
        &format!("http://127.0.0.1:{port}/v1/request-landing"),
    ]);
    assert_eq!(status, 200);
    assert!(body.ends_with("landing-data"), "{body}");
}

//! Real HTTP/1.1 clients other than curl through the proxy: Python's
//! `http.client` and `requests` (`clients.py`), and `wrk` posting empty bodies
//! (`post_empty.lua`). They send `Content-Length: 0` on body-less POST and PUT,
//! which the proxy once held back forever.

use serde_json::Value;

use super::deathstar_proxy;
use crate::common::{run, EchoServer};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http1");

/// Runs `clients.py` with `client`; one JSON object per request it made.
fn python_client(port: u16, client: &str) -> Vec<Value> {
    let port = port.to_string();
    let output = run("python3", &[&format!("{DIR}/clients.py"), &port, client]);
    assert!(
        output.status.success(),
        "{client}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// What `clients.py` asks, in order, and what each answer must be.
fn check_script_results(results: &[Value], upstream: &EchoServer) {
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 403, 200, 200, 201, 200]);
    let body = |i: usize| results[i]["body"].as_str().unwrap();
    assert!(body(0).starts_with("POST /open/empty HTTP/1.1\r\n"));
    assert!(body(3).starts_with("POST /open/chunked HTTP/1.1\r\n"));
    assert_eq!(body(5), "Access denied\r\n");
    assert_eq!((body(7), body(8)), ("", ""));
    assert!(body(9).starts_with("GET /public HTTP/1.1\r\n"));
    let received = upstream.received();
    let seen: Vec<(&str, &str, Option<&str>, usize)> = received
        .iter()
        .map(|r| {
            let length = r.header("content-length");
            let head = &r.head;
            (
                head.method.as_str(),
                head.target.as_str(),
                length,
                r.body.len(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("POST", "/open/empty", Some("0"), 0),
            ("PUT", "/open/none", Some("0"), 0),
            ("POST", "/open/length", Some("100000"), 100000),
            ("POST", "/open/chunked", None, 4),
            ("GET", "/public", None, 0),
            ("POST", "/open/after-deny", Some("0"), 0),
            ("HEAD", "/open/head", None, 0),
            ("POST", "/open/created", Some("0"), 0),
            ("GET", "/public", None, 0),
        ]
    );
    assert_eq!(received[3].body, b"abcd");
    assert_eq!(received[3].header("transfer-encoding"), Some("chunked"));
    // Kept alive throughout, the denied request included.
    assert!(received.iter().all(|r| r.connection == 0));
}

#[test]
fn python_http_client_sends_every_framing_on_one_connection() {
    let (_proxy, port, upstream) = deathstar_proxy();
    let results = python_client(port, "http.client");
    check_script_results(&results, &upstream);
    // http.client reconnects silently when a connection closed: the local
    // port shows it did not.
    assert!(results.iter().all(|r| r["port"] == results[0]["port"]));
}

#[test]
fn python_requests_session_sends_every_framing() {
    let (_proxy, port, upstream) = deathstar_proxy();
    let results = python_client(port, "requests");
    check_script_results(&results, &upstream);
}

/// Runs wrk for a second with `post_empty.lua`; (requests, the summary).
fn wrk_post_empty(url: &str) -> (u64, String) {
    let script = format!("{DIR}/post_empty.lua");
    let output = run(
        "wrk",
        &["-t1", "-c4", "-d1s", "--timeout", "2s", "-s", &script, url],
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count from wrk: {text}"));
    (requests, text)
}

#[test]
fn wrk_posts_with_content_length_zero() {
    let (_proxy, port, upstream) = deathstar_proxy();
    let (requests, text) = wrk_post_empty(&format!("http://127.0.0.1:{port}/open/wrk"));
    assert!(requests >= 20, "{text}");
    assert!(!text.contains("Socket errors"), "{text}");
    assert!(!text.contains("Non-2xx"), "{text}");
    let received = upstream.received();
    assert!(received.len() as u64 >= requests, "{text}");
    assert!(received.iter().all(|r| r.head.method == "POST"
        && r.head.target == "/open/wrk"
        && r.header("content-length") == Some("0")
        && r.body.is_empty()));
    // Kept alive: one upstream connection per wrk connection.
    assert!(received.iter().all(|r| r.connection < 4));
    // Denied, the same requests get 403 on connections that stay open.
    let (requests, text) = wrk_post_empty(&format!("http://127.0.0.1:{port}/private"));
    assert!(requests >= 20, "{text}");
    assert!(!text.contains("Socket errors"), "{text}");
    assert!(
        text.contains(&format!("Non-2xx or 3xx responses: {requests}")),
        "{text}"
    );
}

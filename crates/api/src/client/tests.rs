//! The client against a scripted server on a real unix socket.

use super::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};

/// A socket path unique to this test run, removed when dropped.
struct TempSocket(PathBuf);

impl TempSocket {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "api-client-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempSocket(dir.join("agent.sock"))
    }
}

impl Drop for TempSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

/// Serves one connection: captures the request (head + Content-Length body)
/// and answers with `pieces`, flushing and pausing between them so the
/// client sees the answer split across reads.
fn serve_once(sock: &Path, pieces: Vec<Vec<u8>>) -> JoinHandle<String> {
    let listener = UnixListener::bind(sock).unwrap();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut byte = [0u8; 1];
        while !req.ends_with(b"\r\n\r\n") {
            conn.read_exact(&mut byte).unwrap();
            req.push(byte[0]);
        }
        let head = String::from_utf8(req.clone()).unwrap();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map(|v| v.trim().parse::<usize>().unwrap())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).unwrap();
        req.extend_from_slice(&body);
        for piece in pieces {
            conn.write_all(&piece).unwrap();
            conn.flush().unwrap();
            thread::sleep(Duration::from_millis(15));
        }
        String::from_utf8(req).unwrap()
    })
}

fn text(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn chunk(data: &str) -> Vec<u8> {
    format!("{:x}\r\n{data}\r\n", data.len()).into_bytes()
}

#[test]
fn healthz_with_content_length() {
    let sock = TempSocket::new();
    let body = r#"{"cilium":{"state":"Ok","msg":""},"ipam":{"ipv4":["10.200.0.5"],"alloc-range":"10.200.0.0/16","capacity":65534},"endpoints":3}"#;
    let server = serve_once(
        &sock.0,
        vec![text(&format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))],
    );
    let status = Client::new(&sock.0).healthz().unwrap();
    assert_eq!(status.cilium.state, Status::OK);
    assert_eq!(status.ipam.alloc_range, "10.200.0.0/16");
    assert_eq!(status.endpoints, 3);

    let req = server.join().unwrap();
    assert!(req.starts_with("GET /v1/healthz HTTP/1.1\r\n"), "{req}");
    assert!(req.contains("Host: localhost\r\n"));
    assert!(req.contains("Connection: keep-alive\r\n"));
    assert!(req.contains("Content-Length: 0\r\n"));
}

/// Reads one request head (the tests' requests carry no body).
fn read_head(conn: &mut UnixStream) -> Option<String> {
    let mut req = Vec::new();
    let mut byte = [0u8; 1];
    while !req.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        req.push(byte[0]);
    }
    String::from_utf8(req).ok()
}

#[test]
fn calls_share_a_kept_connection_and_survive_its_close() {
    let sock = TempSocket::new();
    let listener = UnixListener::bind(&sock.0).unwrap();
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]";
    let server = thread::spawn(move || {
        // First connection: two requests, then the agent "restarts".
        let (mut conn, _) = listener.accept().unwrap();
        for _ in 0..2 {
            read_head(&mut conn).unwrap();
            conn.write_all(ok.as_bytes()).unwrap();
        }
        drop(conn);
        // The third call finds the kept connection closed and comes back.
        let (mut conn, _) = listener.accept().unwrap();
        let head = read_head(&mut conn).unwrap();
        conn.write_all(ok.as_bytes()).unwrap();
        head
    });
    let client = Client::new(&sock.0);
    assert!(client.identity_list().unwrap().is_empty());
    assert!(client.clone().identity_list().unwrap().is_empty());
    thread::sleep(Duration::from_millis(20));
    assert!(client.identity_list().unwrap().is_empty());
    assert!(server.join().unwrap().starts_with("GET /v1/identity "));
}

#[test]
fn chunked_body_split_across_reads() {
    let sock = TempSocket::new();
    let json =
        r#"[{"id":256,"labels":["k8s:app=web"],"labelsSHA256":"ab"},{"id":257,"labels":[]}]"#;
    let (a, b) = json.split_at(20);
    let mut size_line_split = chunk(b);
    let tail = size_line_split.split_off(1); // cut inside the size line
    let server = serve_once(
        &sock.0,
        vec![
            text("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            chunk(a),
            size_line_split,
            tail,
            text("0\r\n\r\n"),
        ],
    );
    let ids = Client::new(&sock.0).identity_list().unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0].labels, vec!["k8s:app=web"]);
    assert_eq!(ids[1].id, 257);
    server.join().unwrap();
}

#[test]
fn error_body_becomes_api_error() {
    let sock = TempSocket::new();
    let body = r#"{"message":"endpoint 77 not found"}"#;
    let server = serve_once(
        &sock.0,
        vec![text(&format!(
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))],
    );
    let err = Client::new(&sock.0).endpoint_get("77").unwrap_err();
    assert_eq!(err.status(), Some(404));
    match &err {
        ClientError::Api { message, .. } => assert_eq!(message, "endpoint 77 not found"),
        other => panic!("expected Api error, got {other:?}"),
    }
    assert!(server.join().unwrap().starts_with("GET /v1/endpoint/77 "));
}

#[test]
fn plain_text_error_body_is_kept() {
    let sock = TempSocket::new();
    let server = serve_once(
        &sock.0,
        vec![text("HTTP/1.1 500 Internal Server Error\r\n\r\nboom\n")],
    );
    let err = Client::new(&sock.0).policy_get().unwrap_err();
    assert_eq!(err.to_string(), "boom (HTTP 500)");
    server.join().unwrap();
}

#[test]
fn unreachable_agent_is_a_connect_error() {
    let sock = TempSocket::new();
    let err = Client::new(&sock.0).healthz().unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("cannot reach cilium-agent at"), "{msg}");
    assert!(msg.contains("Is the agent running?"), "{msg}");
}

#[test]
fn bad_json_is_a_decode_error() {
    let sock = TempSocket::new();
    let server = serve_once(
        &sock.0,
        vec![text("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnop")],
    );
    let err = Client::new(&sock.0).config().unwrap_err();
    assert!(matches!(err, ClientError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("GET /v1/config"));
    server.join().unwrap();
}

#[test]
fn policy_put_sends_text_and_replace_flag() {
    let sock = TempSocket::new();
    let body = r#"{"revision":4,"policy":"[]"}"#;
    let server = serve_once(
        &sock.0,
        vec![text(&format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))],
    );
    let rules = r#"[{"endpointSelector":{"matchLabels":{"app":"web"}}}]"#;
    let policy = Client::new(&sock.0).policy_put(rules, true).unwrap();
    assert_eq!(policy.revision, 4);
    let req = server.join().unwrap();
    assert!(
        req.starts_with("PUT /v1/policy?replace=true HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(req.contains("Content-Type: application/json\r\n"));
    assert!(req.ends_with(rules));
}

#[test]
fn endpoint_labels_patch_and_delete_policy_bodies() {
    let sock = TempSocket::new();
    let server = serve_once(
        &sock.0,
        vec![text("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")],
    );
    let spec = LabelConfigurationSpec {
        user: vec!["app=web".into()],
    };
    Client::new(&sock.0)
        .endpoint_labels_patch("container-id:abc", &spec)
        .unwrap();
    let req = server.join().unwrap();
    assert!(req.starts_with("PATCH /v1/endpoint/container-id:abc/labels "));
    assert!(req.ends_with(r#"{"user":["app=web"]}"#));
}

#[test]
fn monitor_stream_reads_events_as_they_arrive() {
    let sock = TempSocket::new();
    let e1 = r#"{"kind":"drop","endpoint":1234,"reason":133,"reason_text":"Policy denied"}"#;
    let e2 = r#"{"kind":"trace","observation_point":"to-endpoint"}"#;
    let line1 = format!("{e1}\n");
    let (first_half, second_half) = line1.split_at(10);
    let server = serve_once(
        &sock.0,
        vec![
            text("HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"),
            chunk(first_half),
            chunk(second_half),
            chunk(&format!("\n{e2}\n")),
            text("0\r\n\r\n"),
        ],
    );
    let types = vec!["drop".to_string(), "policy-verdict".to_string()];
    let mut stream = Client::new(&sock.0).monitor(&types).unwrap();
    let first = stream.next().unwrap().unwrap();
    assert_eq!(first.kind, "drop");
    assert_eq!(first.reason_text, "Policy denied");
    assert_eq!(
        stream.next().unwrap().unwrap().observation_point,
        "to-endpoint"
    );
    assert!(stream.next().is_none());
    let req = server.join().unwrap();
    assert!(req.starts_with("GET /v1/monitor?type=drop&type=policy-verdict HTTP/1.1"));
}

#[test]
fn socket_resolution_order() {
    assert_eq!(
        resolve_socket(Some("unix:///run/a.sock"), Some("/env.sock")),
        PathBuf::from("/run/a.sock")
    );
    assert_eq!(
        resolve_socket(Some("/bare.sock"), None),
        PathBuf::from("/bare.sock")
    );
    assert_eq!(
        resolve_socket(None, Some("/env.sock")),
        PathBuf::from("/env.sock")
    );
    assert_eq!(resolve_socket(None, None), PathBuf::from(DEFAULT_SOCKET));
}

#[test]
fn path_components_are_encoded() {
    assert_eq!(encode_component("10.0.0.1"), "10.0.0.1");
    assert_eq!(encode_component("a b/c"), "a%20b%2Fc");
    assert_eq!(encode_component("container-id:x"), "container-id:x");
}

#[test]
fn monitor_query_becomes_query_parameters() {
    assert_eq!(monitor_target(&MonitorQuery::default()), "/v1/monitor");
    let query = MonitorQuery {
        types: vec!["drop".into()],
        from: Some(12),
        related_to: Some(7),
        ..Default::default()
    };
    assert_eq!(
        monitor_target(&query),
        "/v1/monitor?type=drop&from=12&related-to=7"
    );
}

#[test]
fn kvstore_targets_keep_slashes_and_encode_segments() {
    assert_eq!(
        kvstore_target("cilium/state/nodes/v1", true),
        "/v1/kvstore/cilium/state/nodes/v1?recursive=true"
    );
    assert_eq!(
        kvstore_target("/cilium/state/ip/v1/default/10.0.0.1", false),
        "/v1/kvstore/cilium/state/ip/v1/default/10.0.0.1"
    );
    assert_eq!(kvstore_target("a b/c?d", false), "/v1/kvstore/a%20b/c%3Fd");
}

#[test]
fn kvstore_set_sends_the_value_as_text() {
    let sock = TempSocket::new();
    let server = serve_once(
        &sock.0,
        vec![text("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")],
    );
    Client::new(&sock.0)
        .kvstore_set("cilium/x", "hello")
        .unwrap();
    let request = server.join().unwrap();
    assert!(
        request.starts_with("PUT /v1/kvstore/cilium/x HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.ends_with("\r\n\r\nhello"), "{request}");
}

#[test]
fn early_answer_to_a_large_body_is_read_not_a_broken_pipe() {
    let sock = TempSocket::new();
    let listener = UnixListener::bind(&sock.0).unwrap();
    let body = r#"{"message":"request body of 8388608 bytes exceeds the limit"}"#;
    let answer = format!(
        "HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Answers after the head and closes, leaving the body unread: the
    // client's write runs into a closed socket.
    let server = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let head = read_head(&mut conn).unwrap();
        conn.write_all(answer.as_bytes()).unwrap();
        head
    });
    let rules = format!("[{}]", " ".repeat(8 << 20));
    let err = Client::new(&sock.0).policy_put(&rules, false).unwrap_err();
    assert_eq!(err.status(), Some(413), "{err:?}");
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    assert!(server.join().unwrap().starts_with("PUT /v1/policy "));
}

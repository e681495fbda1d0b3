//! The `cilium` binary against a scripted agent on a unix socket: what a
//! user sees for each command, including streaming and failures.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cli-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn socket(&self) -> PathBuf {
        self.0.join("cilium.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads one request: (request line, body).
fn read_request(conn: &mut UnixStream) -> (String, String) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
        if let Some(v) = h.strip_prefix("Content-Length: ") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    (
        first.trim_end().to_string(),
        String::from_utf8(body).unwrap(),
    )
}

fn json_response(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Answers each incoming connection with the next canned response and
/// reports the requests it saw.
fn fake_agent(dir: &TempDir, responses: Vec<String>) -> mpsc::Receiver<(String, String)> {
    let listener = UnixListener::bind(dir.socket()).unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for response in responses {
            let (mut conn, _) = listener.accept().unwrap();
            let req = read_request(&mut conn);
            tx.send(req).unwrap();
            conn.write_all(response.as_bytes()).unwrap();
        }
    });
    rx
}

fn cilium(dir: &TempDir, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cilium"))
        .arg("-H")
        .arg(format!("unix://{}", dir.socket().display()))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn status_fails_clearly_without_an_agent() {
    let dir = TempDir::new();
    let out = cilium(&dir, &["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach cilium-agent at"), "{err}");
    assert!(err.contains("Is the agent running?"), "{err}");
}

#[test]
fn status_prints_ipam_usage() {
    let dir = TempDir::new();
    let body = r#"{"cilium":{"state":"Ok","msg":""},"kvstore":{"state":"Ok","msg":"embedded"},
        "ipam":{"ipv4":["10.200.0.1","10.200.0.5","10.200.0.6"],"alloc-range":"10.200.0.0/16","capacity":65534},
        "policy":{"revision":1,"rules":0},"endpoints":2}"#;
    let requests = fake_agent(&dir, vec![json_response("200 OK", body)]);
    let out = cilium(&dir, &["status"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("IPv4: 3/65534 allocated from 10.200.0.0/16"),
        "{text}"
    );
    assert_eq!(requests.recv().unwrap().0, "GET /v1/healthz HTTP/1.1");
}

#[test]
fn agent_errors_are_reported_with_their_message() {
    let dir = TempDir::new();
    let _requests = fake_agent(
        &dir,
        vec![json_response(
            "404 Not Found",
            r#"{"message":"endpoint 99 not found"}"#,
        )],
    );
    let out = cilium(&dir, &["endpoint", "get", "99"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("endpoint 99 not found"), "{err}");
}

#[test]
fn endpoint_labels_sends_the_complete_new_list() {
    let dir = TempDir::new();
    let ep = r#"{"id":1234,"spec":{"label-configuration":{"user":["container:app=web","container:tier=front"]}}}"#;
    let requests = fake_agent(
        &dir,
        vec![json_response("200 OK", ep), json_response("200 OK", "")],
    );
    let out = cilium(
        &dir,
        &[
            "endpoint",
            "labels",
            "1234",
            "--add",
            "role=api",
            "--delete",
            "tier=front",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(requests.recv().unwrap().0, "GET /v1/endpoint/1234 HTTP/1.1");
    let (line, body) = requests.recv().unwrap();
    assert_eq!(line, "PATCH /v1/endpoint/1234/labels HTTP/1.1");
    assert_eq!(body, r#"{"user":["container:app=web","role=api"]}"#);
}

#[test]
fn policy_import_prints_revision() {
    let dir = TempDir::new();
    let file = dir.0.join("rules.json");
    std::fs::write(
        &file,
        r#"[{"endpointSelector":{"matchLabels":{"app":"web"}}}]"#,
    )
    .unwrap();
    let requests = fake_agent(
        &dir,
        vec![json_response("200 OK", r#"{"revision":2,"policy":""}"#)],
    );
    let out = cilium(
        &dir,
        &["policy", "import", file.to_str().unwrap(), "--replace"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "Revision: 2\n");
    let (line, body) = requests.recv().unwrap();
    assert_eq!(line, "PUT /v1/policy?replace=true HTTP/1.1");
    assert!(body.contains("endpointSelector"));
}

#[test]
fn monitor_prints_each_event_as_it_arrives() {
    let dir = TempDir::new();
    let listener = UnixListener::bind(dir.socket()).unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let (line, _) = read_request(&mut conn);
        assert_eq!(line, "GET /v1/monitor?type=drop HTTP/1.1");
        conn.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let ev = r#"{"kind":"drop","endpoint":1234,"ifindex":12,"src_identity":257,"dst_identity":256,"reason_text":"Policy denied","protocol":6,"src_ip":"10.200.0.7","dst_ip":"10.200.0.6","src_port":3456,"dst_port":80,"tcp_flags":["SYN"]}"#;
        let line = format!("{ev}\n");
        conn.write_all(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes())
            .unwrap();
        // Keep the stream open: the line must reach the reader anyway.
        let _ = release_rx.recv_timeout(Duration::from_secs(10));
    });

    let mut child = Command::new(env!("CARGO_BIN_EXE_cilium"))
        .arg("-H")
        .arg(dir.socket())
        .args(["monitor", "--type", "drop"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..3 {
        let mut l = String::new();
        stdout.read_line(&mut l).unwrap();
        lines.push(l);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    release_tx.send(()).ok();

    assert!(
        lines[0].starts_with("Listening for events on "),
        "{lines:?}"
    );
    assert_eq!(lines[1], "Press Ctrl-C to quit\n");
    assert_eq!(
        lines[2],
        "xx drop (Policy denied) flow 0x0 to endpoint 1234, ifindex 12, identity 257->256: \
         10.200.0.7:3456 -> 10.200.0.6:80 tcp SYN\n"
    );
}

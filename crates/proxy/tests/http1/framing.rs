//! Every way an HTTP/1.1 body can be delimited — no body header,
//! `Content-Length: 0`, `Content-Length: N`, chunked, `Expect: 100-continue` —
//! allowed and denied, one per connection, kept alive and pipelined, and the
//! responses that carry no body (empty length, 204, 304, HEAD). Each test
//! checks what the upstream received as well as what the client got back.

use super::{curl_chain, deathstar_proxy};
use crate::common::{curl, raw_exchange, EchoServer, TempDir};

/// `len` bytes of every value but `@` (curl_chain's output marker).
fn payload(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| match (i % 251) as u8 {
            b'@' => 0,
            byte => byte,
        })
        .collect()
}

/// Writes `payload(len)` to a file for `--data-binary @file`.
fn payload_file(dir: &TempDir, len: usize) -> (String, Vec<u8>) {
    let path = dir.0.join(format!("payload-{len}"));
    let bytes = payload(len);
    std::fs::write(&path, &bytes).unwrap();
    (format!("@{}", path.display()), bytes)
}

/// curl options for each way a request body can be framed, by name;
/// `FILE` stands for `@file` of a payload.
const FRAMINGS: [(&str, &[&str]); 6] = [
    ("get", &[]),
    ("no-body", &["-X", "POST"]),
    ("empty", &["-X", "POST", "-d", ""]),
    ("empty-put", &["-X", "PUT", "-d", ""]),
    ("length", &["--data-binary", "FILE"]),
    (
        "chunked",
        &["-H", "Transfer-Encoding: chunked", "--data-binary", "FILE"],
    ),
];

/// One curl transfer per framing, each to `url(name)`.
fn every_framing(file: &str, url: impl Fn(&str) -> String) -> Vec<Vec<String>> {
    FRAMINGS
        .iter()
        .map(|(name, options)| {
            let options = options.iter().map(|&o| if o == "FILE" { file } else { o });
            options.map(str::to_string).chain([url(name)]).collect()
        })
        .collect()
}

/// (method, target, body) of each request the upstream received.
fn upstream_saw(upstream: &EchoServer) -> Vec<(String, String, Vec<u8>)> {
    upstream
        .received()
        .into_iter()
        .map(|r| (r.head.method, r.head.target, r.body))
        .collect()
}

fn request(method: &str, target: &str, body: &[u8]) -> (String, String, Vec<u8>) {
    (method.to_string(), target.to_string(), body.to_vec())
}

/// The echo upstream's answer to `request`, as the client should see it.
fn echoed(request: &[u8]) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nx-upstream: echo\r\ncontent-length: {}\r\n\r\n{}",
        request.len(),
        String::from_utf8_lossy(request)
    )
}

#[test]
fn content_length_zero_requests_reach_the_upstream() {
    let (_proxy, port, upstream) = deathstar_proxy();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    for (args, method) in [
        (vec!["-X", "POST", "-d", ""], "POST"),
        (vec!["-X", "PUT", "-d", ""], "PUT"),
        (vec!["-X", "PATCH", "-d", ""], "PATCH"),
        (vec!["-X", "DELETE", "-H", "Content-Length: 0"], "DELETE"),
    ] {
        let target = format!("/open/{}", method.to_lowercase());
        let mut args = args;
        let url = url(&target);
        args.extend(["--max-time", "5", &url]);
        let (status, body) = curl(&args);
        assert_eq!(status, 200, "{method} with Content-Length: 0");
        assert!(
            body.starts_with(&format!("{method} {target} HTTP/1.1\r\n")),
            "{body}"
        );
        assert!(body.contains("Content-Length: 0\r\n"), "{body}");
    }
    let saw = upstream_saw(&upstream);
    let methods: Vec<&str> = saw.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(methods, ["POST", "PUT", "PATCH", "DELETE"]);
    assert!(saw.iter().all(|(_, _, body)| body.is_empty()));
}

#[test]
fn keep_alive_connection_carries_every_request_framing() {
    let (_proxy, port, upstream) = deathstar_proxy();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let dir = TempDir::new("framing");
    let (file, bytes) = payload_file(&dir, 300 * 1024);
    let results = curl_chain(&every_framing(&file, |name| url(&format!("/open/{name}"))));
    let seen: Vec<(u16, u32)> = results.iter().map(|t| (t.status, t.connects)).collect();
    assert_eq!(
        seen,
        [(200, 1), (200, 0), (200, 0), (200, 0), (200, 0), (200, 0)]
    );
    assert!(results[0].body.starts_with(b"GET /open/get HTTP/1.1\r\n"));
    assert!(results[4].body.ends_with(&bytes));
    assert!(results[5]
        .body
        .starts_with(b"POST /open/chunked HTTP/1.1\r\n"));
    assert_eq!(
        upstream_saw(&upstream),
        [
            request("GET", "/open/get", b""),
            request("POST", "/open/no-body", b""),
            request("POST", "/open/empty", b""),
            request("PUT", "/open/empty-put", b""),
            request("POST", "/open/length", &bytes),
            request("POST", "/open/chunked", &bytes),
        ]
    );
    let received = upstream.received();
    assert_eq!(received[2].header("content-length"), Some("0"));
    assert_eq!(received[5].header("transfer-encoding"), Some("chunked"));
    assert!(received.iter().all(|r| r.connection == 0));
}

#[test]
fn expect_continue_bodies_follow_the_upstreams_100() {
    let (_proxy, port, upstream) = deathstar_proxy();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let dir = TempDir::new("expect");
    // Over 1 MiB curl asks `Expect: 100-continue` by itself; the long
    // expect100-timeout means only the upstream's 100 makes it send the body.
    let (file, bytes) = payload_file(&dir, 2 << 20);
    let results = curl_chain(&[
        vec![
            "--expect100-timeout",
            "30",
            "--data-binary",
            &file,
            &url("/open/large"),
        ],
        vec![
            "--expect100-timeout",
            "30",
            "-H",
            "Expect: 100-continue",
            "-X",
            "PUT",
            "--data-binary",
            "small",
            &url("/open/small"),
        ],
    ]);
    assert_eq!(results[0].status, 200);
    assert!(results[0].body.ends_with(&bytes));
    assert_eq!((results[1].status, results[1].connects), (200, 0));
    assert!(results[1].body.ends_with(b"small"));
    assert_eq!(
        upstream_saw(&upstream),
        [
            request("POST", "/open/large", &bytes),
            request("PUT", "/open/small", b"small")
        ]
    );
    let received = upstream.received();
    assert!(received
        .iter()
        .all(|r| r.header("expect") == Some("100-continue")));
    // Denied: answered without waiting for the body the client holds back.
    let (status, body) = curl(&[
        "--max-time",
        "5",
        "--expect100-timeout",
        "30",
        "--data-binary",
        &file,
        &url("/private"),
    ]);
    assert_eq!((status, body.as_str()), (403, "Access denied\r\n"));
}

#[test]
fn denied_requests_in_every_framing_keep_the_connection() {
    let (_proxy, port, upstream) = deathstar_proxy();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let dir = TempDir::new("denied");
    let (file, _) = payload_file(&dir, 64 * 1024);
    let mut transfers = every_framing(&file, |_| url("/private"));
    let after = ["-X", "POST", "-d", "", &url("/open/after-denials")];
    transfers.push(after.map(String::from).to_vec());
    let results = curl_chain(&transfers);
    let seen: Vec<(u16, u32)> = results.iter().map(|t| (t.status, t.connects)).collect();
    assert_eq!(
        seen,
        [
            (403, 1),
            (403, 0),
            (403, 0),
            (403, 0),
            (403, 0),
            (403, 0),
            (200, 0)
        ]
    );
    assert!(results[..6].iter().all(|t| t.body == b"Access denied\r\n"));
    assert_eq!(
        upstream_saw(&upstream),
        [request("POST", "/open/after-denials", b"")]
    );
}

#[test]
fn responses_without_a_body_end_where_they_should() {
    let (_proxy, port, upstream) = deathstar_proxy();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let results = curl_chain(&[
        vec!["-H", "X-Reply-Status: 200", &url("/open/empty-200")],
        vec![
            "-X",
            "POST",
            "-d",
            "",
            "-H",
            "X-Reply-Status: 201",
            &url("/open/created"),
        ],
        vec!["-H", "X-Reply-Status: 204", &url("/open/no-content")],
        vec!["-H", "X-Reply-Status: 304", &url("/open/not-modified")],
        vec!["-I", &url("/open/head")],
        vec![&url("/public")],
    ]);
    let seen: Vec<(u16, u32)> = results.iter().map(|t| (t.status, t.connects)).collect();
    assert_eq!(
        seen,
        [(200, 1), (201, 0), (204, 0), (304, 0), (200, 0), (200, 0)]
    );
    assert!(results[..4].iter().all(|t| t.body.is_empty()));
    // `-I` prints the head: the length of a body that was not sent.
    let head = String::from_utf8_lossy(&results[4].body);
    assert!(head.contains("content-length: "), "{head}");
    assert!(results[5].body.starts_with(b"GET /public HTTP/1.1\r\n"));
    let targets: Vec<String> = upstream
        .received()
        .into_iter()
        .map(|r| r.head.target)
        .collect();
    assert_eq!(
        targets,
        [
            "/open/empty-200",
            "/open/created",
            "/open/no-content",
            "/open/not-modified",
            "/open/head",
            "/public"
        ]
    );
}

#[test]
fn pipelined_requests_in_every_framing_are_answered_in_order() {
    let (_proxy, port, upstream) = deathstar_proxy();
    let empty = b"POST /open/empty HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec();
    let plain = b"GET /public HTTP/1.1\r\nHost: x\r\nX-Odd:  spaced \r\n\r\n".to_vec();
    let denied_empty = b"POST /private HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec();
    let length = b"PUT /open/length HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    let denied_length =
        b"POST /private HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    let denied_chunked = b"POST /private HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n0\r\n\r\n".to_vec();
    let chunked = b"POST /v1/request-landing HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nWiki\r\n0\r\nT: 1\r\n\r\n".to_vec();
    let head = b"HEAD /open/head HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let empty_reply =
        b"POST /open/reply HTTP/1.1\r\nHost: x\r\nX-Reply-Status: 201\r\nContent-Length: 0\r\n\r\n"
            .to_vec();
    let last = b"GET /public HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec();
    let all = [
        &empty,
        &plain,
        &denied_empty,
        &length,
        &denied_length,
        &denied_chunked,
        &chunked,
        &head,
        &empty_reply,
        &last,
    ]
    .map(|r| r.as_slice())
    .concat();
    let (response, closed) = raw_exchange(port, &all);
    let denied = "HTTP/1.1 403 Forbidden\r\ncontent-length: 15\r\ncontent-type: text/plain\r\n\r\nAccess denied\r\n";
    let expected = [
        echoed(&empty),
        echoed(&plain),
        denied.to_string(),
        echoed(&length),
        denied.to_string(),
        denied.to_string(),
        echoed(&chunked),
        format!(
            "HTTP/1.1 200 OK\r\nx-upstream: echo\r\ncontent-length: {}\r\n\r\n",
            head.len()
        ),
        "HTTP/1.1 201 Empty\r\nx-upstream: echo\r\ncontent-length: 0\r\n\r\n".to_string(),
        echoed(&last),
    ]
    .concat();
    assert_eq!(response, expected);
    assert!(closed);
    assert_eq!(
        upstream_saw(&upstream),
        [
            request("POST", "/open/empty", b""),
            request("GET", "/public", b""),
            request("PUT", "/open/length", b"hello"),
            request("POST", "/v1/request-landing", b"Wiki"),
            request("HEAD", "/open/head", b""),
            request("POST", "/open/reply", b""),
            request("GET", "/public", b""),
        ]
    );
    assert!(upstream.received().iter().all(|r| r.connection == 0));
}

use super::*;
use crate::http1::chunked::ChunkedDecoder;

fn request(text: &str) -> Result<Option<RequestHead>, HttpError> {
    parse_request(text.as_bytes())
}

#[test]
fn simple_get_and_incomplete_heads() {
    let head = request("GET /public?x=1 HTTP/1.1\r\nHost: a\r\nX-Token: 12 \r\n\r\nrest")
        .unwrap()
        .unwrap();
    assert_eq!(head.method, "GET");
    assert_eq!(head.target, "/public?x=1");
    assert_eq!(head.host.as_deref(), Some("a"));
    assert_eq!(head.headers[1], ("X-Token".into(), "12".into()));
    assert_eq!(head.framing, BodyFraming::None);
    assert!(head.keep_alive);
    assert_eq!(head.head_len, 51);
    assert_eq!(request("GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
    let close = request("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!close.keep_alive);
    let old = request("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert!(!old.keep_alive);
}

/// Found by the http1_request fuzz target: a 33-byte method was accepted when
/// the whole head came in one read but refused when only its start had
/// arrived, so acceptance depended on how the network cut the request.
#[test]
fn a_head_reads_the_same_however_it_arrives() {
    for method in ["M".repeat(32), "M".repeat(33)] {
        let text = format!("{method} / HTTP/1.1\r\nHost: a\r\n\r\n");
        let whole = request(&text);
        for cut in 0..text.len() {
            match request(&text[..cut]) {
                Ok(None) => {}
                partial => assert_eq!(partial, whole, "{cut} bytes of {text:?}"),
            }
        }
    }
    assert!(
        request(&format!("{} / HTTP/1.1\r\nHost: a\r\n\r\n", "M".repeat(32)))
            .unwrap()
            .is_some()
    );
    assert_eq!(
        request(&format!("{} / HTTP/1.1\r\nHost: a\r\n\r\n", "M".repeat(33))),
        Err(HttpError::StartLine)
    );
}

#[test]
fn smuggling_shapes_are_refused() {
    let cases = [
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            HttpError::LengthAndChunked,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            HttpError::ContentLength("4".into()),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n",
            HttpError::ContentLength("3, 4".into()),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
            HttpError::ContentLength("+3".into()),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            HttpError::TransferEncoding("chunked, gzip".into()),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            HttpError::TransferEncoding("xchunked".into()),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
            HttpError::ObsFold(" b".into()),
        ),
        (
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            HttpError::HeaderLine("Host : a".into()),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            HttpError::DuplicateHost,
        ),
        ("GET / HTTP/1.1\r\n\r\n", HttpError::MissingHost),
        ("GET / HTTP/1.1\nHost: a\r\n\r\n", HttpError::BareLineEnding),
        ("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::StartLine),
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", HttpError::StartLine),
    ];
    for (text, expected) in cases {
        assert_eq!(request(text), Err(expected), "{text:?}");
    }
    let same =
        request("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n");
    assert_eq!(same.unwrap().unwrap().framing, BodyFraming::Length(3));
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
        "a".repeat(MAX_HEAD_BYTES)
    );
    assert_eq!(request(&big), Err(HttpError::HeadTooLarge));
}

#[test]
fn responses_frame_by_method_and_status() {
    let ok = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET")
        .unwrap()
        .unwrap();
    assert_eq!(
        (ok.status, ok.framing, ok.keep_alive),
        (200, BodyFraming::Length(5), true)
    );
    let head = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD")
        .unwrap()
        .unwrap();
    assert_eq!(head.framing, BodyFraming::None);
    let eof = parse_response(b"HTTP/1.0 200 OK\r\n\r\n", "GET")
        .unwrap()
        .unwrap();
    assert_eq!(
        (eof.framing, eof.keep_alive),
        (BodyFraming::UntilClose, false)
    );
    let cont = parse_response(b"HTTP/1.1 100 Continue\r\n\r\n", "POST")
        .unwrap()
        .unwrap();
    assert_eq!(cont.framing, BodyFraming::None);
}

#[test]
fn chunked_bodies_end_exactly() {
    let body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    let mut decoder = ChunkedDecoder::default();
    assert_eq!(decoder.advance(body), Ok(body.len() - 4));
    assert!(decoder.is_done());
    // Byte by byte gives the same answer.
    let mut decoder = ChunkedDecoder::default();
    let consumed: usize = body
        .iter()
        .map(|b| decoder.advance(std::slice::from_ref(b)).unwrap())
        .sum();
    assert_eq!(consumed, body.len() - 4);
    for bad in [
        &b"z\r\n"[..],
        b"4\r\nWikiXX",
        b"11111111111111111\r\n",
        b"\r\n",
        b"4\nWiki",
        b"-1\r\n",
    ] {
        assert!(
            ChunkedDecoder::default().advance(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn absolute_form_path_is_used_for_policy() {
    let head = request("GET http://a.b/x/y?z HTTP/1.1\r\nHost: a.b\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(head.policy_path(), "/x/y?z");
}

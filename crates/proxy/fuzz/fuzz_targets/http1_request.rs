//! Request heads and chunked bodies: never panic, never claim more bytes than
//! given, a head reads the same however it arrives (every prefix of an
//! accepted head is "need more bytes", the head alone parses the same), and
//! decoding a body in one piece or byte by byte agrees.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::http1::chunked::ChunkedDecoder;
use proxy::http1::{parse_request, BodyFraming};

fuzz_target!(|data: &[u8]| {
    let Ok(Some(head)) = parse_request(data) else {
        return;
    };
    assert!(head.head_len <= data.len());
    // The proxy parses what it has buffered so far: a head cut by the network
    // must wait for more bytes, never be refused or read differently.
    for cut in (0..head.head_len).take(256).chain([head.head_len - 1]) {
        assert_eq!(
            parse_request(&data[..cut]),
            Ok(None),
            "prefix of {cut} bytes"
        );
    }
    assert_eq!(
        parse_request(&data[..head.head_len]),
        Ok(Some(head.clone()))
    );
    if let BodyFraming::Length(_) = head.framing {
        assert!(head
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length")));
    }
    let body = &data[head.head_len..];
    let mut whole = ChunkedDecoder::default();
    let whole_result = whole.advance(body);
    let mut split = ChunkedDecoder::default();
    let mut consumed = 0;
    let mut split_error = false;
    for byte in body {
        match split.advance(std::slice::from_ref(byte)) {
            Ok(n) => consumed += n,
            Err(_) => {
                split_error = true;
                break;
            }
        }
        if split.is_done() {
            break;
        }
    }
    match whole_result {
        Ok(n) => {
            assert!(n <= body.len());
            assert!(!split_error);
            assert_eq!(n, consumed);
            assert_eq!(whole.is_done(), split.is_done());
        }
        Err(_) => assert!(split_error),
    }
});

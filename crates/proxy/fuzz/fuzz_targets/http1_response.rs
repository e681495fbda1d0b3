//! Response heads: never panic, head length within the input, and a head
//! reads the same however it arrives (every prefix of an accepted head is
//! "need more bytes", the head alone parses the same).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for method in ["GET", "HEAD"] {
        if let Ok(Some(head)) = proxy::http1::parse_response(data, method) {
            assert!(head.head_len <= data.len());
            assert!((100..1000).contains(&head.status));
            for cut in (0..head.head_len).take(256).chain([head.head_len - 1]) {
                let prefix = proxy::http1::parse_response(&data[..cut], method);
                assert_eq!(prefix, Ok(None), "prefix of {cut} bytes");
            }
            let alone = proxy::http1::parse_response(&data[..head.head_len], method);
            assert_eq!(alone, Ok(Some(head)));
        }
    }
});

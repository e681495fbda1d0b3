//! Response heads: never panic, head length within the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for method in ["GET", "HEAD"] {
        if let Ok(Some(head)) = proxy::http1::parse_response(data, method) {
            assert!(head.head_len <= data.len());
            assert!((100..1000).contains(&head.status));
        }
    }
});

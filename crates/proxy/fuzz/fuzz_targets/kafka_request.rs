//! Kafka requests: parsing never panics or over-allocates, and a synthesized
//! denial is a well-formed frame carrying the request's correlation id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::kafka::response::denied_response;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = proxy::kafka::parse_request(data) else {
        return;
    };
    if let Some(frame) = denied_response(&request) {
        let size = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(size, frame.len() - 4);
        assert_eq!(&frame[4..8], &request.correlation_id.to_be_bytes());
    }
});

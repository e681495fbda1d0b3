//! Kafka: request framing and header/topic parsing (`request`), the wire
//! primitives it needs (`wire`), synthesized error responses for denied
//! requests (`response`) and the per-connection proxy loop (`proxy`).

pub mod proxy;
pub mod request;
pub mod response;
pub mod wire;

pub use request::{parse_request, KafkaRequest, TopicPartitions};
pub use wire::KafkaError;

/// TOPIC_AUTHORIZATION_FAILED.
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

/// Requests larger than Kafka's default `socket.request.max.bytes` are refused.
pub const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

/// Whether `api_key` at `api_version` uses the flexible encoding (KIP-482:
/// compact strings and arrays, tagged fields, request header v2).
pub fn is_flexible(api_key: i16, api_version: i16) -> bool {
    let first_flexible = match api_key {
        0 => 9,
        1 => 12,
        2 => 6,
        3 => 9,
        8 => 8,
        9 => 6,
        10 => 3,
        11 => 6,
        12..=14 => 4,
        15 => 5,
        16 => 3,
        18 => 3,
        19 => 5,
        20 => 4,
        22 => 2,
        _ => return false,
    };
    api_version >= first_flexible
}

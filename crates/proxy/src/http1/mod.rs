//! HTTP/1.1: a strict streaming parser (`parse`, `chunked`) and the
//! per-connection proxy loop (`proxy`), which also hands HTTP/2 prior-knowledge
//! connections to `crate::http2`.

pub mod chunked;
pub mod parse;
pub mod proxy;

pub use parse::{parse_request, parse_response, BodyFraming, HttpError, RequestHead, ResponseHead};

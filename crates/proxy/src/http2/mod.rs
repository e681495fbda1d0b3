//! HTTP/2 (cleartext, prior knowledge; gRPC uses it) through the `h2` crate:
//! each stream is judged on `:method`, `:path`, `:authority` and headers.
//! Allowed streams go to one upstream HTTP/2 connection (headers, data and
//! trailers unchanged; framing is HTTP/2's own). Denied streams get what
//! Envoy's local reply gives: `403` with `Access denied`, or for gRPC a
//! trailers-only response with `grpc-status: 7` (PERMISSION_DENIED).
//!
//! One task per client connection drives the client connection, its
//! upstream connection and all its streams (see `driver`): a request and
//! its response cross the proxy without a task spawn, and without waking
//! another task (or another thread) on the way.

mod coalesce;
mod driver;
mod prefixed;
mod request;
mod stream;
mod upstream;

pub use driver::serve;
pub use request::H2Request;
pub use stream::GRPC_PERMISSION_DENIED;

#[cfg(test)]
mod tests;

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

/// Flow-control windows the proxy advertises on both of its connections
/// (HTTP/2's default is 64 KiB for each stream and for the connection).
/// Credit goes back to a sender only once its bytes have been passed on
/// (`stream::pump`), so a window bounds what the proxy holds for a stream or a
/// connection; Envoy advertises 256 MiB and bounds its buffers separately.
/// 1 MiB per stream keeps one stream at link speed over a millisecond of
/// round trip; the connection's window leaves room for several such streams.
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 4 << 20;
pub use request::H2Request;
pub use stream::GRPC_PERMISSION_DENIED;

#[cfg(test)]
mod tests;

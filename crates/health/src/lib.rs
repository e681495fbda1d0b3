//! `health` owns cilium-health: the probes one node runs against every other
//! node (an ICMP echo over a raw socket, and `GET /hello` on the health port
//! over TCP), the responder that answers those HTTP probes, the status model
//! of the health API (`/v1beta`, Cilium's JSON names), its text rendering for
//! `cilium-health status`, and a small blocking client for the API's unix
//! socket.
//!
//! It must never know about the agent's internals: the agent hands it a list
//! of [`probe::Target`]s and serves what comes back. It needs no async
//! runtime; probes are blocking calls with a deadline.

pub mod client;
pub mod error;
pub mod http_probe;
pub mod icmp;
pub mod model;
pub mod probe;
pub mod render;
pub mod responder;
pub mod time;

pub use client::{HealthClient, DEFAULT_SOCKET, SOCKET_NAME};
pub use error::{ClientError, ProbeError};
pub use model::{
    ConnectivityStatus, HealthResponse, HealthStatusResponse, HostStatus, NodeStatus, PathStatus,
    SelfStatus,
};
pub use probe::{probe_all, ProbeOptions, Target};
pub use responder::{DEFAULT_PORT, HELLO_PATH};

//! `cilium-proxy`: the transparent L7 policy proxy. It owns the proxy's
//! listeners (one per redirect, `IP_TRANSPARENT` so the datapath's
//! `bpf_sk_assign` can hand it connections addressed to pods), per-request
//! parsing and enforcement of HTTP/1.1, HTTP/2 (gRPC), Kafka and DNS rules
//! (DNS answers are held until the agent has allowed their addresses), the
//! ipcache snapshot used to name peers, the access log, and the control
//! socket over which the agent configures it (see `control::protocol`).
//!
//! It must never touch BPF maps or programs, never decide L3/L4 policy (the
//! datapath already did), and never change allowed traffic: allowed requests
//! are forwarded byte for byte (HTTP/2 is re-framed by nature, its headers and
//! data are not changed).

pub mod access_log;
pub mod control;
pub mod dns;
pub mod filter;
pub mod http1;
pub mod http2;
pub mod ipcache;
pub mod kafka;
pub mod listener;
pub mod policy;
pub mod redirect;
pub mod workers;

pub use control::protocol::{Command, Redirect, PROTOCOL_VERSION};
pub use control::server::ControlServer;
pub use redirect::ProxyState;

//! `api` owns cilium-rs's REST contract: the request/response models of the
//! agent's `/v1` API (Cilium's JSON names) and a small blocking HTTP/1.1
//! client that talks to the agent over its unix socket.
//!
//! It must never contain agent logic or pull in an async runtime: the CLI and
//! the container plugins link it and must stay small and synchronous.

pub mod client;
pub mod error;
mod http;
pub mod models;

pub use client::{resolve_socket, Client, MonitorStream, DEFAULT_SOCKET};
pub use error::ClientError;
pub use models::*;

//! The agent ↔ proxy control channel: the wire protocol and its server.

pub mod protocol;
pub mod server;

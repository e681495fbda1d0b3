//! What can go wrong probing a peer, and talking to the health API.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Why a probe failed; its text is the `status` a failed path reports.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// An ICMP error came back instead of an echo reply (e.g. a router or
    /// the local stack saying the host is unreachable).
    #[error("{kind} (ICMP type {icmp_type} code {code} from {from})")]
    IcmpError {
        kind: &'static str,
        icmp_type: u8,
        code: u8,
        from: std::net::IpAddr,
    },
    #[error("connect {addr}: {error}")]
    Connect { addr: SocketAddr, error: io::Error },
    #[error("GET http://{addr}{path}: answered {status_line:?}")]
    BadAnswer {
        addr: SocketAddr,
        path: &'static str,
        status_line: String,
    },
    #[error("{what}: {error}")]
    Io { what: String, error: io::Error },
}

impl ProbeError {
    pub(crate) fn io(what: impl Into<String>, error: io::Error) -> ProbeError {
        ProbeError::Io {
            what: what.into(),
            error,
        }
    }
}

/// What can go wrong talking to the health API on its unix socket.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the cilium-health API at {}: {error}. Is cilium-agent running (with --enable-health-checking)?",
        path.display()
    )]
    Connect { path: PathBuf, error: io::Error },
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
    #[error("cannot decode {what}: {error}")]
    Decode {
        what: String,
        error: serde_json::Error,
    },
    #[error("talking to the cilium-health API: {0}")]
    Io(#[from] io::Error),
    #[error("the cilium-health API answered something that is not HTTP/1.1: {0}")]
    Protocol(String),
}

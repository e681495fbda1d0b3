//! What can go wrong talking to the agent.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be opened: the agent is most likely not running.
    /// (The io error is part of the message rather than a `source`, so
    /// error chains do not print it twice.)
    #[error("cannot reach cilium-agent at {}: {error}. Is the agent running?", path.display())]
    Connect { path: PathBuf, error: io::Error },
    /// The agent answered with a 4xx/5xx status.
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
    /// The agent answered 2xx but the body is not what the contract says.
    #[error("cannot decode {what}: {error}")]
    Decode {
        what: String,
        error: serde_json::Error,
    },
    /// The connection broke, or the answer is not valid HTTP/1.1.
    #[error("talking to cilium-agent: {0}")]
    Io(io::Error),
}

impl ClientError {
    /// The HTTP status when the agent answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(error: io::Error) -> Self {
        ClientError::Io(error)
    }
}

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::types::LeaseId;

/// Everything a kvstore operation can fail with. Callers decide on retries by kind:
/// [`KvError::Unavailable`] and [`KvError::Timeout`] are transient (the store is down or
/// slow), the others are not.
#[derive(Debug, Error)]
pub enum KvError {
    /// The store could not be reached or refused the request (connection refused,
    /// no leader, stream broken).
    #[error("kvstore {backend}: {op} {key:?} failed: {reason}")]
    Unavailable {
        backend: &'static str,
        op: &'static str,
        key: String,
        reason: String,
    },

    /// The store did not answer in time; the operation may or may not have happened.
    #[error("kvstore {backend}: {op} {key:?} timed out after {after:?}")]
    Timeout {
        backend: &'static str,
        op: &'static str,
        key: String,
        after: Duration,
    },

    /// The lease was revoked or expired: keys can no longer be attached to it.
    #[error("kvstore lease {0:#x} does not exist (expired or revoked)")]
    LeaseNotFound(LeaseId),

    /// A session has no lease yet (the store has been unreachable since it started).
    #[error("kvstore session has no lease yet: the store has not been reachable")]
    NoLease,

    #[error("journal file {path}: {reason}")]
    Persist { path: PathBuf, reason: String },
}

impl KvError {
    /// True when retrying later may succeed (the store is down, slow or electing).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            KvError::Unavailable { .. } | KvError::Timeout { .. } | KvError::NoLease
        )
    }
}

/// A `--kvstore`/`--kvstore-opt` combination that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("unsupported kvstore {0:?}: expected \"embedded\" (default) or \"etcd\"")]
    UnknownKind(String),

    #[error("kvstore option {0:?} is not of the form key=value")]
    Malformed(String),

    #[error("unknown kvstore option {key:?} for kvstore {kind}; known: {known}")]
    UnknownOption {
        kind: &'static str,
        key: String,
        known: &'static str,
    },

    #[error("kvstore etcd needs --kvstore-opt etcd.endpoints=http://HOST:PORT[,...]")]
    MissingEndpoints,

    #[error(
        "etcd endpoint {0:?} must be an http:// URL with host and port (TLS is not supported)"
    )]
    BadEndpoint(String),

    #[error("kvstore option {key}={value:?} is not a duration like 500ms, 5s or 1m")]
    BadDuration { key: String, value: String },
}

pub type Result<T> = std::result::Result<T, KvError>;

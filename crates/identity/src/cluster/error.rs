use std::time::Duration;

use thiserror::Error;

use crate::error::IdentityError;

/// What can go wrong allocating identities cluster-wide.
#[derive(Debug, Error)]
pub enum ClusterIdentityError {
    /// The kvstore is unreachable or refused; retry later.
    #[error(transparent)]
    Kvstore(#[from] kvstore::KvError),

    /// Invalid reserved labels, exhausted range, unknown id.
    #[error(transparent)]
    Identity(#[from] IdentityError),

    #[error(
        "node name {0:?} is not usable in kvstore keys: it must be non-empty and contain no '/'"
    )]
    InvalidNodeName(String),

    #[error("allocation lock {key} is held by {holder:?}; gave up after {after:?}")]
    LockTimeout {
        key: String,
        holder: String,
        after: Duration,
    },

    #[error("no identity for [{labels}] after {attempts} attempts: other nodes keep taking the chosen numbers")]
    Contention { labels: String, attempts: u32 },
}

impl ClusterIdentityError {
    /// True when retrying later may succeed (store down, lock busy, contention).
    pub fn is_transient(&self) -> bool {
        match self {
            ClusterIdentityError::Kvstore(err) => err.is_transient(),
            ClusterIdentityError::LockTimeout { .. } | ClusterIdentityError::Contention { .. } => {
                true
            }
            _ => false,
        }
    }
}

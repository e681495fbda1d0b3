use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong allocating, releasing or persisting identities.
#[derive(Debug, Error)]
pub enum IdentityError {
    #[error("identity range {min}..={max} is exhausted: every number is in use")]
    Exhausted { min: u32, max: u32 },

    #[error("identity {0} is not allocated")]
    UnknownIdentity(u32),

    /// Reserved labels may only appear alone (or `reserved:host` with anything); any
    /// other mix would silently merge two different kinds of peer.
    #[error("label set [{labels}] contains reserved labels but names no reserved identity")]
    InvalidReservedLabels { labels: String },

    #[error("cannot read identity store {path}: {source}")]
    StoreRead { path: PathBuf, source: io::Error },

    #[error("cannot write identity store {path}: {source}")]
    StoreWrite { path: PathBuf, source: io::Error },

    #[error("identity store {path} is not valid JSON: {source}")]
    StoreParse {
        path: PathBuf,
        source: serde_json::Error,
    },

    #[error("identity store {path} is inconsistent: {reason}")]
    StoreCorrupt { path: PathBuf, reason: String },
}

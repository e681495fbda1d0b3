//! Security identities: every distinct label set maps to exactly one numeric identity.
//!
//! This crate owns identity numbering (the reserved identities 1..=7 and the cluster-local
//! range [`MIN_ALLOCATED`]..=[`MAX_ALLOCATED`]), reference counting, and persisting the
//! allocator's state to a JSON file (`store`), and cluster-wide numbering through a
//! kvstore (`cluster`, which talks to the store only through `kvstore::Backend`).
//! It never evaluates policy, never talks to the kernel, and never decides which labels
//! are identity-relevant: callers hand it the final label set.

mod allocator;
pub mod cluster;
mod error;
mod labels_hash;
pub mod reserved;
mod store;

pub use allocator::{Identity, IdentityAllocator, Scope};
pub use cluster::{
    ClusterAllocator, ClusterIdentityError, IdentityEvent, IdentityGc, IdentityWatch,
};
pub use error::IdentityError;
pub use labels_hash::labels_sha256;
pub use reserved::{
    HEALTH, HOST, INIT, KUBE_APISERVER, LOCAL_MAX, LOCAL_MIN, MAX_ALLOCATED, MIN_ALLOCATED,
    REMOTE_NODE, UNKNOWN, UNMANAGED, WORLD,
};

//! The cluster state store: a [`Backend`] trait with etcd's semantics (revisions,
//! compare-and-swap, leases, resumable prefix watches) and two implementations: the
//! in-process [`Embedded`] store (single node, the default) and [`Etcd`] (etcd v3).
//! [`journal`] is the file the embedded store persists to, a map cheap to change one key
//! at a time (the agent keeps its services in one too).
//!
//! It owns talking to the store, reconnecting, keeping leases alive and re-publishing a
//! node's leased keys ([`Session`]). It never interprets keys or values: identities,
//! nodes and ipcache entries are laid out by their owners. Every call is bounded in
//! time; an unreachable store is an error value, never a hang or a panic.

mod backend;
mod config;
pub mod conformance;
mod embedded;
mod error;
mod etcd;
pub mod journal;
mod lease;
mod session;
mod types;
mod watch;

pub use backend::Backend;
pub use config::{EtcdConfig, KvstoreConfig, DEFAULT_ETCD_TIMEOUT};
pub use embedded::{Embedded, STORE_FILE};
pub use error::{ConfigError, KvError, Result};
pub use etcd::Etcd;
pub use lease::Lease;
pub use session::Session;
pub use types::{BoxFuture, KeyValue, LeaseId, Listing, Revision, WatchEvent};
pub use watch::Watch;

//! The store interface every subsystem programs against.

use std::time::Duration;

use crate::error::Result;
use crate::types::{BoxFuture, KeyValue, LeaseId, Listing, Revision};
use crate::watch::Watch;

/// A strongly consistent key-value store with revisions, leases and prefix watches:
/// the subset of etcd v3 that Cilium's cluster state needs.
///
/// Methods return boxed futures instead of being `async fn` so the trait stays object
/// safe: the agent picks the backend at runtime from its flags and shares it as
/// `Arc<dyn Backend>` between subsystems. Every method is bounded in time: a store that
/// is down makes it fail with [`KvError::Unavailable`](crate::KvError::Unavailable) or
/// [`KvError::Timeout`](crate::KvError::Timeout), never hang.
///
/// Conditional writes return `Ok(false)` when their condition does not hold; only a
/// failure to ask the store is an error.
pub trait Backend: Send + Sync + 'static {
    /// `"embedded"` or `"etcd"`, for status output and error messages.
    fn kind(&self) -> &'static str;

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>>;

    /// Every key starting with `prefix`, in key order.
    fn list_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Listing>>;

    /// Writes `key` unconditionally; returns the revision of the write.
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<Revision>>;

    /// Removes `key`; `true` when it existed.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool>>;

    /// Removes every key starting with `prefix`; returns how many there were.
    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<u64>>;

    /// Creates `key` only if it does not exist; `true` when this call created it.
    fn create_only<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<bool>>;

    /// Writes `new` only if the current value is `expected` (`None` = key absent).
    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<bool>>;

    /// Writes `new` only if the key was last modified at `mod_revision`
    /// (0 = the key must not exist).
    fn update_if_revision<'a>(
        &'a self,
        key: &'a str,
        mod_revision: Revision,
        new: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<bool>>;

    /// Deletes `key` only if it was last modified at `mod_revision`.
    fn delete_if_revision<'a>(
        &'a self,
        key: &'a str,
        mod_revision: Revision,
    ) -> BoxFuture<'a, Result<bool>>;

    /// Writes `key` only while `guard` exists (Cilium's `CreateIfExists`): a reference
    /// key is never left pointing at a master key that was just garbage-collected.
    fn set_if_exists<'a>(
        &'a self,
        guard: &'a str,
        key: &'a str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> BoxFuture<'a, Result<bool>>;

    /// A new lease that expires `ttl` after its last keep-alive (whole seconds, ≥ 1 s).
    fn grant_lease(&self, ttl: Duration) -> BoxFuture<'_, Result<LeaseId>>;

    /// Renews a lease; `Ok(false)` when it no longer exists. Use [`Lease`](crate::Lease)
    /// rather than calling this directly.
    fn keep_alive_lease(&self, lease: LeaseId) -> BoxFuture<'_, Result<bool>>;

    /// Ends a lease now, deleting every key attached to it.
    fn revoke_lease(&self, lease: LeaseId) -> BoxFuture<'_, Result<()>>;

    /// Watches every key starting with `prefix` (see [`WatchEvent`](crate::WatchEvent)).
    /// With `from_revision` the stream resumes at that revision without a replay, if
    /// the store still has that history. The stream survives store outages: it
    /// reconnects and resumes after the last revision it delivered. Must be called
    /// inside a tokio runtime; dropping the [`Watch`] stops it.
    fn watch_prefix(&self, prefix: &str, from_revision: Option<Revision>) -> Watch;

    /// One line for `cilium status`, e.g. `etcd: 3/3 endpoints, leader ..., revision 42`.
    fn status(&self) -> BoxFuture<'_, Result<String>>;
}

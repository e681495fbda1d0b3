//! A per-label-set mutex in the kvstore: a create-only key under the holder's lease,
//! so a holder that dies releases it when its lease expires.

use std::time::Duration;

use kvstore::{Backend, LeaseId};
use tokio::time::Instant;

use super::error::ClusterIdentityError;

const FIRST_POLL: Duration = Duration::from_millis(5);
const MAX_POLL: Duration = Duration::from_millis(100);

pub(crate) struct KeyLock<'a> {
    backend: &'a dyn Backend,
    key: String,
}

impl<'a> KeyLock<'a> {
    /// Takes the lock, waiting up to `timeout`. A lock this node holds under an older
    /// lease is left over from a previous run (allocations on one node are serialized),
    /// so it is taken over instead of waited for.
    pub async fn acquire(
        backend: &'a dyn Backend,
        key: String,
        node: &str,
        lease: LeaseId,
        timeout: Duration,
    ) -> Result<KeyLock<'a>, ClusterIdentityError> {
        let deadline = Instant::now() + timeout;
        let mut poll = FIRST_POLL;
        loop {
            if let Some(lock) = Self::try_acquire(backend, key.clone(), node, lease).await? {
                return Ok(lock);
            }
            if Instant::now() >= deadline {
                let holder = backend
                    .get(&key)
                    .await?
                    .map(|kv| kv.value_str().into_owned());
                return Err(ClusterIdentityError::LockTimeout {
                    key,
                    holder: holder.unwrap_or_default(),
                    after: timeout,
                });
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(MAX_POLL);
        }
    }

    /// One attempt; `None` when another node holds the lock.
    pub async fn try_acquire(
        backend: &'a dyn Backend,
        key: String,
        node: &str,
        lease: LeaseId,
    ) -> Result<Option<KeyLock<'a>>, ClusterIdentityError> {
        if backend.create_only(&key, node.into(), Some(lease)).await? {
            return Ok(Some(KeyLock { backend, key }));
        }
        if let Some(held) = backend.get(&key).await? {
            // Ours under this lease: an earlier attempt of this very call
            // committed although its answer was lost.
            if held.value == node.as_bytes() && held.lease == Some(lease) {
                return Ok(Some(KeyLock { backend, key }));
            }
            let stale_own = held.value == node.as_bytes() && held.lease != Some(lease);
            if stale_own
                && backend
                    .update_if_revision(&key, held.mod_revision, node.into(), Some(lease))
                    .await?
            {
                return Ok(Some(KeyLock { backend, key }));
            }
        }
        Ok(None)
    }

    /// Best effort: if the delete fails the lock ends with the holder's lease.
    pub async fn release(self) {
        let _ = self.backend.delete(&self.key).await;
    }
}

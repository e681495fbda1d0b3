//! Keys a node owns under its lease, re-created whenever the lease is lost.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tokio::task::AbortHandle;

use crate::backend::Backend;
use crate::error::{KvError, Result};
use crate::lease::{keep_alive_interval, RETRY_KEEP_ALIVE};
use crate::types::LeaseId;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A node's presence in the store: one lease, kept alive in the background, and the
/// keys the node publishes under it.
///
/// When the lease is lost (it expired while the store was unreachable, or the store
/// was wiped), the session grants a new one as soon as the store answers, writes every
/// owned key again, and bumps [`Session::generation`] so that other owners of leased
/// keys (e.g. the identity allocator) can re-publish theirs. Cloning shares the
/// session; when the last clone is dropped the lease is revoked and the keys vanish.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    ttl: Duration,
    lease: watch::Sender<Option<LeaseId>>,
    generation: watch::Sender<u64>,
    owned: Mutex<BTreeMap<String, Vec<u8>>>,
    maintainer: std::sync::OnceLock<AbortHandle>,
}

impl Session {
    /// Starts the session; the lease is granted in the background, retried until the
    /// store answers. Needs a tokio runtime.
    pub fn start(backend: Arc<dyn Backend>, ttl: Duration) -> Session {
        let inner = Arc::new(Inner {
            backend: backend.clone(),
            ttl,
            lease: watch::channel(None).0,
            generation: watch::channel(0).0,
            owned: Mutex::new(BTreeMap::new()),
            maintainer: std::sync::OnceLock::new(),
        });
        let task = tokio::spawn(maintain(backend, ttl, Arc::downgrade(&inner)));
        let _ = inner.maintainer.set(task.abort_handle());
        Session { inner }
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The current lease, if one is granted and not known to be lost.
    pub fn lease_id(&self) -> Option<LeaseId> {
        *self.inner.lease.borrow()
    }

    /// Waits until a lease is granted, at most `timeout`.
    pub async fn wait_for_lease(&self, timeout: Duration) -> Result<LeaseId> {
        let mut lease = self.inner.lease.subscribe();
        let granted = tokio::time::timeout(timeout, lease.wait_for(Option::is_some)).await;
        match granted {
            Ok(Ok(id)) => Ok(id.expect("waited for Some")),
            _ => Err(KvError::NoLease),
        }
    }

    /// Counts leases granted so far; it changes after a new lease was granted and the
    /// owned keys were written again. Owners of other leased keys re-publish on change.
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    /// Publishes `key` under the lease and remembers it for re-publishing. When the
    /// store is unreachable the error is returned, but the key is still remembered and
    /// is written as soon as the session has a lease again.
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let mut owned = self.inner.owned.lock().await;
        owned.insert(key.to_string(), value.clone());
        let lease = self.lease_id().ok_or(KvError::NoLease)?;
        self.inner.backend.set(key, value, Some(lease)).await?;
        Ok(())
    }

    /// Forgets `key` and deletes it from the store.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let mut owned = self.inner.owned.lock().await;
        owned.remove(key);
        self.inner.backend.delete(key).await?;
        Ok(())
    }

    /// The keys this session owns, in order.
    pub async fn owned_keys(&self) -> Vec<String> {
        self.inner.owned.lock().await.keys().cloned().collect()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.maintainer.get() {
            task.abort();
        }
        let Some(lease) = *self.lease.borrow() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let backend = self.backend.clone();
            runtime.spawn(async move {
                let _ = backend.revoke_lease(lease).await;
            });
        }
    }
}

/// Why keeping the current lease stopped.
enum LeaseEnd {
    Lost,
    SessionDropped,
}

async fn maintain(backend: Arc<dyn Backend>, ttl: Duration, session: Weak<Inner>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        if session.strong_count() == 0 {
            return;
        }
        let lease = match backend.grant_lease(ttl).await {
            Ok(lease) => lease,
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        match hold(&*backend, ttl, &session, lease).await {
            LeaseEnd::Lost => {
                if let Some(inner) = session.upgrade() {
                    inner.lease.send_replace(None);
                }
            }
            LeaseEnd::SessionDropped => {
                let _ = backend.revoke_lease(lease).await;
                return;
            }
        }
    }
}

/// Publishes the owned keys under `lease` and keeps it alive until it is lost.
async fn hold(
    backend: &dyn Backend,
    ttl: Duration,
    session: &Weak<Inner>,
    lease: LeaseId,
) -> LeaseEnd {
    let Some(inner) = session.upgrade() else {
        return LeaseEnd::SessionDropped;
    };
    inner.lease.send_replace(Some(lease));
    drop(inner);
    let mut published = false;
    loop {
        if !published {
            let Some(inner) = session.upgrade() else {
                return LeaseEnd::SessionDropped;
            };
            match republish(&inner, lease).await {
                Ok(()) => {
                    published = true;
                    inner.generation.send_modify(|generation| *generation += 1);
                }
                Err(KvError::LeaseNotFound(_)) => return LeaseEnd::Lost,
                Err(_) => {}
            }
        }
        let wait = match published {
            true => keep_alive_interval(ttl),
            false => RETRY_KEEP_ALIVE,
        };
        tokio::time::sleep(wait).await;
        if session.strong_count() == 0 {
            return LeaseEnd::SessionDropped;
        }
        match backend.keep_alive_lease(lease).await {
            Ok(true) => {}
            Ok(false) | Err(KvError::LeaseNotFound(_)) => return LeaseEnd::Lost,
            Err(_) => {}
        }
    }
}

async fn republish(inner: &Inner, lease: LeaseId) -> Result<()> {
    let owned = inner.owned.lock().await;
    for (key, value) in owned.iter() {
        inner.backend.set(key, value.clone(), Some(lease)).await?;
    }
    Ok(())
}

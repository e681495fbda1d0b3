//! A lease kept alive in the background and revoked when dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::backend::Backend;
use crate::error::{KvError, Result};
use crate::types::LeaseId;

/// How soon to retry a keep-alive that could not reach the store.
pub(crate) const RETRY_KEEP_ALIVE: Duration = Duration::from_millis(250);

/// Keep-alives go out three times per TTL, so one lost renewal does not expire it.
pub(crate) fn keep_alive_interval(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(20))
}

/// A granted lease. A background task renews it every TTL/3; when the store says the
/// lease is gone (it expired during an outage, or was revoked), [`Lease::is_alive`]
/// turns false and [`Lease::lost`] resolves. Dropping the lease revokes it, which
/// deletes every key attached to it.
///
/// For keys that must come back after a lease loss, use [`Session`](crate::Session).
pub struct Lease {
    id: LeaseId,
    ttl: Duration,
    backend: Arc<dyn Backend>,
    alive: watch::Receiver<bool>,
    keeper: AbortHandle,
    revoked: bool,
}

impl Lease {
    /// Grants a lease of `ttl` and starts keeping it alive. Needs a tokio runtime.
    pub async fn grant(backend: Arc<dyn Backend>, ttl: Duration) -> Result<Lease> {
        let id = backend.grant_lease(ttl).await?;
        let (alive_tx, alive) = watch::channel(true);
        let keeper = tokio::spawn(keep_alive(backend.clone(), id, ttl, alive_tx)).abort_handle();
        Ok(Lease {
            id,
            ttl,
            backend,
            alive,
            keeper,
            revoked: false,
        })
    }

    pub fn id(&self) -> LeaseId {
        self.id
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// False once a keep-alive learned that the store no longer has the lease.
    pub fn is_alive(&self) -> bool {
        *self.alive.borrow()
    }

    /// Resolves when the lease is known to be gone.
    pub async fn lost(&self) {
        let mut alive = self.alive.clone();
        // An error means the keeper ended, which it only does after losing the lease.
        let _ = alive.wait_for(|alive| !alive).await;
    }

    /// Revokes now and waits for the store to confirm.
    pub async fn revoke(mut self) -> Result<()> {
        self.keeper.abort();
        self.revoked = true;
        match self.backend.revoke_lease(self.id).await {
            Ok(()) | Err(KvError::LeaseNotFound(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("id", &self.id)
            .field("ttl", &self.ttl)
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.abort();
        if self.revoked {
            return;
        }
        // Best effort: without a runtime (process exit) the lease simply expires.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let backend = self.backend.clone();
            let id = self.id;
            runtime.spawn(async move {
                let _ = backend.revoke_lease(id).await;
            });
        }
    }
}

async fn keep_alive(
    backend: Arc<dyn Backend>,
    id: LeaseId,
    ttl: Duration,
    alive: watch::Sender<bool>,
) {
    let mut wait = keep_alive_interval(ttl);
    loop {
        tokio::time::sleep(wait).await;
        match backend.keep_alive_lease(id).await {
            Ok(true) => wait = keep_alive_interval(ttl),
            Ok(false) | Err(KvError::LeaseNotFound(_)) => {
                alive.send_replace(false);
                return;
            }
            // The store is unreachable: the lease may well survive the outage (etcd
            // extends leases across leader elections), so keep trying.
            Err(_) => wait = RETRY_KEEP_ALIVE.min(keep_alive_interval(ttl)),
        }
    }
}

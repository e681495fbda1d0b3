//! Cluster-wide identities: every node that asks for the same label set gets the same
//! number, agreed through the kvstore (see [`keys`] for the layout, which follows
//! Cilium's kvstore allocator).
//!
//! A node holds one reference key per label set it uses, under its session lease: the
//! count of local users stays on the node, so the kvstore sees one key per node, and a
//! dead node's references vanish with its lease. [`IdentityGc`] deletes numbers that no
//! node references any more, after a grace period. [`IdentityWatch`] tells every node
//! about identities as they come and go, for its policy's selector cache.
//!
//! The pure [`IdentityAllocator`](crate::IdentityAllocator) stays the single-node
//! allocator; this module never touches it.

mod error;
mod gc;
pub mod keys;
mod lock;
mod watch;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use kvstore::{Backend, LeaseId, Session};
use policy::labels::Labels;

pub use error::ClusterIdentityError;
pub use gc::IdentityGc;
pub use watch::{IdentityEvent, IdentityWatch};

use crate::allocator::Identity;
use crate::error::IdentityError;
use crate::reserved::{self, MAX_ALLOCATED, MIN_ALLOCATED};
use lock::KeyLock;

/// How many numbers an allocation tries before reporting contention.
const MAX_ATTEMPTS: u32 = 16;
/// How long an allocation waits for another node's lock on the same label set.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an allocation waits for the session to have a lease.
const LEASE_WAIT: Duration = Duration::from_secs(5);
/// Pause between attempts to re-publish after the session got a new lease.
const REPUBLISH_RETRY: Duration = Duration::from_millis(500);

/// This node's view of cluster identities. Cheap to clone (shared state).
#[derive(Clone)]
pub struct ClusterAllocator {
    inner: Arc<Inner>,
}

struct Inner {
    session: Session,
    node: String,
    local: Mutex<LocalRefs>,
    /// Allocations and releases of this node run one at a time: with the kvstore lock
    /// per label set this keeps the node's reference keys consistent with `local`.
    serial: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct LocalRefs {
    by_labels: BTreeMap<Labels, (u32, u32)>,
    by_id: BTreeMap<u32, Labels>,
    /// Where the search for a free number starts (moves past each new allocation so a
    /// freed number is not handed straight to another label set).
    cursor: u32,
    /// Reference keys whose deletion failed (store down): retried later.
    pending_deletes: Vec<String>,
}

impl ClusterAllocator {
    /// An allocator for node `node` publishing under `session`'s lease. Re-publishes the
    /// node's keys whenever the session gets a new lease. Needs a tokio runtime.
    pub fn start(session: Session, node: impl Into<String>) -> Result<Self, ClusterIdentityError> {
        let node = node.into();
        if node.is_empty() || node.contains('/') {
            return Err(ClusterIdentityError::InvalidNodeName(node));
        }
        let inner = Arc::new(Inner {
            session,
            node,
            local: Mutex::new(LocalRefs {
                cursor: MIN_ALLOCATED,
                ..LocalRefs::default()
            }),
            serial: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(republish_on_new_lease(Arc::downgrade(&inner)));
        Ok(ClusterAllocator { inner })
    }

    pub fn node(&self) -> &str {
        &self.inner.node
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        self.inner.session.backend()
    }

    /// The identity for `labels`, allocating a number cluster-wide if none exists
    /// (`true` = this call created it). Each call takes one local reference; balance it
    /// with [`release`](Self::release). Reserved label sets return their fixed identity
    /// without a reference and without touching the kvstore.
    pub async fn allocate(
        &self,
        labels: &Labels,
    ) -> Result<(Identity, bool), ClusterIdentityError> {
        if let Some(id) = reserved::reserved_for(labels)? {
            return Ok((reserved_identity(id), false));
        }
        let _serial = self.inner.serial.lock().await;
        self.flush_pending_deletes().await;
        if let Some(id) = self.inner.take_local_ref(labels) {
            return Ok((
                Identity {
                    id,
                    labels: labels.clone(),
                },
                false,
            ));
        }
        let lease = self.lease().await?;
        let key = keys::labels_key(labels);
        let backend = &**self.backend();
        let lock = KeyLock::acquire(
            backend,
            keys::lock_key(&key),
            self.node(),
            lease,
            LOCK_TIMEOUT,
        )
        .await?;
        let result = self.allocate_locked(labels, &key, lease).await;
        lock.release().await;
        let (id, created) = result?;
        let mut local = self.inner.lock_local();
        local.by_labels.insert(labels.clone(), (id, 1));
        local.by_id.insert(id, labels.clone());
        if created {
            local.cursor = if id == MAX_ALLOCATED {
                MIN_ALLOCATED
            } else {
                id + 1
            };
        }
        Ok((
            Identity {
                id,
                labels: labels.clone(),
            },
            created,
        ))
    }

    /// Drops one local reference; `true` when it was the node's last, which removes
    /// the node's reference key (the number itself goes at the next GC when no other
    /// node uses it). Reserved ids: `false`.
    pub async fn release(&self, id: u32) -> Result<bool, ClusterIdentityError> {
        if reserved::is_reserved(id) {
            return Ok(false);
        }
        let _serial = self.inner.serial.lock().await;
        let labels = {
            let mut local = self.inner.lock_local();
            let labels = local
                .by_id
                .get(&id)
                .cloned()
                .ok_or(IdentityError::UnknownIdentity(id))?;
            let refs = &mut local
                .by_labels
                .get_mut(&labels)
                .expect("by_id mirrors by_labels")
                .1;
            *refs -= 1;
            if *refs > 0 {
                return Ok(false);
            }
            local.by_labels.remove(&labels);
            local.by_id.remove(&id);
            labels
        };
        let value_key = keys::value_key(&keys::labels_key(&labels), self.node());
        if self.backend().delete(&value_key).await.is_err() {
            // The store is down: the key goes with the lease or at the next flush.
            self.inner.lock_local().pending_deletes.push(value_key);
        }
        Ok(true)
    }

    /// How many local references the node holds on `id`.
    pub fn local_refcount(&self, id: u32) -> Option<u32> {
        let local = self.inner.lock_local();
        let labels = local.by_id.get(&id)?;
        local.by_labels.get(labels).map(|(_, refs)| *refs)
    }

    /// The number `labels` has cluster-wide, without taking a reference.
    pub async fn lookup(&self, labels: &Labels) -> Result<Option<u32>, ClusterIdentityError> {
        if let Some(id) = reserved::reserved_for(labels)? {
            return Ok(Some(id));
        }
        if let Some((id, _)) = self.inner.lock_local().by_labels.get(labels) {
            return Ok(Some(*id));
        }
        let key = keys::labels_key(labels);
        let references = self
            .backend()
            .list_prefix(&keys::value_prefix(&key))
            .await?;
        for reference in references.kvs {
            let Ok(id) = reference.value_str().parse::<u32>() else {
                continue;
            };
            if self.master_labels_key(id).await?.as_deref() == Some(key.as_str()) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The identity numbered `id`, reserved or allocated anywhere in the cluster.
    pub async fn get(&self, id: u32) -> Result<Option<Identity>, ClusterIdentityError> {
        if reserved::is_reserved(id) {
            return Ok(reserved::name_of(id)
                .filter(|_| id != reserved::UNKNOWN)
                .map(|_| reserved_identity(id)));
        }
        let labels = self.master_labels_key(id).await?;
        Ok(labels
            .and_then(|key| keys::parse_labels_key(&key))
            .map(|labels| Identity { id, labels }))
    }

    /// Every identity: the reserved ones, then every allocated number in the cluster.
    pub async fn list(&self) -> Result<Vec<Identity>, ClusterIdentityError> {
        let mut all: Vec<Identity> = reserved::all()
            .map(|(id, _)| reserved_identity(id))
            .collect();
        let masters = self.backend().list_prefix(keys::ID_PREFIX).await?;
        let mut allocated: Vec<Identity> = masters
            .kvs
            .iter()
            .filter_map(|kv| {
                let id = keys::parse_master_key(&kv.key)?;
                let labels = keys::parse_labels_key(&kv.value_str())?;
                Some(Identity { id, labels })
            })
            .collect();
        allocated.sort_by_key(|identity| identity.id);
        all.extend(allocated);
        Ok(all)
    }

    /// Follows identities allocated anywhere in the cluster.
    pub fn watch(&self) -> IdentityWatch {
        IdentityWatch::new(self.backend().watch_prefix(keys::ID_PREFIX, None))
    }

    /// A garbage collector for unreferenced numbers; run it periodically on one or
    /// every node (runs on several nodes are safe: deletion holds the per-label lock).
    pub fn gc_with_grace(&self, grace: Duration) -> IdentityGc {
        IdentityGc::new(self.inner.session.clone(), self.inner.node.clone(), grace)
    }

    /// Writes this node's keys again: each used number's master key if it vanished,
    /// then the node's reference key under the current lease. Runs by itself after a
    /// lease loss; callable after any doubt.
    pub async fn republish(&self) -> Result<(), ClusterIdentityError> {
        let _serial = self.inner.serial.lock().await;
        self.flush_pending_deletes().await;
        let lease = self.lease().await?;
        let used: Vec<(u32, Labels)> = self.inner.lock_local().by_id.clone().into_iter().collect();
        let backend = self.backend();
        for (id, labels) in used {
            let key = keys::labels_key(&labels);
            let master = keys::master_key(id);
            backend
                .create_only(&master, key.clone().into_bytes(), None)
                .await?;
            // If another label set took the number while we were away, do not claim it;
            // the conflict is left for the caller to resolve by allocating anew.
            if self.master_labels_key(id).await?.as_deref() != Some(key.as_str()) {
                continue;
            }
            let value_key = keys::value_key(&key, self.node());
            backend
                .set_if_exists(
                    &master,
                    &value_key,
                    id.to_string().into_bytes(),
                    Some(lease),
                )
                .await?;
        }
        Ok(())
    }

    async fn allocate_locked(
        &self,
        labels: &Labels,
        key: &str,
        lease: LeaseId,
    ) -> Result<(u32, bool), ClusterIdentityError> {
        let backend = self.backend();
        let value_key = keys::value_key(key, self.node());
        for _ in 0..MAX_ATTEMPTS {
            // Another node may already use a number for these labels.
            let references = backend.list_prefix(&keys::value_prefix(key)).await?;
            for reference in &references.kvs {
                let Ok(id) = reference.value_str().parse::<u32>() else {
                    continue;
                };
                if self.master_labels_key(id).await?.as_deref() != Some(key) {
                    continue;
                }
                let id_bytes = id.to_string().into_bytes();
                if backend
                    .set_if_exists(&keys::master_key(id), &value_key, id_bytes, Some(lease))
                    .await?
                {
                    return Ok((id, false));
                }
            }
            // A number nobody references yet still has its master key until GC: reuse it
            // (under the lock, GC cannot delete it meanwhile).
            let masters = backend.list_prefix(keys::ID_PREFIX).await?;
            let orphan = masters
                .kvs
                .iter()
                .find(|kv| kv.value == key.as_bytes())
                .and_then(|kv| keys::parse_master_key(&kv.key));
            if let Some(id) = orphan {
                let id_bytes = id.to_string().into_bytes();
                if backend
                    .set_if_exists(&keys::master_key(id), &value_key, id_bytes, Some(lease))
                    .await?
                {
                    return Ok((id, false));
                }
            }
            // None: take a free number. Creating the master key is the claim; if another
            // node claimed the same number first, try the next one.
            let id = self.free_number(&masters)?;
            let master = keys::master_key(id);
            if !backend
                .create_only(&master, key.as_bytes().to_vec(), None)
                .await?
            {
                self.inner.lock_local().cursor = id.saturating_add(1).min(MAX_ALLOCATED);
                continue;
            }
            let id_bytes = id.to_string().into_bytes();
            if backend
                .set_if_exists(&master, &value_key, id_bytes, Some(lease))
                .await?
            {
                return Ok((id, true));
            }
        }
        Err(ClusterIdentityError::Contention {
            labels: labels.to_string(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// The lowest number at or after the cursor with no master key, wrapping around.
    fn free_number(&self, masters: &kvstore::Listing) -> Result<u32, ClusterIdentityError> {
        let used: std::collections::BTreeSet<u32> = masters
            .kvs
            .iter()
            .filter_map(|kv| keys::parse_master_key(&kv.key))
            .collect();
        let cursor = self
            .inner
            .lock_local()
            .cursor
            .clamp(MIN_ALLOCATED, MAX_ALLOCATED);
        (cursor..=MAX_ALLOCATED)
            .chain(MIN_ALLOCATED..cursor)
            .find(|id| !used.contains(id))
            .ok_or(ClusterIdentityError::Identity(IdentityError::Exhausted {
                min: MIN_ALLOCATED,
                max: MAX_ALLOCATED,
            }))
    }

    async fn master_labels_key(&self, id: u32) -> Result<Option<String>, ClusterIdentityError> {
        let master = self.backend().get(&keys::master_key(id)).await?;
        Ok(master.map(|kv| kv.value_str().into_owned()))
    }

    /// The session's lease, waiting a little for the first grant (right after start,
    /// or while the session re-grants after a loss).
    async fn lease(&self) -> Result<LeaseId, ClusterIdentityError> {
        Ok(self.inner.session.wait_for_lease(LEASE_WAIT).await?)
    }

    async fn flush_pending_deletes(&self) {
        let pending = std::mem::take(&mut self.inner.lock_local().pending_deletes);
        for key in pending {
            if self.backend().delete(&key).await.is_err() {
                self.inner.lock_local().pending_deletes.push(key);
            }
        }
    }
}

impl Inner {
    fn lock_local(&self) -> std::sync::MutexGuard<'_, LocalRefs> {
        self.local
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn take_local_ref(&self, labels: &Labels) -> Option<u32> {
        let mut local = self.lock_local();
        let (id, refs) = local.by_labels.get_mut(labels)?;
        *refs += 1;
        Some(*id)
    }
}

fn reserved_identity(id: u32) -> Identity {
    let name = reserved::name_of(id).expect("reserved ids have names");
    Identity {
        id,
        labels: Labels::reserved(name),
    }
}

async fn republish_on_new_lease(inner: Weak<Inner>) {
    let Some(mut generation) = inner.upgrade().map(|inner| inner.session.generation()) else {
        return;
    };
    while generation.changed().await.is_ok() {
        loop {
            let Some(inner) = inner.upgrade() else { return };
            let allocator = ClusterAllocator { inner };
            match allocator.republish().await {
                Ok(()) => break,
                Err(_) => tokio::time::sleep(REPUBLISH_RETRY).await,
            }
        }
    }
}

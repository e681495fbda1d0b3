//! Garbage collection of cluster identities that no node references.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use kvstore::{KvError, Revision, Session};
use tokio::time::Instant;

use super::error::ClusterIdentityError;
use super::keys;
use super::lock::KeyLock;

/// Deletes master keys without any node's reference key. A number must be seen
/// unreferenced, with an unchanged master key, on two runs at least `grace` apart
/// before it goes: a master key is created a moment before its first reference, and
/// a node whose lease just lapsed gets a chance to re-publish.
pub struct IdentityGc {
    session: Session,
    node: String,
    grace: Duration,
    /// Unreferenced numbers: master key revision and when first seen so.
    candidates: HashMap<u32, (Revision, Instant)>,
}

impl IdentityGc {
    pub(crate) fn new(session: Session, node: String, grace: Duration) -> Self {
        IdentityGc {
            session,
            node,
            grace,
            candidates: HashMap::new(),
        }
    }

    /// One pass; returns the numbers it deleted.
    pub async fn run_once(&mut self) -> Result<Vec<u32>, ClusterIdentityError> {
        let backend = self.session.backend().clone();
        let masters = backend.list_prefix(keys::ID_PREFIX).await?;
        let references = backend.list_prefix(keys::VALUE_PREFIX).await?;
        let referenced: BTreeSet<&str> = references
            .kvs
            .iter()
            .filter_map(|kv| keys::parse_value_key(&kv.key).map(|(labels, _)| labels))
            .collect();
        let now = Instant::now();
        let mut seen = BTreeSet::new();
        let mut deleted = Vec::new();
        for master in &masters.kvs {
            let Some(id) = keys::parse_master_key(&master.key) else {
                continue;
            };
            seen.insert(id);
            let labels_key = master.value_str();
            if referenced.contains(labels_key.as_ref()) {
                self.candidates.remove(&id);
                continue;
            }
            match self.candidates.get(&id) {
                Some((revision, since))
                    if *revision == master.mod_revision && now - *since >= self.grace =>
                {
                    if self.delete(id, &labels_key, master.mod_revision).await? {
                        deleted.push(id);
                    }
                    self.candidates.remove(&id);
                }
                Some((revision, _)) if *revision == master.mod_revision => {}
                _ => {
                    self.candidates.insert(id, (master.mod_revision, now));
                }
            }
        }
        self.candidates.retain(|id, _| seen.contains(id));
        Ok(deleted)
    }

    /// Runs a pass every `interval` forever, ignoring failures (the store may be down;
    /// the next pass retries). Spawn it as a task and abort it to stop.
    pub async fn run(mut self, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            let _ = self.run_once().await;
        }
    }

    /// Deletes the master key under the label set's lock, after checking again that no
    /// node took a reference meanwhile.
    async fn delete(
        &self,
        id: u32,
        labels_key: &str,
        revision: Revision,
    ) -> Result<bool, ClusterIdentityError> {
        let backend = self.session.backend();
        let lease = self.session.lease_id().ok_or(KvError::NoLease)?;
        let lock_key = keys::lock_key(labels_key);
        let Some(lock) = KeyLock::try_acquire(&**backend, lock_key, &self.node, lease).await?
        else {
            return Ok(false);
        };
        let result = async {
            let references = backend.list_prefix(&keys::value_prefix(labels_key)).await?;
            if !references.kvs.is_empty() {
                return Ok(false);
            }
            backend
                .delete_if_revision(&keys::master_key(id), revision)
                .await
        }
        .await;
        lock.release().await;
        Ok(result?)
    }
}

//! The embedded store's data: keys with revisions, leases, and a bounded change history
//! for resuming watches. Pure and synchronous; the caller holds it behind a mutex.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::error::{KvError, Result};
use crate::journal;
use crate::types::{KeyValue, LeaseId, Listing, Revision};

/// How many past changes a resuming watch can catch up on; older resumes replay.
const HISTORY_LEN: usize = 8192;
/// Buffered changes per live watch before it lags and replays.
const BROADCAST_LEN: usize = 4096;

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    create_revision: Revision,
    mod_revision: Revision,
    lease: Option<LeaseId>,
}

/// One committed change: a write (`value: Some`) or a deletion.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub key: String,
    pub value: Option<Vec<u8>>,
    pub revision: Revision,
}

#[derive(Debug)]
struct LeaseEntry {
    ttl: Duration,
    deadline: Instant,
    keys: BTreeSet<String>,
}

#[derive(Debug)]
pub(crate) struct State {
    kv: BTreeMap<String, Entry>,
    revision: Revision,
    leases: HashMap<LeaseId, LeaseEntry>,
    next_lease: LeaseId,
    history: VecDeque<Arc<Change>>,
    /// Lowest revision a watch can resume from without a replay.
    history_start: Revision,
    changes: broadcast::Sender<Arc<Change>>,
    /// Lease-less keys written (`Some`) or deleted (`None`) since the last take.
    durable_changes: Vec<journal::Change>,
}

impl State {
    /// A store holding `keys` (without leases) at `revision`, e.g. loaded from disk.
    pub fn new(keys: BTreeMap<String, Vec<u8>>, revision: Revision) -> Self {
        let (changes, _) = broadcast::channel(BROADCAST_LEN);
        let kv = keys
            .into_iter()
            .map(|(key, value)| {
                let entry = Entry {
                    value,
                    create_revision: revision,
                    mod_revision: revision,
                    lease: None,
                };
                (key, entry)
            })
            .collect();
        State {
            kv,
            revision,
            leases: HashMap::new(),
            next_lease: 0x1000,
            history: VecDeque::new(),
            history_start: revision + 1,
            changes,
            durable_changes: Vec::new(),
        }
    }

    /// The lease-less keys' changes since the last call, in order.
    pub fn take_durable_changes(&mut self) -> Vec<journal::Change> {
        std::mem::take(&mut self.durable_changes)
    }

    pub fn revision(&self) -> Revision {
        self.revision
    }

    pub fn get(&self, key: &str) -> Option<KeyValue> {
        self.kv.get(key).map(|entry| to_key_value(key, entry))
    }

    pub fn list(&self, prefix: &str) -> Listing {
        let kvs = self
            .kv
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, entry)| to_key_value(key, entry))
            .collect();
        Listing {
            kvs,
            revision: self.revision,
        }
    }

    pub fn put(&mut self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision> {
        if let Some(id) = lease {
            if !self.leases.contains_key(&id) {
                return Err(KvError::LeaseNotFound(id));
            }
        }
        let revision = self.revision + 1;
        let previous = self.kv.get(key).cloned();
        if lease.is_none() {
            self.durable_changes
                .push((key.to_string(), Some(value.clone())));
        } else if previous.as_ref().is_some_and(|entry| entry.lease.is_none()) {
            // A durable key taken over by a lease is no longer durable.
            self.durable_changes.push((key.to_string(), None));
        }
        if let Some(old) = previous.as_ref().and_then(|entry| entry.lease) {
            if let Some(old_lease) = self.leases.get_mut(&old) {
                old_lease.keys.remove(key);
            }
        }
        if let Some(id) = lease {
            self.leases
                .get_mut(&id)
                .expect("checked above")
                .keys
                .insert(key.to_string());
        }
        let entry = Entry {
            value: value.clone(),
            create_revision: previous.map_or(revision, |entry| entry.create_revision),
            mod_revision: revision,
            lease,
        };
        self.kv.insert(key.to_string(), entry);
        self.commit(key, Some(value));
        Ok(revision)
    }

    /// Deletes `key`; `true` when it existed.
    pub fn remove(&mut self, key: &str) -> bool {
        let Some(entry) = self.kv.remove(key) else {
            return false;
        };
        match entry.lease.and_then(|id| self.leases.get_mut(&id)) {
            Some(lease) => {
                lease.keys.remove(key);
            }
            None => self.durable_changes.push((key.to_string(), None)),
        }
        self.commit(key, None);
        true
    }

    pub fn remove_prefix(&mut self, prefix: &str) -> u64 {
        let keys: Vec<String> = self.list(prefix).kvs.into_iter().map(|kv| kv.key).collect();
        keys.iter().filter(|key| self.remove(key)).count() as u64
    }

    pub fn grant(&mut self, ttl: Duration, now: Instant) -> LeaseId {
        self.next_lease += 1;
        let lease = LeaseEntry {
            ttl,
            deadline: now + ttl,
            keys: BTreeSet::new(),
        };
        self.leases.insert(self.next_lease, lease);
        self.next_lease
    }

    pub fn keep_alive(&mut self, id: LeaseId, now: Instant) -> bool {
        match self.leases.get_mut(&id) {
            Some(lease) => {
                lease.deadline = now + lease.ttl;
                true
            }
            None => false,
        }
    }

    /// Ends a lease and deletes its keys; `false` when it did not exist.
    pub fn revoke(&mut self, id: LeaseId) -> bool {
        let Some(lease) = self.leases.remove(&id) else {
            return false;
        };
        for key in lease.keys {
            self.remove(&key);
        }
        true
    }

    /// Revokes every lease whose deadline has passed.
    pub fn expire(&mut self, now: Instant) {
        let expired: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, lease)| lease.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.revoke(id);
        }
    }

    /// Changes since `from` (inclusive) under `prefix`, if the history still has them.
    pub fn changes_since(&self, from: Revision, prefix: &str) -> Option<Vec<Arc<Change>>> {
        if from < self.history_start {
            return None;
        }
        Some(
            self.history
                .iter()
                .filter(|change| change.revision >= from && change.key.starts_with(prefix))
                .cloned()
                .collect(),
        )
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    fn commit(&mut self, key: &str, value: Option<Vec<u8>>) {
        self.revision += 1;
        let change = Arc::new(Change {
            key: key.to_string(),
            value,
            revision: self.revision,
        });
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
            self.history_start = self.history.front().map_or(self.revision, |c| c.revision);
        }
        if self.history.is_empty() {
            self.history_start = self.revision;
        }
        self.history.push_back(change.clone());
        // Nobody listening is fine.
        let _ = self.changes.send(change);
    }
}

fn to_key_value(key: &str, entry: &Entry) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: entry.value.clone(),
        create_revision: entry.create_revision,
        mod_revision: entry.mod_revision,
        lease: entry.lease,
    }
}

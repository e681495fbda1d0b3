//! Identity events for every node's policy, read from the master keys.

use kvstore::{Watch, WatchEvent};

use super::keys;
use crate::allocator::Identity;

/// What the identity watch reports. `ListStart` … `ListDone` frame a full replay of
/// the cluster's identities (at start, and again whenever the watch could not resume):
/// a consumer drops every identity it knows that was not upserted in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityEvent {
    ListStart,
    /// An identity exists (new, or seen again in a replay).
    Upsert(Identity),
    /// The number was garbage-collected.
    Delete(u32),
    ListDone,
}

/// A running watch on cluster identities; survives kvstore outages.
#[derive(Debug)]
pub struct IdentityWatch {
    watch: Watch,
}

impl IdentityWatch {
    pub(crate) fn new(watch: Watch) -> Self {
        IdentityWatch { watch }
    }

    /// The next event; keys that do not parse as identities are skipped.
    pub async fn next(&mut self) -> Option<IdentityEvent> {
        loop {
            let event = match self.watch.next().await? {
                WatchEvent::ListStart => Some(IdentityEvent::ListStart),
                WatchEvent::ListDone { .. } => Some(IdentityEvent::ListDone),
                WatchEvent::Put { key, value, .. } => {
                    let id = keys::parse_master_key(&key);
                    let labels = keys::parse_labels_key(&String::from_utf8_lossy(&value));
                    id.zip(labels)
                        .map(|(id, labels)| IdentityEvent::Upsert(Identity { id, labels }))
                }
                WatchEvent::Delete { key, .. } => {
                    keys::parse_master_key(&key).map(IdentityEvent::Delete)
                }
            };
            if let Some(event) = event {
                return Some(event);
            }
        }
    }
}

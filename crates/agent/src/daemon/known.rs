//! The identities this node knows: reserved ones, those allocated here, and
//! those the cluster's identity watch reported. What policy resolves against.

use std::collections::BTreeMap;

use identity::Identity;
use policy::Labels;

pub(super) struct KnownIdentities {
    by_id: BTreeMap<u32, Identity>,
}

impl KnownIdentities {
    pub fn new() -> Self {
        let by_id = policy::reserved::reserved_identities()
            .into_iter()
            .map(|(id, labels)| (id, Identity { id, labels }))
            .collect();
        KnownIdentities { by_id }
    }

    /// `true` when the identity was not known before.
    pub fn insert(&mut self, identity: Identity) -> bool {
        self.by_id.insert(identity.id, identity).is_none()
    }

    /// Reserved identities are never forgotten.
    pub fn remove(&mut self, id: u32) -> Option<Identity> {
        if identity::reserved::is_reserved(id) {
            return None;
        }
        self.by_id.remove(&id)
    }

    pub fn get(&self, id: u32) -> Option<&Identity> {
        self.by_id.get(&id)
    }

    pub fn list(&self) -> Vec<Identity> {
        self.by_id.values().cloned().collect()
    }

    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_id.keys().copied()
    }

    pub fn all_labels(&self) -> BTreeMap<u32, Labels> {
        self.by_id
            .iter()
            .map(|(id, i)| (*id, i.labels.clone()))
            .collect()
    }
}

//! Identities in CRD mode (Cilium's default on Kubernetes): each number is a
//! CiliumIdentity object, so a cluster needs no kvstore of its own. A node
//! looks a label set up among the objects it knows (kept current by a
//! watch, see `learned`), else creates the object. The first number tried
//! is derived from the labels, so nodes racing to create the same identity
//! pick the same number and the loser finds the winner's object.

use std::collections::BTreeMap;
use std::sync::Mutex;

use identity::{Identity, MAX_ALLOCATED, MIN_ALLOCATED};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::Client;
use policy::Labels;

use crate::cilium_objects::{identity_object, identity_resource, parse_identity};
use crate::K8sError;

pub struct CrdAllocator {
    api: Api<DynamicObject>,
    known: Mutex<Known>,
    /// One allocation at a time on this node.
    serial: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Known {
    by_labels: BTreeMap<Labels, u32>,
    by_id: BTreeMap<u32, Labels>,
    /// This node's holders of each identity.
    refs: BTreeMap<u32, u32>,
}

impl Known {
    fn learn(&mut self, id: u32, labels: Labels) {
        if let Some(old) = self.by_id.insert(id, labels.clone()) {
            if self.by_labels.get(&old) == Some(&id) {
                self.by_labels.remove(&old);
            }
        }
        // Two numbers for one label set (a lost race elsewhere): keep the
        // lower, as every node does, so they agree.
        let keep = self
            .by_labels
            .get(&labels)
            .map_or(id, |&other| other.min(id));
        self.by_labels.insert(labels, keep);
    }
}

/// The first number tried for a label set: the same on every node.
fn first_candidate(labels: &Labels) -> u32 {
    let hash = labels
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let span = u64::from(MAX_ALLOCATED - MIN_ALLOCATED + 1);
    MIN_ALLOCATED + (hash % span) as u32
}

impl CrdAllocator {
    pub fn new(client: Client) -> CrdAllocator {
        CrdAllocator {
            api: Api::all_with(client, &identity_resource()),
            known: Mutex::default(),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A CiliumIdentity the watch reported.
    pub fn learned(&self, object: &DynamicObject) -> Option<Identity> {
        let (id, labels) = parse_identity(object)?;
        self.known().learn(id, labels.clone());
        Some(Identity { id, labels })
    }

    /// A CiliumIdentity the watch reported deleted. One this node still
    /// holds is created again (a collector elsewhere saw no CiliumEndpoint
    /// using it): the number stays this label set's.
    pub async fn forgot(&self, id: u32) {
        let held = {
            let mut known = self.known();
            if known.refs.contains_key(&id) {
                known.by_id.get(&id).cloned()
            } else {
                if let Some(labels) = known.by_id.remove(&id) {
                    if known.by_labels.get(&labels) == Some(&id) {
                        known.by_labels.remove(&labels);
                    }
                }
                None
            }
        };
        if let Some(labels) = held {
            let recreated = self
                .api
                .create(&PostParams::default(), &identity_object(id, &labels))
                .await;
            if let Err(e) = recreated {
                eprintln!("level=warning msg=\"re-creating CiliumIdentity {id}: {e}\"");
            }
        }
    }

    /// Deletes the CiliumIdentities no CiliumEndpoint and no holder on this
    /// node uses, among those at least `min_age` old: Cilium's operator
    /// does this. Every agent may run it; a number still held somewhere is
    /// created again by its holder (see [`forgot`](Self::forgot)). Returns
    /// the numbers deleted.
    pub async fn collect_unused(&self, min_age: std::time::Duration) -> Result<Vec<u32>, K8sError> {
        let age = k8s_openapi::jiff::SignedDuration::try_from(min_age)
            .map_err(|e| K8sError::Identity(e.to_string()))?;
        let cutoff = k8s_openapi::jiff::Timestamp::now()
            .checked_sub(age)
            .map_err(|e| K8sError::Identity(e.to_string()))?;
        let endpoints: Api<DynamicObject> = Api::all_with(
            self.api.clone().into_client(),
            &crate::cilium_objects::endpoint_resource(),
        );
        let mut used: std::collections::BTreeSet<u32> = endpoints
            .list(&ListParams::default())
            .await?
            .iter()
            .filter_map(|cep| {
                crate::cilium_objects::parse_endpoint(cep).map(|place| place.identity)
            })
            .collect();
        used.extend(self.known().refs.keys().copied());
        let mut deleted = Vec::new();
        for object in self.api.list(&ListParams::default()).await? {
            let Some((id, _)) = parse_identity(&object) else {
                continue;
            };
            let young = object
                .metadata
                .creation_timestamp
                .as_ref()
                .is_none_or(|created| created.0 > cutoff);
            if used.contains(&id) || young {
                continue;
            }
            match self.api.delete(&id.to_string(), &Default::default()).await {
                Ok(_) => deleted.push(id),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(deleted)
    }

    /// The identity of `labels` (`true` when this call created it), with
    /// one reference taken; balance it with [`release`](Self::release).
    pub async fn allocate(&self, labels: &Labels) -> Result<(Identity, bool), K8sError> {
        if let Some(id) = identity::reserved::reserved_for(labels)
            .map_err(|e| K8sError::Identity(e.to_string()))?
        {
            return Ok((identity(id, labels), false));
        }
        let _serial = self.serial.lock().await;
        if let Some(id) = self.take(labels) {
            return Ok((identity(id, labels), false));
        }
        // The watch may lag behind another node's creation: ask the server.
        for object in self.api.list(&ListParams::default()).await? {
            self.learned(&object);
        }
        if let Some(id) = self.take(labels) {
            return Ok((identity(id, labels), false));
        }
        let span = MAX_ALLOCATED - MIN_ALLOCATED + 1;
        let first = first_candidate(labels);
        for step in 0..span {
            let id = MIN_ALLOCATED + (first - MIN_ALLOCATED + step) % span;
            if self.known().by_id.contains_key(&id) {
                continue;
            }
            match self
                .api
                .create(&PostParams::default(), &identity_object(id, labels))
                .await
            {
                Ok(created) => {
                    self.learned(&created);
                    self.take(labels);
                    return Ok((identity(id, labels), true));
                }
                // Taken meanwhile: by the same labels (another node won
                // the race) or by others (try the next number).
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    if let Ok(existing) = self.api.get(&id.to_string()).await {
                        self.learned(&existing);
                    }
                    if let Some(id) = self.take(labels) {
                        return Ok((identity(id, labels), false));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(K8sError::Identity(format!("no free identity for {labels}")))
    }

    /// Takes a reference on the known identity of `labels`.
    fn take(&self, labels: &Labels) -> Option<u32> {
        let mut known = self.known();
        let id = *known.by_labels.get(labels)?;
        *known.refs.entry(id).or_default() += 1;
        Some(id)
    }

    /// Drops one reference; `true` when it was this node's last. The object
    /// stays: other nodes may use it (Cilium's operator collects unused
    /// ones; that collection is not done here yet).
    pub fn release(&self, id: u32) -> bool {
        let mut known = self.known();
        match known.refs.get_mut(&id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                known.refs.remove(&id);
                true
            }
            None => false,
        }
    }
}

fn identity(id: u32, labels: &Labels) -> Identity {
    Identity {
        id,
        labels: labels.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_candidate_depends_on_the_labels_only_and_is_in_range() {
        let a = Labels::parse_all(&["k8s:app=web"]).unwrap();
        let b = Labels::parse_all(&["k8s:app=db"]).unwrap();
        assert_eq!(first_candidate(&a), first_candidate(&a.clone()));
        assert_ne!(first_candidate(&a), first_candidate(&b));
        for labels in [a, b] {
            assert!((MIN_ALLOCATED..=MAX_ALLOCATED).contains(&first_candidate(&labels)));
        }
    }

    #[test]
    fn two_numbers_for_one_label_set_settle_on_the_lower() {
        let mut known = Known::default();
        let labels = Labels::parse_all(&["k8s:app=web"]).unwrap();
        known.learn(900, labels.clone());
        known.learn(300, labels.clone());
        known.learn(900, labels.clone());
        assert_eq!(known.by_labels[&labels], 300);
    }
}

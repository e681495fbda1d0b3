//! Cluster-wide identities from either store: the kvstore (numbers under
//! `cilium/state/identities`) or, in CRD mode, CiliumIdentity objects.

use std::sync::Arc;

use identity::{ClusterAllocator, Identity};
use k8s::identities::CrdAllocator;
use policy::Labels;

pub enum Identities {
    Kvstore(ClusterAllocator),
    Crd(Arc<CrdAllocator>),
}

impl Identities {
    /// The identity of `labels`, one reference taken (`true`: created).
    pub async fn allocate(&self, labels: &Labels) -> Result<(Identity, bool), String> {
        match self {
            Identities::Kvstore(kv) => kv.allocate(labels).await.map_err(|e| e.to_string()),
            Identities::Crd(crd) => crd.allocate(labels).await.map_err(|e| e.to_string()),
        }
    }

    /// Drops a reference; `true` when it was this node's last.
    pub async fn release(&self, id: u32) -> Result<bool, String> {
        match self {
            Identities::Kvstore(kv) => kv.release(id).await.map_err(|e| e.to_string()),
            Identities::Crd(crd) => Ok(crd.release(id)),
        }
    }

    /// The kvstore allocator (watch, garbage collection), in kvstore mode.
    pub fn kvstore(&self) -> Option<&ClusterAllocator> {
        match self {
            Identities::Kvstore(kv) => Some(kv),
            Identities::Crd(_) => None,
        }
    }

    pub fn crd(&self) -> Option<&Arc<CrdAllocator>> {
        match self {
            Identities::Crd(crd) => Some(crd),
            Identities::Kvstore(_) => None,
        }
    }
}

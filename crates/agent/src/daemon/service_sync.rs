//! Services shared through the kvstore: a service defined or deleted on
//! one node's API is written under `cilium/state/services/v1/default/{id}`
//! (without a lease, so it outlives the node that defined it), and every
//! node's watch applies what it finds there through the API's own path
//! (validate, table, LB maps, state dir). Applying what this node wrote
//! itself is a no-op, so nothing echoes.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use kvstore::Backend;
use tokio::sync::mpsc;

use super::{services::model, Daemon};
use crate::{
    cluster::keys,
    error::AgentError,
    services::{self, ServiceRecord},
};

/// The longest pause between attempts to write a service while the
/// kvstore is unreachable.
const MAX_RETRY: Duration = Duration::from_secs(5);

enum Op {
    Put(u16, Vec<u8>),
    Delete(u16),
}

/// Writes this node's service changes in the order they were made, off
/// the API's path, retrying each until the kvstore takes it.
pub(super) struct ServiceSync {
    tx: mpsc::UnboundedSender<Op>,
    /// Writes queued or under way, per service id: until they land, what
    /// the watch reports for that id is older than this node's table.
    in_flight: Arc<Mutex<BTreeMap<u16, usize>>>,
}

impl ServiceSync {
    pub(super) fn start(kv: Arc<dyn Backend>) -> ServiceSync {
        let (tx, mut rx) = mpsc::unbounded_channel::<Op>();
        let in_flight: Arc<Mutex<BTreeMap<u16, usize>>> = Arc::default();
        let landed = in_flight.clone();
        tokio::spawn(async move {
            while let Some(op) = rx.recv().await {
                let id = match &op {
                    Op::Put(id, _) | Op::Delete(id) => *id,
                };
                write_until_done(&*kv, &op).await;
                let mut pending = landed.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(n) = pending.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        pending.remove(&id);
                    }
                }
            }
        });
        ServiceSync { tx, in_flight }
    }

    fn send(&self, id: u16, op: Op) {
        *self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_default() += 1;
        let _ = self.tx.send(op);
    }

    fn busy(&self, id: u16) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id)
    }
}

async fn write_until_done(kv: &dyn Backend, op: &Op) {
    let mut pause = Duration::from_millis(100);
    loop {
        let (key, result) = match op {
            Op::Put(id, value) => {
                let key = keys::service_key(*id);
                let result = kv.set(&key, value.clone(), None).await.map(|_| ());
                (key, result)
            }
            Op::Delete(id) => {
                let key = keys::service_key(*id);
                let result = kv.delete(&key).await.map(|_| ());
                (key, result)
            }
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                eprintln!("kvstore: publishing {key}: {e} (retrying in {pause:?})");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY);
            }
        }
    }
}

impl Daemon {
    /// After the API defined or changed a service here.
    pub(super) fn publish_service(&self, record: &ServiceRecord) {
        self.service_sync
            .send(record.id, Op::Put(record.id, keys::encode_service(record)));
    }

    /// After the API deleted a service here.
    pub(super) fn unpublish_service(&self, id: u16) {
        self.service_sync.send(id, Op::Delete(id));
    }

    /// A service as the kvstore holds it (written by any node).
    pub fn cluster_service_seen(&self, id: u16, record: ServiceRecord) {
        if self.service_sync.busy(id) || self.lock().services.get(id) == Some(&record) {
            return;
        }
        // The same checks as a PUT: a record from the store is not trusted
        // more than one from the API.
        let applied = services::validate(&id.to_string(), &model(&record).spec)
            .map_err(AgentError::BadRequest)
            .and_then(|valid| self.service_apply(valid));
        if let Err(e) = applied {
            eprintln!("service {id} from the cluster: {e}");
        }
    }

    /// A service deleted from the kvstore (by any node).
    pub fn cluster_service_gone(&self, id: u16) {
        if self.service_sync.busy(id) {
            return;
        }
        match self.service_remove(id) {
            Ok(()) | Err(AgentError::NotFound(_)) => {}
            Err(e) => eprintln!("service {id} deleted in the cluster: {e}"),
        }
    }

    /// After the watch listed every service again: those it no longer
    /// holds were deleted meanwhile.
    pub fn cluster_services_resynced(&self, seen: &BTreeSet<u16>) {
        let stale: Vec<u16> = self
            .lock()
            .services
            .iter()
            .map(|s| s.id)
            .filter(|id| !seen.contains(id))
            .collect();
        for id in stale {
            self.cluster_service_gone(id);
        }
    }
}

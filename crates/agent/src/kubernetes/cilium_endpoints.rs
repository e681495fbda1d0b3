//! This node's pods as CiliumEndpoint objects (CRD mode): how the other
//! nodes learn a pod's address, identity and node without a kvstore. The
//! daemon states what it wants; a task writes it, retrying what the API
//! server refused or could not take, so endpoint changes never wait on it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use k8s::cilium_objects::{endpoint_object, endpoint_resource, EndpointView};
use k8s::kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use tokio::sync::Notify;

const FIELD_MANAGER: &str = "cilium-agent";
const RETRY: Duration = Duration::from_secs(1);

/// `(namespace, pod name)`.
type Key = (String, String);

#[derive(Default)]
pub struct CepPublisher {
    pending: Mutex<Pending>,
    wake: Notify,
}

#[derive(Default)]
struct Pending {
    /// Latest wish per pod: `Some` = this object, `None` = no object.
    changes: BTreeMap<Key, Option<DynamicObject>>,
}

impl CepPublisher {
    pub fn upsert(&self, namespace: &str, pod: &str, pod_uid: Option<&str>, view: &EndpointView) {
        let object = endpoint_object(namespace, pod, pod_uid, view);
        self.want((namespace.to_string(), pod.to_string()), Some(object));
    }

    pub fn delete(&self, namespace: &str, pod: &str) {
        self.want((namespace.to_string(), pod.to_string()), None);
    }

    fn want(&self, key: Key, object: Option<DynamicObject>) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .changes
            .insert(key, object);
        self.wake.notify_one();
    }

    /// Writes what is wanted, forever.
    pub async fn run(&self, client: k8s::Client) {
        let resource = endpoint_resource();
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        loop {
            let changes = std::mem::take(
                &mut self
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .changes,
            );
            let mut failed = BTreeSet::new();
            for ((namespace, name), object) in &changes {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), namespace, &resource);
                let result = match object {
                    Some(object) => api
                        .patch(name, &apply, &Patch::Apply(object))
                        .await
                        .map(drop),
                    None => match api.delete(name, &DeleteParams::default()).await {
                        Err(k8s::kube::Error::Api(status)) if status.code == 404 => Ok(()),
                        other => other.map(drop),
                    },
                };
                if let Err(e) = result {
                    eprintln!(
                        "level=warning msg=\"CiliumEndpoint {namespace}/{name}: {e}; retrying\""
                    );
                    failed.insert((namespace.clone(), name.clone()));
                }
            }
            if !failed.is_empty() {
                // Retry unless a newer wish came meanwhile.
                {
                    let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                    for (key, object) in changes.into_iter().filter(|(k, _)| failed.contains(k)) {
                        pending.changes.entry(key).or_insert(object);
                    }
                }
                tokio::time::sleep(RETRY).await;
                continue;
            }
            self.wake.notified().await;
        }
    }
}

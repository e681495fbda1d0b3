//! This node's pods and every namespace, as the API server last said, so
//! that an endpoint's identity labels are at hand when the CNI plugin
//! registers it, and known again when a pod or namespace is relabelled.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s::api::{Namespace, Pod};
use k8s::kube::ResourceExt;
use k8s::PodKey;
use policy::Label;

pub struct PodCache {
    cluster: String,
    cached: Mutex<Cached>,
    /// Bumped on every pod arrival, for CNI ADDs waiting on their pod.
    arrivals: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct Cached {
    pods: BTreeMap<PodKey, Pod>,
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

impl PodCache {
    pub fn new(cluster: String) -> PodCache {
        PodCache {
            cluster,
            cached: Mutex::default(),
            arrivals: tokio::sync::watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The identity labels of a known pod.
    pub fn labels(&self, key: &PodKey) -> Option<Vec<Label>> {
        let cached = self.lock();
        let pod = cached.pods.get(key)?;
        Some(k8s::identity_labels(
            pod,
            cached.namespaces.get(&key.namespace),
            &self.cluster,
        ))
    }

    /// A known pod's UID (CiliumEndpoints are owned by their Pod).
    pub fn uid(&self, key: &PodKey) -> Option<String> {
        self.lock().pods.get(key)?.metadata.uid.clone()
    }

    /// A known pod's named container ports.
    pub fn named_ports(&self, key: &PodKey) -> Option<Vec<api::models::Port>> {
        let cached = self.lock();
        let spec = cached.pods.get(key)?.spec.as_ref()?;
        Some(
            spec.containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .filter_map(|p| {
                    Some(api::models::Port {
                        name: p.name.clone()?,
                        port: u16::try_from(p.container_port).ok()?,
                        protocol: p.protocol.clone().unwrap_or_default(),
                    })
                })
                .collect(),
        )
    }

    /// The identity labels of a pod, waiting up to `timeout` for the watch
    /// to bring it (the kubelet creates the pod before it calls CNI; the
    /// watch may lag by a moment).
    pub async fn wait_labels(&self, key: &PodKey, timeout: Duration) -> Option<Vec<Label>> {
        let mut arrivals = self.arrivals.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(labels) = self.labels(key) {
                return Some(labels);
            }
            match tokio::time::timeout_at(deadline, arrivals.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }

    /// Records a pod; true when its identity labels changed.
    pub fn upsert_pod(&self, mut pod: Pod) -> bool {
        let key = PodKey::of(&pod);
        pod.metadata.managed_fields = None;
        let before = self.labels(&key);
        self.lock().pods.insert(key.clone(), pod);
        self.arrivals.send_modify(|n| *n += 1);
        before != self.labels(&key)
    }

    pub fn remove_pod(&self, key: &PodKey) {
        self.lock().pods.remove(key);
    }

    /// Records a namespace's labels; returns the pods whose identity
    /// labels that changed.
    pub fn upsert_namespace(&self, namespace: &Namespace) -> Vec<PodKey> {
        let name = namespace.name_any();
        let labels = namespace.labels().clone();
        let mut cached = self.lock();
        if cached.namespaces.get(&name) == Some(&labels) {
            return Vec::new();
        }
        cached.namespaces.insert(name.clone(), labels);
        cached
            .pods
            .keys()
            .filter(|key| key.namespace == name)
            .cloned()
            .collect()
    }

    pub fn remove_namespace(&self, name: &str) {
        self.lock().namespaces.remove(name);
    }
}

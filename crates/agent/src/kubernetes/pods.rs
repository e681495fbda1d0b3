//! The watches on this node's Pods and on Namespaces: a changed pod or
//! namespace label moves the pod's endpoint to its new identity.

use std::sync::Arc;

use futures_util::StreamExt;
use k8s::api::{Namespace, Pod};
use k8s::kube::runtime::watcher;
use k8s::kube::{Api, ResourceExt};
use k8s::{Change, PodKey};

use super::K8sState;
use crate::daemon::Daemon;

pub async fn watch_pods(
    daemon: Arc<Daemon>,
    state: Arc<K8sState>,
    client: k8s::Client,
    node: String,
) {
    const RESOURCE: &str = "pods";
    state.status.watching(RESOURCE);
    // Only this node's pods: the kubelet's view, not the cluster's.
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let changes = k8s::watch(Api::<Pod>::all(client), config);
    futures_util::pin_mut!(changes);
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied(pod) => {
                let key = PodKey::of(&pod);
                if state.pods.upsert_pod(pod) {
                    relabel(&daemon, &state, &key).await;
                }
            }
            Change::Deleted(pod) => state.pods.remove_pod(&PodKey::of(&pod)),
            Change::Synced => state.status.synced(RESOURCE),
            Change::Lost(e) => state.status.lost(RESOURCE, e),
        }
    }
}

pub async fn watch_namespaces(daemon: Arc<Daemon>, state: Arc<K8sState>, client: k8s::Client) {
    const RESOURCE: &str = "namespaces";
    state.status.watching(RESOURCE);
    let changes = k8s::watch(Api::<Namespace>::all(client), watcher::Config::default());
    futures_util::pin_mut!(changes);
    while let Some(change) = changes.next().await {
        match change {
            Change::Applied(namespace) => {
                for key in state.pods.upsert_namespace(&namespace) {
                    relabel(&daemon, &state, &key).await;
                }
            }
            Change::Deleted(namespace) => state.pods.remove_namespace(&namespace.name_any()),
            Change::Synced => state.status.synced(RESOURCE),
            Change::Lost(e) => state.status.lost(RESOURCE, e),
        }
    }
}

/// Gives the pod's endpoints (if any on this node yet) the pod's current
/// identity labels.
async fn relabel(daemon: &Daemon, state: &K8sState, key: &PodKey) {
    let Some(labels) = state.pods.labels(key) else {
        return;
    };
    if let Err(e) = daemon.endpoint_relabel_pod(&key.to_string(), labels).await {
        eprintln!("level=warning msg=\"relabelling pod {key}: {e}\"");
    }
}

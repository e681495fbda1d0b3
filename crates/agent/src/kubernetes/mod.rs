//! Kubernetes mode (`--k8s-kubeconfig-path`, `--k8s-api-server`): the API
//! server becomes a second front door. Watches turn Pods and Namespaces into
//! endpoint labels and policy objects into rules, through the same daemon
//! paths the REST API uses; what the node enforces is written back to the
//! policy objects' status. Without the flags none of this runs.

pub mod cilium_endpoints;
mod cluster_state;
pub mod host_scope_ipam;
mod node_condition;
mod pod_cache;
mod pods;
mod policies;
mod services;
mod watch_status;

use std::sync::Arc;
use std::time::Duration;

pub use pod_cache::PodCache;
pub use watch_status::WatchStatus;

use crate::daemon::Daemon;

/// The Kubernetes state the daemon reads: pods for endpoint labels, the
/// watches' health for `cilium status`.
pub struct K8sState {
    pub pods: PodCache,
    pub status: WatchStatus,
    /// This node's pods' CiliumEndpoints (written in CRD mode only).
    pub endpoints: cilium_endpoints::CepPublisher,
    /// This node's health endpoint addresses, for its CiliumNode.
    pub node_health: tokio::sync::watch::Sender<HealthAddresses>,
}

/// The health endpoint's address of each family it has.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HealthAddresses {
    pub ipv4: Option<std::net::Ipv4Addr>,
    pub ipv6: Option<std::net::Ipv6Addr>,
}

impl K8sState {
    pub fn new(cluster: String) -> K8sState {
        K8sState {
            pods: PodCache::new(cluster),
            status: WatchStatus::default(),
            endpoints: Default::default(),
            node_health: tokio::sync::watch::channel(HealthAddresses::default()).0,
        }
    }
}

/// Starts the watches; returns once they run (the API server may still be
/// unreachable: each watch retries on its own).
pub async fn start(daemon: Arc<Daemon>, state: Arc<K8sState>) -> anyhow::Result<()> {
    let client = k8s::connect(&daemon.config().k8s()).await?;
    let node = daemon.config().node_name();
    tokio::spawn(server_version(client.clone(), state.clone()));
    tokio::spawn(pods::watch_pods(
        daemon.clone(),
        state.clone(),
        client.clone(),
        node.clone(),
    ));
    tokio::spawn(pods::watch_namespaces(
        daemon.clone(),
        state.clone(),
        client.clone(),
    ));
    tokio::spawn(policies::watch_network_policies(
        daemon.clone(),
        state.clone(),
        client.clone(),
    ));
    tokio::spawn(services::watch(
        daemon.clone(),
        state.clone(),
        client.clone(),
    ));
    tokio::spawn(node_condition::mark_network_available(
        daemon.clone(),
        client.clone(),
    ));
    // The Cilium kinds are served once their CRDs are.
    tokio::spawn(async move {
        install_crds(&client, &state).await;
        if let Some(allocator) = daemon.cluster().identities.crd() {
            tokio::spawn(cluster_state::publish_node(
                daemon.clone(),
                state.clone(),
                client.clone(),
            ));
            tokio::spawn(cluster_state::watch_identities(
                daemon.clone(),
                state.clone(),
                client.clone(),
                allocator.clone(),
            ));
            tokio::spawn(cluster_state::collect_identities(
                allocator.clone(),
                daemon.config().identity_gc_interval,
            ));
            tokio::spawn(cluster_state::watch_endpoints(
                daemon.clone(),
                state.clone(),
                client.clone(),
            ));
            tokio::spawn(cluster_state::watch_nodes(
                daemon.clone(),
                state.clone(),
                client.clone(),
            ));
            let (state, client) = (state.clone(), client.clone());
            tokio::spawn(async move { state.endpoints.run(client).await });
        }
        for kind in [
            k8s::PolicyKind::CiliumNetworkPolicy,
            k8s::PolicyKind::CiliumClusterwideNetworkPolicy,
        ] {
            tokio::spawn(policies::watch_cilium_policies(
                daemon.clone(),
                state.clone(),
                client.clone(),
                kind,
            ));
        }
    });
    Ok(())
}

async fn install_crds(client: &k8s::Client, state: &K8sState) {
    let mut delay = Duration::from_millis(500);
    state.status.watching("customresourcedefinitions");
    loop {
        match k8s::crds::install(client).await {
            Ok(()) => {
                state.status.synced("customresourcedefinitions");
                return;
            }
            Err(e) => {
                eprintln!("level=warning msg=\"installing the Cilium CRDs: {e}; retrying\"");
                state
                    .status
                    .lost("customresourcedefinitions", e.to_string());
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

async fn server_version(client: k8s::Client, state: Arc<K8sState>) {
    let mut delay = Duration::from_millis(500);
    loop {
        if let Ok(info) = client.apiserver_version().await {
            state.status.server_version(info.git_version);
            return;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

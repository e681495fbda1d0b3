//! The Node's `NetworkUnavailable` condition, set to `False` once the agent
//! runs, so the node is not held back as lacking a network.

use std::sync::Arc;
use std::time::Duration;

use k8s::kube::Error;

use crate::daemon::Daemon;

pub async fn mark_network_available(daemon: Arc<Daemon>, client: k8s::Client) {
    let name = daemon.cluster().node.name.clone();
    let mut delay = Duration::from_millis(200);
    loop {
        match k8s::status::mark_node_network_available(&client, &name).await {
            Ok(()) => return,
            Err(Error::Api(e)) if e.code == 404 => {
                eprintln!(
                    "level=info msg=\"no Node {name}: its NetworkUnavailable condition is not set\""
                );
                return;
            }
            Err(e) => {
                eprintln!(
                    "level=warning msg=\"Node {name}: NetworkUnavailable condition: {e}; retrying\""
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

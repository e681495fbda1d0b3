//! The Kubernetes objects the bench writes: the filler Pods (objects only,
//! no network namespace) and their kubelet-style status as two Lists, and
//! the CiliumNetworkPolicies whose changes it times.

use serde_json::{json, Value};

/// The namespace every bench object lives in.
pub const NAMESPACE: &str = "bench";
/// The port the servers listen on and the flipping policies open or close.
pub const PORT: u16 = 8080;
/// A port nothing listens on: a rule allowing only it leaves [`PORT`] denied.
pub const CLOSED_PORT: u16 = 9;

/// The bench's namespace.
pub fn namespace() -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n  labels: {{team: bench}}\n")
}

/// Filler `index`'s node: round robin over `nodes`.
pub fn filler_node(index: usize, nodes: usize) -> usize {
    index % nodes
}

fn filler_name(index: usize) -> String {
    format!("filler-{index:04}")
}

/// `count` Pod objects as one List (`kubectl create -f`), spread over
/// `node0`…, each with labels as a Deployment's pods carry them.
pub fn filler_pods(count: usize, nodes: usize) -> String {
    let items: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "namespace": NAMESPACE,
                    "name": filler_name(i),
                    "labels": {"app": "filler", "group": format!("g{}", i % 20)},
                },
                "spec": {
                    "nodeName": format!("node{}", filler_node(i, nodes)),
                    "containers": [{"name": "main", "image": "busybox",
                                    "ports": [{"name": "http", "containerPort": PORT}]}],
                },
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

/// The status a kubelet would write for each filler: Running and Ready,
/// with an address from `pod_ip(node, n)` (the n-th filler of that node).
/// Applied server-side to the status subresource, one List.
pub fn filler_statuses(
    count: usize,
    nodes: usize,
    pod_ip: impl Fn(usize, usize) -> String,
) -> String {
    let items: Vec<Value> = (0..count)
        .map(|i| {
            let ip = pod_ip(filler_node(i, nodes), i / nodes);
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"namespace": NAMESPACE, "name": filler_name(i)},
                "status": {
                    "phase": "Running",
                    "podIP": ip,
                    "podIPs": [{"ip": ip}],
                    "conditions": [
                        {"type": "Ready", "status": "True"},
                        {"type": "ContainersReady", "status": "True"},
                    ],
                    "containerStatuses": [{"name": "main", "ready": true, "started": true,
                                           "restartCount": 0, "image": "busybox", "imageID": "",
                                           "state": {"running": {}}}],
                },
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

/// A CNP letting `app=prober` pods into the pods selected by `app=<subject>`
/// on `port` only.
pub fn ingress_policy(name: &str, subject: &str, port: u16) -> String {
    format!(
        "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: {name}, namespace: {NAMESPACE}}}
spec:
  endpointSelector: {{matchLabels: {{app: {subject}}}}}
  ingress:
  - fromEndpoints: [{{matchLabels: {{app: prober}}}}]
    toPorts: [{{ports: [{{port: \"{port}\", protocol: TCP}}]}}]
"
    )
}

/// What change `k` (0-based) of the flip sequence does: even changes create
/// `flip-<k/2>` opening [`PORT`] to the probers, odd ones update the same
/// object to [`CLOSED_PORT`]. Every change flips the probers' reach.
pub struct Change {
    pub object: String,
    pub created: bool,
    /// Whether the probers reach the servers once it is enforced.
    pub allows: bool,
    pub yaml: String,
}

pub fn change(k: usize) -> Change {
    let object = format!("flip-{:03}", k / 2);
    let allows = k.is_multiple_of(2);
    let port = if allows { PORT } else { CLOSED_PORT };
    Change {
        yaml: ingress_policy(&object, "flip-server", port),
        object,
        created: allows,
        allows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fillers_spread_over_the_nodes_and_get_their_status() {
        let pods: Value = serde_json::from_str(&filler_pods(7, 5)).unwrap();
        let items = pods["items"].as_array().unwrap();
        assert_eq!(items.len(), 7);
        assert_eq!(items[6]["spec"]["nodeName"], "node1");
        assert_eq!(items[6]["metadata"]["name"], "filler-0006");
        let status: Value =
            serde_json::from_str(&filler_statuses(7, 5, |node, n| format!("10.0.{node}.{n}")))
                .unwrap();
        assert_eq!(status["items"][6]["status"]["podIP"], "10.0.1.1");
        assert_eq!(status["items"][6]["metadata"]["name"], "filler-0006");
    }

    #[test]
    fn changes_alternate_create_open_and_update_closed() {
        let first = change(0);
        assert!(first.created && first.allows && first.object == "flip-000");
        assert!(first.yaml.contains("port: \"8080\""));
        let second = change(1);
        assert!(!second.created && !second.allows && second.object == "flip-000");
        assert!(second.yaml.contains("port: \"9\""));
        assert_eq!(change(99).object, "flip-049");
    }
}

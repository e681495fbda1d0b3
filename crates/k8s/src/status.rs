//! Per-node enforcement status on Cilium policy objects, as Cilium writes
//! it: `status.nodes.<node>` says whether this node enforces the object,
//! or why not.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use crate::policies::{PolicyKey, PolicyKind};
use crate::K8sError;

/// Writes this node's entry of a CNP/CCNP status. NetworkPolicy has no
/// place for it; nothing is written for one.
pub async fn write_policy_status(
    client: &Client,
    key: &PolicyKey,
    node: &str,
    revision: u64,
    error: Option<&str>,
) -> Result<(), K8sError> {
    let Some(resource) = key.kind.cilium_resource() else {
        return Ok(());
    };
    let api: Api<DynamicObject> = match (&key.kind, &key.namespace) {
        (PolicyKind::CiliumNetworkPolicy, Some(ns)) => {
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        _ => Api::all_with(client.clone(), &resource),
    };
    let mut entry = json!({
        "ok": error.is_none(),
        "enforcing": error.is_none(),
        "localPolicyRevision": revision,
        "lastUpdated": Time(Timestamp::now()),
    });
    // A merge patch removes the previous error with null.
    entry["error"] = error.map_or(serde_json::Value::Null, |e| json!(e));
    let patch = json!({"status": {"nodes": {node: entry}}});
    api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Sets the Node's `NetworkUnavailable` condition to `False` (reason
/// `CiliumIsUp`, as Cilium does) by a strategic merge patch of its status,
/// which replaces that condition only, not the kubelet's others.
pub async fn mark_node_network_available(client: &Client, node: &str) -> Result<(), kube::Error> {
    let now = Time(Timestamp::now());
    let patch = json!({"status": {"conditions": [{
        "type": "NetworkUnavailable",
        "status": "False",
        "reason": "CiliumIsUp",
        "message": "Cilium is running on this node",
        "lastTransitionTime": now,
        "lastHeartbeatTime": now,
    }]}});
    Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .patch_status(node, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map(|_| ())
}

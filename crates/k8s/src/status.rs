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

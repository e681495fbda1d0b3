//! Per-node enforcement status on Cilium policy objects, as Cilium writes
//! it: `status.nodes.<node>` says whether this node enforces the object,
//! or why not.

use std::time::{SystemTime, UNIX_EPOCH};

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
        "lastUpdated": rfc3339_now(),
    });
    // A merge patch removes the previous error with null.
    entry["error"] = error.map_or(serde_json::Value::Null, |e| json!(e));
    let patch = json!({"status": {"nodes": {node: entry}}});
    api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Now, as Kubernetes writes times (`2026-12-07T05:04:56Z`).
pub fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// `unix` seconds as Kubernetes writes times.
pub fn rfc3339(unix: u64) -> String {
    let (days, rem) = (unix / 86_400, unix % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_as_kubernetes_writes_them() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_796_619_896), "2026-12-07T05:04:56Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}

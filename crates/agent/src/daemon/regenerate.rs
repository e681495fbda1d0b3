//! Endpoint regeneration: the compiled policy of an endpoint resolved into
//! map state, and the difference written into its policy map in the kernel.
//! When only an identity comes or goes, just that identity's keys change.

use std::collections::BTreeMap;

use datapath::maps::{PolicyEntry, PolicyKey, PolicyMap};
use datapath::BpfRoot;
use policy::{Direction, EndpointPolicy, Labels, MapEntry, MapKey};

use crate::endpoint::EndpointRecord;
use crate::error::AgentError;

fn to_datapath(key: &MapKey, entry: &MapEntry) -> (PolicyKey, PolicyEntry) {
    let egress = key.direction == Direction::Egress;
    let key = PolicyKey::new(
        key.identity,
        key.protocol,
        key.dport,
        key.port_prefix_len,
        egress,
    );
    (
        key,
        PolicyEntry::verdict(&key, entry.deny, entry.proxy_port),
    )
}

/// Brings one endpoint's policy map in line with its compiled policy.
pub fn regenerate(
    root: &BpfRoot,
    policy: &EndpointPolicy,
    revision: u64,
    identities: &BTreeMap<u32, Labels>,
    ep: &mut EndpointRecord,
) -> Result<(), AgentError> {
    let resolved = policy.resolve(identities);
    let desired: Vec<_> = resolved
        .map_state
        .iter()
        .map(|(k, v)| to_datapath(k, v))
        .collect();
    PolicyMap::open(root, ep.id)?.sync(&desired)?;
    ep.ingress_enforced = resolved.ingress_enforced;
    ep.egress_enforced = resolved.egress_enforced;
    ep.policy_revision = revision;
    Ok(())
}

/// Adds (or removes) the keys of one identity in one endpoint's policy map.
pub fn apply_identity(
    root: &BpfRoot,
    policy: &EndpointPolicy,
    endpoint_id: u16,
    identity: u32,
    labels: &Labels,
    added: bool,
) -> Result<(), AgentError> {
    let (upserts, deletes) = policy.identity_delta(identity, labels, added);
    if upserts.is_empty() && deletes.is_empty() {
        return Ok(());
    }
    let mut map = PolicyMap::open(root, endpoint_id)?;
    for (key, entry) in &upserts {
        let (key, entry) = to_datapath(key, entry);
        map.upsert(key, entry)?;
    }
    for key in &deletes {
        let (key, _) = to_datapath(key, &MapEntry::allow());
        map.remove(&key)?;
    }
    Ok(())
}

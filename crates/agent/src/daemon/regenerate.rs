//! Endpoint regeneration: resolve the rules selecting an endpoint into its
//! map state and write the difference into its policy map in the kernel.

use std::collections::BTreeMap;

use datapath::maps::{PolicyEntry, PolicyKey, PolicyMap};
use datapath::BpfRoot;
use policy::{Direction, Labels, MapState, Repository};

use crate::endpoint::EndpointRecord;
use crate::error::AgentError;

pub fn to_datapath(state: &MapState) -> Vec<(PolicyKey, PolicyEntry)> {
    state
        .iter()
        .map(|(k, v)| {
            let port_prefix = if k.dport == 0 { 0 } else { 16 };
            let egress = k.direction == Direction::Egress;
            let key = PolicyKey::new(k.identity, k.protocol, k.dport, port_prefix, egress);
            (key, PolicyEntry::verdict(&key, v.deny, v.proxy_port))
        })
        .collect()
}

/// Brings one endpoint's policy map in line with the repository.
pub fn regenerate(
    root: &BpfRoot,
    repo: &Repository,
    identities: &BTreeMap<u32, Labels>,
    ep: &mut EndpointRecord,
) -> Result<(), AgentError> {
    let rules = repo.rules_selecting(&ep.labels);
    let resolved = policy::resolve(&rules, &ep.labels, identities);
    let mut map = PolicyMap::open(root, ep.id)?;
    map.sync(&to_datapath(&resolved.map_state))?;
    ep.ingress_enforced = resolved.ingress_enforced;
    ep.egress_enforced = resolved.egress_enforced;
    ep.policy_revision = repo.revision();
    Ok(())
}

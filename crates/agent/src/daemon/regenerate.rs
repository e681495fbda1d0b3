//! Endpoint regeneration: the compiled policy of an endpoint resolved into
//! map state, and the difference written into its policy map in the kernel.
//! When only an identity comes or goes, just that identity's keys change.

use datapath::maps::{PolicyEntry, PolicyKey, PolicyMap};
use datapath::BpfRoot;
use policy::{Direction, EndpointPolicy, Labels, MapEntry, MapKey, SelectorCache};

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

/// One endpoint's policy map as it should be, resolved and not yet written.
pub struct Plan {
    pub endpoint: u16,
    desired: Vec<(PolicyKey, PolicyEntry)>,
    ingress_enforced: bool,
    egress_enforced: bool,
}

impl Plan {
    pub fn new(endpoint: u16, policy: &EndpointPolicy, selectors: &mut SelectorCache) -> Plan {
        let resolved = policy.resolve_cached(selectors);
        Plan {
            endpoint,
            desired: resolved
                .map_state
                .iter()
                .map(|(k, v)| to_datapath(k, v))
                .collect(),
            ingress_enforced: resolved.ingress_enforced,
            egress_enforced: resolved.egress_enforced,
        }
    }

    fn write(&self, root: &BpfRoot) -> Result<(), AgentError> {
        PolicyMap::open(root, self.endpoint)?.sync(&self.desired)?;
        Ok(())
    }

    /// Records in the endpoint that the plan is in the kernel.
    pub fn realized(&self, ep: &mut EndpointRecord, revision: u64) {
        ep.ingress_enforced = self.ingress_enforced;
        ep.egress_enforced = self.egress_enforced;
        ep.policy_revision = revision;
    }
}

/// Brings one endpoint's policy map in line with its compiled policy.
pub fn regenerate(
    root: &BpfRoot,
    policy: &EndpointPolicy,
    revision: u64,
    selectors: &mut SelectorCache,
    ep: &mut EndpointRecord,
) -> Result<(), AgentError> {
    let plan = Plan::new(ep.id, policy, selectors);
    plan.write(root)?;
    plan.realized(ep, revision);
    Ok(())
}

/// Writes many plans, on two threads: the time goes into map-update system
/// calls, one per entry, which scale with cores.
pub fn write_all(root: &BpfRoot, plans: Vec<Plan>) -> Vec<(Plan, Result<(), AgentError>)> {
    const THREADS: usize = 2;
    if plans.len() < 2 {
        return plans
            .into_iter()
            .map(|plan| {
                let result = plan.write(root);
                (plan, result)
            })
            .collect();
    }
    let chunk = plans.len().div_ceil(THREADS);
    let mut plans = plans;
    let mut chunks = Vec::new();
    while !plans.is_empty() {
        let rest = plans.split_off(chunk.min(plans.len()));
        chunks.push(std::mem::replace(&mut plans, rest));
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|plan| {
                            let result = plan.write(root);
                            (plan, result)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("policy map writer panicked"))
            .collect()
    })
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

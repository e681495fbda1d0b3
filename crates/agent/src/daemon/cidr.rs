//! CIDR identities: every prefix the rules mention gets a node-local
//! identity, and the ipcache maps the prefix to it, so that the datapath
//! sees CIDR peers as identities like any other.
//!
//! IPv4 only: rules may name IPv6 prefixes, but the datapath has no IPv6 yet
//! (issue 18) and drops every IPv6 packet, so `policy::cidr_prefixes` leaves
//! them out and they get neither an identity nor an ipcache entry here.

use std::{collections::BTreeMap, net::Ipv4Addr};

use policy::{cidr::SOURCE_CIDR, Ipv4Cidr};

use super::{Daemon, Inner};
use crate::error::AgentError;

/// The prefix an identity stands for: its most specific `cidr:` label.
/// Identities of IPs learned from DNS (`fqdn:` labels) are none of these.
fn prefix_of(labels: &policy::Labels) -> Option<Ipv4Cidr> {
    if labels.iter().any(|l| l.source == policy::fqdn::SOURCE_FQDN) {
        return None;
    }
    labels
        .iter()
        .filter(|l| l.source == SOURCE_CIDR)
        .filter_map(|l| l.key.parse::<Ipv4Cidr>().ok())
        .max_by_key(|p| p.prefix_len())
}

/// Prefix -> identity for every CIDR identity held.
pub(super) fn prefix_identities(inner: &Inner) -> BTreeMap<Ipv4Cidr, u32> {
    inner
        .cidr_identities
        .allocated()
        .filter_map(|i| Some((prefix_of(&i.labels)?, i.id)))
        .collect()
}

impl Daemon {
    /// Allocates identities for prefixes the rules newly mention and frees
    /// those no rule mentions any more (taking them out of the ipcache
    /// first). Returns the new ones, to be published once the policy maps
    /// know them, and whether any went.
    pub(super) fn update_cidr_identities(
        &self,
        inner: &mut Inner,
    ) -> Result<(Vec<(Ipv4Cidr, u32)>, bool), AgentError> {
        // IPv4 prefixes only (IPv6 ones are skipped until the IPv6 datapath).
        let wanted = policy::cidr_prefixes(inner.repo.rules());
        let held = prefix_identities(inner);
        let mut removed = false;
        for (prefix, id) in held.iter().filter(|(p, _)| !wanted.contains(p)) {
            inner
                .maps
                .ipcache
                .remove(prefix.addr(), prefix.prefix_len() as u32)?;
            inner.cidr_identities.release(*id)?;
            removed = true;
        }
        let mut added = Vec::new();
        for prefix in wanted.iter().filter(|p| !held.contains_key(p)) {
            let (identity, _) = inner
                .cidr_identities
                .allocate(&policy::cidr_identity_labels(*prefix))?;
            added.push((*prefix, identity.id));
        }
        Ok((added, removed))
    }

    /// Points the ipcache at new CIDR identities.
    pub(super) fn publish_cidr_identities(
        &self,
        inner: &mut Inner,
        added: &[(Ipv4Cidr, u32)],
    ) -> Result<(), AgentError> {
        let entries: Vec<(Ipv4Addr, u32, u32)> = added
            .iter()
            .map(|(prefix, id)| (prefix.addr(), prefix.prefix_len() as u32, *id))
            .collect();
        inner.maps.ipcache.upsert_local_all(&entries)?;
        Ok(())
    }
}

//! CIDR identities: every prefix the rules mention gets a node-local
//! identity, and the ipcache of its family maps the prefix to it, so that
//! the datapath sees CIDR peers as identities like any other. IPv6
//! prefixes go to cilium_ipcache6; `::/0` gets none (the world default).

use std::{collections::BTreeMap, net::Ipv4Addr};

use policy::{cidr::SOURCE_CIDR, Cidr, Ipv4Cidr, Ipv6Cidr};

use super::{Daemon, Inner};
use crate::error::AgentError;

/// The prefix an identity stands for: its most specific `cidr:` label.
/// Identities of IPs learned from DNS (`fqdn:` labels) are none of these.
fn prefix_of(labels: &policy::Labels) -> Option<Cidr> {
    if labels.iter().any(|l| l.source == policy::fqdn::SOURCE_FQDN) {
        return None;
    }
    labels
        .iter()
        .filter(|l| l.source == SOURCE_CIDR)
        .filter_map(|l| match l.key.parse::<Ipv4Cidr>() {
            Ok(v4) => Some(Cidr::V4(v4)),
            Err(_) => Ipv6Cidr::from_label_key(&l.key).map(Cidr::V6),
        })
        .max_by_key(|p| p.prefix_len())
}

/// Prefix -> identity for every CIDR identity held, both families.
fn all_prefix_identities(inner: &Inner) -> BTreeMap<Cidr, u32> {
    inner
        .cidr_identities
        .allocated()
        .filter_map(|i| Some((prefix_of(&i.labels)?, i.id)))
        .collect()
}

/// IPv4 prefix -> identity for every CIDR identity held.
pub(super) fn prefix_identities(inner: &Inner) -> BTreeMap<Ipv4Cidr, u32> {
    all_prefix_identities(inner)
        .into_iter()
        .filter_map(|(p, id)| Some((p.ipv4()?, id)))
        .collect()
}

/// IPv6 prefix -> identity for every CIDR identity held.
pub(super) fn prefix_identities6(inner: &Inner) -> BTreeMap<Ipv6Cidr, u32> {
    all_prefix_identities(inner)
        .into_iter()
        .filter_map(|(p, id)| match p {
            Cidr::V6(v6) => Some((v6, id)),
            Cidr::V4(_) => None,
        })
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
    ) -> Result<(Vec<(Cidr, u32)>, bool), AgentError> {
        let mut wanted: std::collections::BTreeSet<Cidr> =
            policy::cidr_prefixes(inner.repo.rules())
                .into_iter()
                .map(Cidr::V4)
                .collect();
        if inner.ipam6.is_some() {
            wanted.extend(
                policy::cidr_prefixes6(inner.repo.rules())
                    .into_iter()
                    .map(Cidr::V6),
            );
        }
        let held = all_prefix_identities(inner);
        let mut removed = false;
        for (prefix, id) in held.iter().filter(|(p, _)| !wanted.contains(p)) {
            match prefix {
                Cidr::V4(p) => inner.maps.ipcache.remove(p.addr(), p.prefix_len() as u32)?,
                Cidr::V6(p) => inner
                    .maps
                    .ipcache6
                    .remove(p.addr(), p.prefix_len() as u32)?,
            }
            inner.cidr_identities.release(*id)?;
            removed = true;
        }
        let mut added = Vec::new();
        for prefix in wanted.iter().filter(|p| !held.contains_key(p)) {
            let labels = match prefix {
                Cidr::V4(p) => policy::cidr_identity_labels(*p),
                Cidr::V6(p) => policy::cidr_identity_labels6(*p),
            };
            let (identity, _) = inner.cidr_identities.allocate(&labels)?;
            added.push((*prefix, identity.id));
        }
        Ok((added, removed))
    }

    /// Points the ipcaches at new CIDR identities.
    pub(super) fn publish_cidr_identities(
        &self,
        inner: &mut Inner,
        added: &[(Cidr, u32)],
    ) -> Result<(), AgentError> {
        let mut entries: Vec<(Ipv4Addr, u32, u32)> = Vec::new();
        for (prefix, id) in added {
            match prefix {
                Cidr::V4(p) => entries.push((p.addr(), p.prefix_len() as u32, *id)),
                Cidr::V6(p) => inner.maps.ipcache6.upsert(
                    p.addr(),
                    p.prefix_len() as u32,
                    *id,
                    Ipv4Addr::UNSPECIFIED,
                )?,
            }
        }
        inner.maps.ipcache.upsert_local_all(&entries)?;
        Ok(())
    }
}

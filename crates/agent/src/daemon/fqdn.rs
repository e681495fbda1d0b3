//! DNS answers become policy: the IPs a `toFQDNs` selector claims get
//! node-local identities (the CIDR identities' allocator, labelled with
//! the selectors), the endpoints' policy maps learn them, then the ipcache,
//! and only then is the answer released to the pod. Expired names go once
//! no connection uses their IPs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use policy::{cidr::SOURCE_CIDR, fqdn::SOURCE_FQDN, Ipv4Cidr, Ipv6Cidr, Labels};

use super::{Daemon, Inner};
use crate::error::AgentError;
use crate::fqdn::{self, Limits};
use crate::proxy::supervisor::DnsAnswer;

/// Learned IP -> (identity, labels) for every FQDN identity `allocator`
/// holds: the index the daemon keeps, rebuilt at start.
pub(super) fn fqdn_identities(
    allocator: &identity::IdentityAllocator,
) -> BTreeMap<IpAddr, (u32, Labels)> {
    allocator
        .allocated()
        .filter(|i| i.labels.iter().any(|l| l.source == SOURCE_FQDN))
        .filter_map(|i| {
            let ip = i
                .labels
                .iter()
                .filter(|l| l.source == SOURCE_CIDR)
                .find_map(|l| host_of_label(&l.key))?;
            Some((ip, (i.id, i.labels.clone())))
        })
        .collect()
}

/// The address of a host prefix's `cidr:` label key (`a.b.c.d/32`, or
/// Cilium's dashed form of an IPv6 `/128`).
fn host_of_label(key: &str) -> Option<IpAddr> {
    if let Ok(v4) = key.parse::<Ipv4Cidr>() {
        return (v4.prefix_len() == 32).then(|| v4.addr().into());
    }
    let v6 = Ipv6Cidr::from_label_key(key)?;
    (v6.prefix_len() == 128).then(|| v6.addr().into())
}

/// The identity of the rules' own host prefix for `ip` (/32 or /128), if
/// they name it.
pub(super) fn rule_identity(inner: &Inner, ip: IpAddr) -> Option<u32> {
    let labels = match ip {
        IpAddr::V4(v4) => {
            policy::cidr_identity_labels(Ipv4Cidr::new(v4, 32).expect("a /32 is a prefix"))
        }
        IpAddr::V6(v6) => {
            policy::cidr::cidr_identity_labels6(Ipv6Cidr::new(v6, 128).expect("a /128 is a prefix"))
        }
    };
    inner.cidr_identities.lookup(&labels)
}

/// The host prefix of `ip` as the proxy's ipcache names it.
pub(super) fn host_prefix(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

/// Identities to add and to remove after the cache or the selectors changed.
#[derive(Default)]
pub(super) struct FqdnChanges {
    added: Vec<(IpAddr, u32, Labels)>,
    removed: Vec<(IpAddr, u32, Labels)>,
}

impl FqdnChanges {
    pub(super) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

impl Daemon {
    fn fqdn_limits(&self) -> Limits {
        Limits {
            min_ttl: self.config.tofqdns_min_ttl,
            max_ips_per_name: self.config.tofqdns_endpoint_max_ip_per_hostname,
        }
    }

    /// Answers the DNS proxy told of (held ones, and TTL refreshes), taken
    /// together: one lock, one identity update, one proxy update and one
    /// save for the batch. Returns once the datapath allows what the rules
    /// say about their IPs, and the names learned are saved; the errors,
    /// one per answer that failed.
    pub fn dns_answers(&self, answers: &[DnsAnswer]) -> Vec<String> {
        let mut inner = self.lock();
        let (now, limits) = (fqdn::cache::unix_now(), self.fqdn_limits());
        let mut errors = Vec::new();
        let mut new_ips = BTreeSet::new();
        let mut learned = Vec::new();
        for answer in answers {
            if !inner.endpoints.contains_key(&answer.endpoint) {
                errors.push(format!("endpoint {} not found", answer.endpoint));
                continue;
            }
            for name in &answer.names {
                let name = policy::fqdn::normalize(name);
                let ep = answer.endpoint;
                if inner
                    .fqdn
                    .record(ep, &name, &answer.ips, answer.ttl, now, limits)
                {
                    new_ips.extend(answer.ips.iter().copied());
                    learned.push((ep, name));
                }
            }
        }
        inner.fqdn_dirty = true;
        if new_ips.is_empty() {
            // Only TTLs were refreshed: the tick saves them.
            return errors;
        }
        let applied = self
            .update_fqdn_identities(&mut inner, Some(&new_ips))
            .and_then(|changes| self.apply_fqdn_changes(&mut inner, changes, true));
        if let Err(e) = applied {
            errors.push(e.to_string());
        }
        // Names that brought new IPs are saved at once (one appended line
        // each), so their IPs are still allowed after a crash.
        let names = learned.iter().map(|(ep, name)| (*ep, name.as_str()));
        if let Err(e) = self.state.save_fqdn_names(&inner.fqdn, names) {
            errors.push(e.to_string());
        }
        errors
    }

    /// Allocates identities for learned IPs selectors now claim (or claim
    /// differently) and lists those no longer claimed; nothing is applied.
    /// Only the IPs in `only`, when given (the rest cannot have changed).
    pub(super) fn update_fqdn_identities(
        &self,
        inner: &mut Inner,
        only: Option<&BTreeSet<IpAddr>>,
    ) -> Result<FqdnChanges, AgentError> {
        let wanted = fqdn::wanted_labels(
            &inner.fqdn,
            &inner.fqdn_selectors,
            &inner.fqdn_rule_prefixes,
            only,
        );
        let held: BTreeMap<IpAddr, (u32, Labels)> = match only {
            None => inner.fqdn_ips.clone(),
            Some(ips) => ips
                .iter()
                .filter_map(|ip| Some((*ip, inner.fqdn_ips.get(ip)?.clone())))
                .collect(),
        };
        let mut changes = FqdnChanges::default();
        for (ip, labels) in &wanted {
            match held.get(ip) {
                Some((_, have)) if have == labels => {}
                old => {
                    let (identity, _) = inner.cidr_identities.allocate(labels)?;
                    changes.added.push((*ip, identity.id, labels.clone()));
                    if let Some((id, have)) = old {
                        changes.removed.push((*ip, *id, have.clone()));
                    }
                }
            }
        }
        for (ip, (id, labels)) in held.iter().filter(|(ip, _)| !wanted.contains_key(ip)) {
            changes.removed.push((*ip, *id, labels.clone()));
        }
        Ok(changes)
    }

    /// The policy maps learn new identities first (unless the caller
    /// regenerates every endpoint: `incremental` false), then the ipcache
    /// points at them; identities gone leave the ipcache first.
    pub(super) fn apply_fqdn_changes(
        &self,
        inner: &mut Inner,
        changes: FqdnChanges,
        incremental: bool,
    ) -> Result<(), AgentError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut failed = Vec::new();
        if incremental {
            for (_, id, labels) in &changes.added {
                failed.extend(self.apply_to_policy_maps(inner, *id, labels, true));
            }
        }
        let readded: BTreeSet<IpAddr> = changes.added.iter().map(|(ip, _, _)| *ip).collect();
        let entries: Vec<(Ipv4Addr, u32, u32)> = changes
            .added
            .iter()
            .filter_map(|(ip, id, _)| match ip {
                IpAddr::V4(v4) => Some((*v4, 32, *id)),
                IpAddr::V6(_) => None,
            })
            .collect();
        inner.maps.ipcache.upsert_local_all(&entries)?;
        for (ip, id, _) in &changes.added {
            if let IpAddr::V6(v6) = ip {
                inner
                    .maps
                    .ipcache6
                    .upsert(*v6, 128, *id, Ipv4Addr::UNSPECIFIED)?;
            }
        }
        for (ip, id, labels) in &changes.removed {
            if !readded.contains(ip) {
                // Back to what the rules' own host prefix says, if anything.
                match (rule_identity(inner, *ip), ip) {
                    (Some(cidr_id), IpAddr::V4(v4)) => {
                        inner.maps.ipcache.upsert_local_all(&[(*v4, 32, cidr_id)])?
                    }
                    (None, IpAddr::V4(v4)) => inner.maps.ipcache.remove(*v4, 32)?,
                    (Some(cidr_id), IpAddr::V6(v6)) => {
                        inner
                            .maps
                            .ipcache6
                            .upsert(*v6, 128, cidr_id, Ipv4Addr::UNSPECIFIED)?
                    }
                    (None, IpAddr::V6(v6)) => inner.maps.ipcache6.remove(*v6, 128)?,
                }
            }
            if incremental {
                failed.extend(self.apply_to_policy_maps(inner, *id, labels, false));
            }
            inner.cidr_identities.release(*id)?;
            if !readded.contains(ip) {
                inner.fqdn_ips.remove(ip);
            }
        }
        let changed: BTreeMap<u32, Labels> = changes
            .added
            .iter()
            .chain(&changes.removed)
            .map(|(_, id, labels)| (*id, labels.clone()))
            .collect();
        let touched: BTreeSet<IpAddr> = changes
            .added
            .iter()
            .chain(&changes.removed)
            .map(|(ip, _, _)| *ip)
            .collect();
        for (ip, id, labels) in changes.added {
            inner.fqdn_ips.insert(ip, (id, labels));
        }
        if incremental {
            self.publish_fqdn_changes(inner, &changed, &touched);
        } else {
            // The caller regenerates every endpoint, whose policies may
            // name these identities: the proxy's state is recomputed whole.
            self.publish_proxy_state(inner);
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(AgentError::Internal(failed.join("; ")))
        }
    }

    /// One identity's keys into (or out of) every endpoint's policy map;
    /// the failures.
    fn apply_to_policy_maps(
        &self,
        inner: &Inner,
        identity: u32,
        labels: &Labels,
        added: bool,
    ) -> Vec<String> {
        inner
            .policies
            .iter()
            .filter_map(|(ep, policy)| {
                super::regenerate::apply_identity(&self.root, policy, *ep, identity, labels, added)
                    .err()
                    .map(|e| format!("endpoint {ep}: {e}"))
            })
            .collect()
    }

    /// Once a second: names whose TTL ran out go (IPs a connection still
    /// uses stay), and the names that changed are saved.
    pub fn fqdn_tick(&self) -> Result<(), AgentError> {
        let mut inner = self.lock();
        let now = fqdn::cache::unix_now();
        if inner.fqdn.next_expiry().is_some_and(|at| at <= now) {
            let alive = self.connected_ips(&inner)?;
            let gone = inner.fqdn.expire(now, |ip| alive.contains(&ip));
            inner.fqdn_dirty |= gone > 0;
            self.fqdn_gc_deletions
                .fetch_add(gone as u64, std::sync::atomic::Ordering::Relaxed);
            let changes = self.update_fqdn_identities(&mut inner, None)?;
            inner.fqdn_dirty |= !changes.is_empty();
            self.apply_fqdn_changes(&mut inner, changes, true)?;
        }
        if std::mem::take(&mut inner.fqdn_dirty) {
            self.state.save_fqdn_cache(&inner.fqdn)?;
        }
        Ok(())
    }

    /// Destinations of live connections local endpoints opened (closing
    /// ones are not kept alive).
    fn connected_ips(&self, inner: &Inner) -> Result<BTreeSet<IpAddr>, AgentError> {
        use datapath::maps::ct::{monotonic_secs, CT_CLOSING, CT_DIR_EGRESS};
        let now = monotonic_secs();
        let live = |dir: u8, e: &datapath::maps::ct::CtEntry| {
            dir == CT_DIR_EGRESS && e.expires > now && e.flags & CT_CLOSING == 0
        };
        let v4 = inner.maps.ct.entries()?.into_iter();
        let v6 = inner.maps.ct.entries6()?.into_iter();
        Ok(v4
            .filter(|(k, e)| live(k.dir, e))
            .map(|(k, _)| IpAddr::from(Ipv4Addr::from(k.daddr)))
            .chain(
                v6.filter(|(k, e)| live(k.dir, e))
                    .map(|(k, _)| IpAddr::from(std::net::Ipv6Addr::from(k.daddr))),
            )
            .collect())
    }

    /// The `cilium_fqdn_*` metrics: per endpoint, the selectors, and IPs
    /// expired so far.
    pub fn fqdn_stats(&self) -> (BTreeMap<u16, fqdn::Stats>, usize, u64) {
        let inner = self.lock();
        (
            inner.fqdn.stats(fqdn::cache::unix_now()),
            inner.fqdn_selectors.len(),
            self.fqdn_gc_deletions
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// `cilium fqdn cache list`.
    pub fn fqdn_lookups(&self) -> Vec<fqdn::Lookup> {
        self.lock().fqdn.lookups().collect()
    }

    /// `cilium fqdn cache clean`: forgets names `pattern` matches (all
    /// without one); their IPs lose what FQDN rules gave them.
    pub fn fqdn_clean(&self, pattern: Option<&str>) -> Result<(), AgentError> {
        let matcher = match pattern {
            Some(p) => {
                let selector = policy::fqdn::FqdnSelector::pattern(p);
                selector
                    .validate()
                    .map_err(|e| AgentError::BadRequest(format!("matchpattern: {}", e.message)))?;
                Some(selector.matcher())
            }
            None => None,
        };
        let mut inner = self.lock();
        inner.fqdn.clean(matcher.as_ref(), None);
        inner.fqdn_dirty = true;
        let changes = self.update_fqdn_identities(&mut inner, None)?;
        self.apply_fqdn_changes(&mut inner, changes, true)
    }
}

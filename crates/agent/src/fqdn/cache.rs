//! What each endpoint learned from DNS: name -> IPs, each until its TTL
//! runs out (never shorter than `--tofqdns-min-ttl`), at most
//! `--tofqdns-endpoint-max-ip-per-hostname` IPs per name (the ones expiring
//! first make room). Expired IPs stay while a connection to them lives.
//! Pure: the daemon feeds it answers and the clock, and persists it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use policy::fqdn::FqdnMatcher;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub min_ttl: u32,
    pub max_ips_per_name: usize,
}

/// One IP of a name, as an endpoint learned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// Unix seconds.
    pub looked_up: u64,
    pub ttl: u32,
    pub expires: u64,
}

/// One row of `cilium fqdn cache list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub endpoint: u16,
    pub name: String,
    pub ip: IpAddr,
    pub learned: Learned,
}

/// Seconds since the Unix epoch: what expiries count in (they survive a
/// restart).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One endpoint's share of the cache, for the `cilium_fqdn_*` gauges.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub active_names: usize,
    pub active_ips: usize,
    pub zombies: usize,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FqdnCache {
    endpoints: BTreeMap<u16, BTreeMap<String, BTreeMap<IpAddr, Learned>>>,
}

impl FqdnCache {
    /// An answer endpoint `endpoint` received: `name` (normalized) is `ips`
    /// for `ttl` seconds from `now`. True when the endpoint did not hold
    /// some of those IPs for that name yet (else only TTLs were refreshed).
    pub fn record(
        &mut self,
        endpoint: u16,
        name: &str,
        ips: &[IpAddr],
        ttl: u32,
        now: u64,
        limits: Limits,
    ) -> bool {
        let ttl = ttl.max(limits.min_ttl);
        let learned = Learned {
            looked_up: now,
            ttl,
            expires: now + u64::from(ttl),
        };
        let known = self
            .endpoints
            .entry(endpoint)
            .or_default()
            .entry(name.to_string())
            .or_default();
        let mut new = false;
        for ip in ips {
            new |= known.insert(*ip, learned).is_none();
        }
        while known.len() > limits.max_ips_per_name.max(1) {
            let Some(first) = known
                .iter()
                .filter(|(ip, _)| !ips.contains(ip))
                .min_by_key(|(_, l)| l.expires)
                .map(|(ip, _)| *ip)
            else {
                break;
            };
            known.remove(&first);
        }
        new
    }

    /// Drops what expired by `now` unless `alive` says a connection to the
    /// IP still lives; returns how many IPs went.
    pub fn expire(&mut self, now: u64, alive: impl Fn(IpAddr) -> bool) -> usize {
        let before = self.lookups().count();
        self.retain(|_, _, ip, learned| learned.expires > now || alive(ip));
        before - self.lookups().count()
    }

    /// Per endpoint at `now`: names and IPs whose TTL runs, and IPs held
    /// past their TTL by a live connection ("zombies").
    pub fn stats(&self, now: u64) -> BTreeMap<u16, Stats> {
        let mut stats: BTreeMap<u16, Stats> = BTreeMap::new();
        for (ep, names) in &self.endpoints {
            let s = stats.entry(*ep).or_default();
            for ips in names.values() {
                let live = ips.values().filter(|l| l.expires > now).count();
                s.active_names += usize::from(live > 0);
                s.active_ips += live;
                s.zombies += ips.len() - live;
            }
        }
        stats
    }

    /// When the first IP expires, if any is held.
    pub fn next_expiry(&self) -> Option<u64> {
        self.lookups().map(|l| l.learned.expires).min()
    }

    /// What `endpoint` holds for `name`.
    pub fn name(&self, endpoint: u16, name: &str) -> Option<&BTreeMap<IpAddr, Learned>> {
        self.endpoints.get(&endpoint)?.get(name)
    }

    /// Every endpoint's names with their IPs.
    pub fn names(&self) -> impl Iterator<Item = (u16, &str, &BTreeMap<IpAddr, Learned>)> {
        self.endpoints.iter().flat_map(|(ep, names)| {
            names
                .iter()
                .map(move |(name, ips)| (*ep, name.as_str(), ips))
        })
    }

    /// Puts back what `endpoint` held for `name` (loading the cache).
    pub fn restore_name(&mut self, endpoint: u16, name: String, ips: BTreeMap<IpAddr, Learned>) {
        if !ips.is_empty() {
            self.endpoints
                .entry(endpoint)
                .or_default()
                .insert(name, ips);
        }
    }

    /// Forgets an endpoint that is gone.
    pub fn forget_endpoint(&mut self, endpoint: u16) {
        self.endpoints.remove(&endpoint);
    }

    /// Forgets the names `matching` selects (all without a matcher), of
    /// one endpoint or all: `cilium fqdn cache clean`.
    pub fn clean(&mut self, matching: Option<&FqdnMatcher>, endpoint: Option<u16>) {
        self.retain(|ep, name, _, _| {
            endpoint.is_some_and(|e| e != ep) || matching.is_some_and(|m| !m.matches(name))
        });
    }

    fn retain(&mut self, mut keep: impl FnMut(u16, &str, IpAddr, &Learned) -> bool) {
        for (ep, names) in self.endpoints.iter_mut() {
            for (name, ips) in names.iter_mut() {
                ips.retain(|ip, learned| keep(*ep, name, *ip, learned));
            }
            names.retain(|_, ips| !ips.is_empty());
        }
        self.endpoints.retain(|_, names| !names.is_empty());
    }

    /// Every IP any endpoint holds (only those in `only`, when given), with
    /// the names it was learned for.
    pub fn names_by_ip(&self, only: Option<&BTreeSet<IpAddr>>) -> BTreeMap<IpAddr, BTreeSet<&str>> {
        let mut by_ip: BTreeMap<IpAddr, BTreeSet<&str>> = BTreeMap::new();
        for names in self.endpoints.values() {
            for (name, ips) in names {
                for ip in ips.keys().filter(|ip| only.is_none_or(|o| o.contains(ip))) {
                    by_ip.entry(*ip).or_default().insert(name);
                }
            }
        }
        by_ip
    }

    pub fn lookups(&self) -> impl Iterator<Item = Lookup> + '_ {
        self.endpoints.iter().flat_map(|(ep, names)| {
            names.iter().flat_map(move |(name, ips)| {
                ips.iter().map(move |(ip, learned)| Lookup {
                    endpoint: *ep,
                    name: name.clone(),
                    ip: *ip,
                    learned: *learned,
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policy::fqdn::FqdnSelector;

    const LIMITS: Limits = Limits {
        min_ttl: 0,
        max_ips_per_name: 3,
    };

    fn ip(last: u8) -> IpAddr {
        std::net::Ipv4Addr::new(192, 0, 2, last).into()
    }

    fn ips_of(cache: &FqdnCache) -> Vec<IpAddr> {
        cache.names_by_ip(None).keys().copied().collect()
    }

    #[test]
    fn ips_live_for_their_ttl_or_the_minimum() {
        let mut cache = FqdnCache::default();
        cache.record(1, "a.test", &[ip(1), ip(2)], 5, 100, LIMITS);
        let floor = Limits {
            min_ttl: 60,
            ..LIMITS
        };
        cache.record(1, "b.test", &[ip(3)], 5, 100, floor);
        cache.expire(104, |_| false);
        assert_eq!(ips_of(&cache), vec![ip(1), ip(2), ip(3)]);
        cache.expire(105, |_| false);
        assert_eq!(ips_of(&cache), vec![ip(3)]);
        cache.expire(160, |_| false);
        assert!(ips_of(&cache).is_empty());
    }

    #[test]
    fn an_expired_ip_with_a_live_connection_stays() {
        let mut cache = FqdnCache::default();
        cache.record(1, "a.test", &[ip(1), ip(2)], 1, 100, LIMITS);
        cache.record(1, "b.test", &[ip(3)], 500, 100, LIMITS);
        assert_eq!(cache.expire(200, |addr| addr == ip(2)), 1);
        assert_eq!(ips_of(&cache), vec![ip(2), ip(3)]);
        let stats = cache.stats(200)[&1];
        assert_eq!(
            (stats.active_names, stats.active_ips, stats.zombies),
            (1, 1, 1)
        );
    }

    #[test]
    fn a_name_keeps_at_most_the_limit_the_newest_staying() {
        let mut cache = FqdnCache::default();
        assert!(cache.record(1, "a.test", &[ip(1), ip(2)], 10, 100, LIMITS));
        assert!(
            !cache.record(1, "a.test", &[ip(2)], 10, 100, LIMITS),
            "a refresh"
        );
        assert!(cache.record(1, "a.test", &[ip(3), ip(4)], 10, 101, LIMITS));
        let kept = ips_of(&cache);
        assert_eq!(kept.len(), 3);
        assert!(kept.contains(&ip(3)) && kept.contains(&ip(4)));
    }

    #[test]
    fn names_by_ip_spans_endpoints_and_clean_selects() {
        let mut cache = FqdnCache::default();
        cache.record(1, "a.test", &[ip(1)], 10, 100, LIMITS);
        cache.record(2, "b.test", &[ip(1), ip(2)], 10, 100, LIMITS);
        let by_ip = cache.names_by_ip(None);
        assert_eq!(by_ip[&ip(1)], BTreeSet::from(["a.test", "b.test"]));
        cache.clean(Some(&FqdnSelector::pattern("b.*").matcher()), None);
        assert_eq!(ips_of(&cache), vec![ip(1)]);
        cache.record(2, "b.test", &[ip(2)], 10, 100, LIMITS);
        cache.clean(None, Some(1));
        assert_eq!(ips_of(&cache), vec![ip(2)]);
        cache.forget_endpoint(2);
        assert!(ips_of(&cache).is_empty());
    }
}

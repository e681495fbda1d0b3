//! Which nodes a probe round covers: every node the cluster lists, plus
//! nodes that dropped out of the list a short while ago. A node that lost
//! its network also loses its kvstore lease and vanishes from the list
//! within seconds; reporting it unreachable for a while says what happened
//! instead of silently forgetting it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ::health::Target;

/// How long a node that left the cluster's list is still probed.
pub const DEPARTED_GRACE: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub struct Roster {
    known: BTreeMap<String, Entry>,
    grace: Duration,
}

#[derive(Debug)]
struct Entry {
    target: Target,
    last_listed: Instant,
}

impl Roster {
    pub fn new(grace: Duration) -> Roster {
        Roster {
            known: BTreeMap::new(),
            grace,
        }
    }

    /// Records this round's list and returns what to probe, by name.
    /// `health_ips_known` is false when the health endpoint addresses could
    /// not be read this time: the last known ones are kept.
    pub fn update(
        &mut self,
        listed: Vec<Target>,
        health_ips_known: bool,
        now: Instant,
    ) -> Vec<Target> {
        for mut target in listed {
            if let Some(old) = self.known.get(&target.name) {
                if !health_ips_known && target.health_ips.is_empty() {
                    target.health_ips = old.target.health_ips.clone();
                }
            }
            self.known.insert(
                target.name.clone(),
                Entry {
                    target,
                    last_listed: now,
                },
            );
        }
        let grace = self.grace;
        self.known
            .retain(|_, e| now.saturating_duration_since(e.last_listed) <= grace);
        self.known.values().map(|e| e.target.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn target(name: &str, last: u8, health: Option<u8>) -> Target {
        Target {
            name: name.into(),
            host_ips: vec![Ipv4Addr::new(192, 168, 1, last).into()],
            health_ips: health
                .map(|h| Ipv4Addr::new(10, 0, 0, h).into())
                .into_iter()
                .collect(),
            health_probed_from: None,
        }
    }

    fn names(targets: &[Target]) -> Vec<&str> {
        targets.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn a_departed_node_is_probed_until_the_grace_ends() {
        let mut roster = Roster::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let all = vec![target("b", 2, None), target("a", 1, None)];
        assert_eq!(names(&roster.update(all, true, t0)), ["a", "b"]);
        let only_a = || vec![target("a", 1, None)];
        let later = t0 + Duration::from_secs(30);
        assert_eq!(names(&roster.update(only_a(), true, later)), ["a", "b"]);
        let gone = t0 + Duration::from_secs(61);
        assert_eq!(names(&roster.update(only_a(), true, gone)), ["a"]);
    }

    #[test]
    fn health_addresses_survive_a_failed_read_only() {
        let mut roster = Roster::new(Duration::from_secs(60));
        let now = Instant::now();
        roster.update(vec![target("a", 1, Some(5))], true, now);
        let kept = roster.update(vec![target("a", 1, None)], false, now);
        assert_eq!(kept[0].health_ips, [Ipv4Addr::new(10, 0, 0, 5)]);
        let dropped = roster.update(vec![target("a", 1, None)], true, now);
        assert!(
            dropped[0].health_ips.is_empty(),
            "the node no longer has one"
        );
    }
}

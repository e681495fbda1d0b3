//! The bench's names, their addresses, the two server addresses and the
//! policy. Every name has an address of its own in 198.18.0.0/15 (the
//! outside host answers on all of them), so a name never seen before is
//! also an IP never allowed before.

use std::net::Ipv4Addr;

/// Where names' addresses come from: the outside host answers on every
/// address of it, and the node routes it there.
pub const SERVED: &str = "198.18.0.0/15";
/// The DNS server's address behind `rules.dns` (its queries go through the
/// proxy), on the outside host's loopback.
pub const PROXIED_SERVER: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 1);
/// The same dnsmasq's second address, allowed at L3/L4 only (no proxy).
pub const DIRECT_SERVER: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 2);
/// The TCP port the outside host accepts on for every served address.
pub const TCP_PORT: u16 = 8080;
/// Addresses below 198.19.255.0 are free for names.
const ADDRESS_SPACE: usize = 2 * 65_536 - 256;

/// The name the checks resolve through each server.
pub const CHECK_NAME: &str = "direct.check.test";

/// Name groups, each matched by a toFQDNs pattern of its own (so that
/// `cilium fqdn cache clean -p` can forget one group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Learned before the steady-state runs: `s<i>.steady.test`.
    Steady,
    /// One set per round, new to the agent: `r<round>-<i>.fresh.test`.
    Fresh(usize),
    /// The name → allowed probes: `p<i>.probe.test`.
    Probe,
}

impl Group {
    pub const FRESH_PATTERN: &'static str = "*.fresh.test";

    pub fn name(self, i: usize) -> String {
        match self {
            Group::Steady => format!("s{i}.steady.test"),
            Group::Fresh(round) => format!("r{round}-{i}.fresh.test"),
            Group::Probe => format!("p{i}.probe.test"),
        }
    }
}

/// How many names of each group, and so which address each name has.
#[derive(Debug, Clone, Copy)]
pub struct NamePlan {
    pub steady: usize,
    pub fresh_per_round: usize,
    pub rounds: usize,
    pub probes: usize,
}

impl NamePlan {
    /// Every name plus the check name must have an address of its own.
    pub fn fits(&self) -> bool {
        self.total() < ADDRESS_SPACE
    }

    fn total(&self) -> usize {
        self.steady + self.probes + self.rounds * self.fresh_per_round + 1
    }

    /// Group `group`'s name `i`'s address: groups follow each other from
    /// 198.18.0.1.
    pub fn address(&self, group: Group, i: usize) -> Ipv4Addr {
        let offset = match group {
            Group::Steady => 0,
            Group::Probe => self.steady,
            Group::Fresh(round) => self.steady + self.probes + round * self.fresh_per_round,
        };
        nth_address(1 + offset + i)
    }

    pub fn check_address(&self) -> Ipv4Addr {
        nth_address(self.total())
    }

    pub fn count(&self, group: Group) -> usize {
        match group {
            Group::Steady => self.steady,
            Group::Fresh(_) => self.fresh_per_round,
            Group::Probe => self.probes,
        }
    }

    /// Every `(name, address)` dnsmasq must answer, the check name first.
    pub fn hosts(&self) -> Vec<(String, Ipv4Addr)> {
        let mut hosts = vec![(CHECK_NAME.to_string(), self.check_address())];
        let groups = [Group::Steady, Group::Probe]
            .into_iter()
            .chain((0..self.rounds).map(Group::Fresh));
        for group in groups {
            hosts.extend((0..self.count(group)).map(|i| (group.name(i), self.address(group, i))));
        }
        hosts
    }

    /// A dnsperf query file: one `name QTYPE` line per name of `group`.
    pub fn query_file(&self, group: Group, qtype: &str) -> String {
        (0..self.count(group))
            .map(|i| format!("{} {qtype}\n", group.name(i)))
            .collect()
    }
}

fn nth_address(n: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + n as u32)
}

/// The client's egress: every query to the proxied server goes through the
/// DNS proxy (one `matchPattern: "*"` allows them all), the direct server is
/// allowed on port 53 without L7 rules (the datapath alone: the redirect is
/// per peer), and what the bench's names resolve to is reachable on the
/// TCP port (toFQDNs).
pub fn policy(client_label: &str) -> String {
    format!(
        "\
- endpointSelector:
    matchLabels: {{app: {client_label}}}
  egress:
  - toCIDR: [{PROXIED_SERVER}/32]
    toPorts:
    - ports: [{{port: \"53\", protocol: ANY}}]
      rules:
        dns:
        - matchPattern: \"*\"
  - toCIDR: [{DIRECT_SERVER}/32]
    toPorts:
    - ports: [{{port: \"53\", protocol: ANY}}]
  - toFQDNs:
    - matchPattern: \"*.steady.test\"
    - matchPattern: \"{fresh}\"
    - matchPattern: \"*.probe.test\"
    - matchPattern: \"*.check.test\"
    toPorts:
    - ports: [{{port: \"{TCP_PORT}\", protocol: TCP}}]
",
        fresh = Group::FRESH_PATTERN,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_has_an_address_of_its_own() {
        let plan = NamePlan {
            steady: 3,
            fresh_per_round: 2,
            rounds: 2,
            probes: 2,
        };
        let hosts = plan.hosts();
        assert_eq!(hosts.len(), 1 + 3 + 2 + 2 * 2);
        let mut addresses: Vec<Ipv4Addr> = hosts.iter().map(|(_, ip)| *ip).collect();
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses.len(), hosts.len());
        assert_eq!(plan.address(Group::Steady, 0), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(
            plan.address(Group::Fresh(1), 1),
            Ipv4Addr::new(198, 18, 0, 9)
        );
        assert_eq!(plan.check_address(), Ipv4Addr::new(198, 18, 0, 10));
        assert_eq!(
            plan.query_file(Group::Probe, "A"),
            "p0.probe.test A\np1.probe.test A\n"
        );
        assert!(plan.fits());
        let huge = NamePlan {
            steady: 131_000,
            ..plan
        };
        assert!(!huge.fits());
    }
}

//! The rule sets the policy bench imports: `count` CIDR rules selecting the
//! client pod, half egress `toCIDR`, half ingress `fromCIDR`, each its own
//! /32 outside the cluster, as YAML and JSON; and the same addresses as an
//! iptables-restore input, the baseline.

use std::fmt::Write;

/// The label every bench rule carries, to delete them between rounds.
pub const RULE_LABEL: &str = "bench=cidr";

/// The address of rule `i`: 172.16.0.0/12 holds a million of them.
fn address(i: usize) -> String {
    format!(
        "172.{}.{}.{}",
        16 + ((i >> 16) & 15),
        (i >> 8) & 255,
        i & 255
    )
}

fn direction(i: usize) -> (&'static str, &'static str) {
    if i.is_multiple_of(2) {
        ("egress", "toCIDR")
    } else {
        ("ingress", "fromCIDR")
    }
}

pub fn yaml(count: usize) -> String {
    let mut out = String::with_capacity(count * 150);
    for i in 0..count {
        let (dir, peer) = direction(i);
        let _ = write!(
            out,
            "- endpointSelector:\n    matchLabels: {{app: client}}\n  {dir}:\n  - {peer}: [\"{}/32\"]\n  labels: [\"unspec:{RULE_LABEL}\"]\n",
            address(i)
        );
    }
    out
}

pub fn json(count: usize) -> String {
    let rules: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            let (dir, peer) = direction(i);
            serde_json::json!({
                "endpointSelector": {"matchLabels": {"app": "client"}},
                dir: [{peer: [format!("{}/32", address(i))]}],
                "labels": [format!("unspec:{RULE_LABEL}")],
            })
        })
        .collect();
    serde_json::to_string(&rules).expect("rules serialize")
}

/// One chain with an ACCEPT per address and direction, as iptables-restore
/// reads it.
pub fn iptables(count: usize, chain: &str) -> String {
    let mut out = format!("*filter\n:{chain} - [0:0]\n");
    for i in 0..count {
        let flag = if i.is_multiple_of(2) { "-d" } else { "-s" };
        let _ = writeln!(out, "-A {chain} {flag} {}/32 -j ACCEPT", address(i));
    }
    out.push_str("COMMIT\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_names_the_same_addresses() {
        let yaml = yaml(3);
        assert!(yaml.contains("toCIDR: [\"172.16.0.0/32\"]"));
        assert!(yaml.contains("fromCIDR: [\"172.16.0.1/32\"]"));
        let rules = policy::parse_rules(&yaml).unwrap();
        assert_eq!(rules, policy::parse_rules(&json(3)).unwrap());
        assert_eq!(address(70_000), "172.17.17.112");
        let tables = iptables(2, "CB");
        assert!(tables.contains("-A CB -d 172.16.0.0/32 -j ACCEPT\n-A CB -s 172.16.0.1/32"));
    }
}

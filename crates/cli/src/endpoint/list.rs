//! `cilium endpoint list`: one row per endpoint, one security label per line.

use anyhow::{Context, Result};
use api::{policy_enabled, Client, Endpoint};

use crate::output::{emit, to_json, OutputFormat};
use crate::table::Table;

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
    /// Do not print headers
    #[arg(long)]
    no_headers: bool,
}

pub fn run(client: &Client, args: &ListArgs) -> Result<()> {
    let mut endpoints = client.endpoint_list().context("cannot get endpoint list")?;
    endpoints.sort_by_key(|ep| ep.id);
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&endpoints)?),
        None => emit(&render(&endpoints, !args.no_headers)),
    }
    Ok(())
}

/// (ingress, egress) enforcement as Cilium words it.
pub fn enforcement(policy_enabled: &str) -> (&'static str, &'static str) {
    const ON: &str = "Enabled";
    const OFF: &str = "Disabled";
    match policy_enabled {
        policy_enabled::NONE => (OFF, OFF),
        policy_enabled::INGRESS => (ON, OFF),
        policy_enabled::EGRESS => (OFF, ON),
        policy_enabled::BOTH => (ON, ON),
        _ => ("Unknown", "Unknown"),
    }
}

/// Cilium's columns, and `POD` (namespace/name) when any endpoint is a
/// Kubernetes pod.
pub fn render(endpoints: &[Endpoint], headers: bool) -> String {
    let mut t = Table::new();
    let pods = endpoints
        .iter()
        .any(|ep| !ep.status.external_identifiers.pod_name.is_empty());
    let mut row = |cells: Vec<String>, pod: &str| {
        let mut cells = cells;
        if pods {
            cells.push(pod.to_string());
        }
        t.row(cells);
    };
    let strings = |cells: &[&str]| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    if headers {
        row(
            strings(&[
                "ENDPOINT",
                "POLICY (ingress)",
                "POLICY (egress)",
                "IDENTITY",
                "LABELS (source:key[=value])",
                "IPv6",
                "IPv4",
                "STATUS",
            ]),
            "POD",
        );
        row(
            strings(&["", "ENFORCEMENT", "ENFORCEMENT", "", "", "", "", ""]),
            "",
        );
    }
    for ep in endpoints {
        let (ingress, egress) = enforcement(&ep.status.policy.realized.policy_enabled);
        let (ipv6, ipv4) = match ep.status.networking.addressing.first() {
            Some(pair) => (
                pair.ipv6.clone().unwrap_or_default(),
                pair.ipv4.clone().unwrap_or_default(),
            ),
            None => (String::new(), "No address".to_string()),
        };
        let mut labels = ep.status.labels.security_relevant.clone();
        labels.sort();
        if labels.is_empty() {
            labels.push("no labels".to_string());
        }
        for (i, label) in labels.iter().enumerate() {
            if i == 0 {
                row(
                    vec![
                        ep.id.to_string(),
                        ingress.to_string(),
                        egress.to_string(),
                        ep.status.identity.id.to_string(),
                        label.clone(),
                        ipv6.clone(),
                        ipv4.clone(),
                        ep.status.state.clone(),
                    ],
                    &ep.status.external_identifiers.pod_name,
                );
            } else {
                row(strings(&["", "", "", "", label, "", "", ""]), "");
            }
        }
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::{AddressPair, Identity};

    fn endpoint(id: u16, identity: u32, ip: &str, labels: &[&str], policy: &str) -> Endpoint {
        let mut ep = Endpoint {
            id,
            ..Default::default()
        };
        ep.status.state = "ready".into();
        ep.status.identity = Identity {
            id: identity,
            ..Default::default()
        };
        ep.status.networking.addressing = vec![AddressPair {
            ipv4: Some(ip.into()),
            ipv6: None,
        }];
        ep.status.labels.security_relevant = labels.iter().map(|l| l.to_string()).collect();
        ep.status.policy.realized.policy_enabled = policy.into();
        ep
    }

    #[test]
    fn one_label_per_line_sorted() {
        let eps = vec![endpoint(
            1234,
            256,
            "10.200.0.5",
            &["container:tier=front", "container:app=web"],
            "ingress",
        )];
        let text = render(&eps, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("ENDPOINT   POLICY (ingress)   POLICY (egress)   IDENTITY"));
        assert!(lines[0].ends_with("IPv6   IPv4         STATUS"));
        assert_eq!(lines[1].trim(), "ENFORCEMENT        ENFORCEMENT");
        let cols: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "1234",
                "Enabled",
                "Disabled",
                "256",
                "container:app=web",
                "10.200.0.5",
                "ready"
            ]
        );
        assert_eq!(lines[3].trim(), "container:tier=front");
        // The continuation label sits in the LABELS column.
        assert_eq!(lines[3].find("container"), lines[2].find("container"));
    }

    #[test]
    fn dual_stack_endpoints_show_both_addresses() {
        let mut ep = endpoint(7, 300, "10.200.0.9", &["k8s:app=web"], "none");
        ep.status.networking.addressing[0].ipv6 = Some("f00d::a00:f:0:9".into());
        let text = render(&[ep], true);
        let lines: Vec<&str> = text.lines().collect();
        let cols: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(cols[5..], ["f00d::a00:f:0:9", "10.200.0.9", "ready"]);
        assert_eq!(lines[2].find("f00d"), lines[0].find("IPv6"));
    }

    #[test]
    fn endpoint_without_labels_or_address() {
        let mut ep = endpoint(7, 5, "x", &[], "none");
        ep.status.networking.addressing.clear();
        let text = render(&[ep], false);
        assert!(text.contains("no labels"));
        assert!(text.contains("No address"));
        assert!(text.contains("Disabled   Disabled"));
    }

    #[test]
    fn enforcement_words() {
        assert_eq!(enforcement("both"), ("Enabled", "Enabled"));
        assert_eq!(enforcement("egress"), ("Disabled", "Enabled"));
        assert_eq!(enforcement(""), ("Unknown", "Unknown"));
    }
}

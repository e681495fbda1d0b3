//! `cilium bpf lb list`: the kernel's service maps as the agent reads them
//! (`GET /v1/lb`). Like Cilium, each service shows its master entry (slot
//! 0, no backend) and then one line per backend slot.

use anyhow::{Context, Result};
use api::{Client, LbEntry};

use crate::output::{emit, to_json, OutputFormat};
use crate::table::Table;

#[derive(clap::Args, Debug)]
pub struct LbListArgs {
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, args: &LbListArgs) -> Result<()> {
    let entries = client
        .lb_list()
        .context("cannot read the load-balancing maps")?;
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&entries)?),
        None => emit(&render(&entries)),
    }
    Ok(())
}

pub fn render(entries: &[LbEntry]) -> String {
    let mut sorted: Vec<&LbEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.frontend.cmp(&b.frontend));
    let mut t = Table::new();
    t.row(["SERVICE ADDRESS", "BACKEND ADDRESS (REVNAT_ID) (SLOT)"]);
    for entry in sorted {
        let rev = entry.rev_nat_index;
        // The master entry names no backend: Cilium prints the family's
        // unspecified address.
        let none = if entry.frontend.starts_with('[') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        t.row([entry.frontend.clone(), format!("{none} ({rev}) (0)")]);
        let proto = entry
            .frontend
            .rsplit_once('/')
            .map(|(_, p)| format!("/{p}"))
            .unwrap_or_default();
        for (i, slot) in entry.slots.iter().enumerate() {
            t.row([
                String::new(),
                format!("{}{proto} ({rev}) ({})", backend_address(slot), i + 1),
            ]);
        }
    }
    t.render()
}

/// The agent writes a slot as "10.200.0.5:8080 (id 3)"; the address is
/// what users look for. Anything else is shown as it came.
fn backend_address(slot: &str) -> &str {
    match slot.split_once(" (id ") {
        Some((addr, _)) if !addr.contains(' ') => addr,
        _ => slot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_then_one_line_per_slot() {
        let entries = vec![
            LbEntry {
                frontend: "10.96.0.2:53/UDP".into(),
                rev_nat_index: 2,
                slots: vec!["10.200.0.7:53 (id 3)".into()],
            },
            LbEntry {
                frontend: "10.96.0.1:80/TCP".into(),
                rev_nat_index: 1,
                slots: vec![
                    "10.200.0.5:8080 (id 1)".into(),
                    "10.200.0.6:8080 (id 2)".into(),
                    "10.200.0.6:8080 (id 2)".into(),
                ],
            },
        ];
        assert_eq!(
            render(&entries),
            "SERVICE ADDRESS    BACKEND ADDRESS (REVNAT_ID) (SLOT)\n\
             10.96.0.1:80/TCP   0.0.0.0:0 (1) (0)\n\
             \x20                  10.200.0.5:8080/TCP (1) (1)\n\
             \x20                  10.200.0.6:8080/TCP (1) (2)\n\
             \x20                  10.200.0.6:8080/TCP (1) (3)\n\
             10.96.0.2:53/UDP   0.0.0.0:0 (2) (0)\n\
             \x20                  10.200.0.7:53/UDP (2) (1)\n"
        );
    }

    #[test]
    fn ipv6_frontends_are_bracketed_with_an_ipv6_master() {
        let entries = vec![LbEntry {
            frontend: "[f00d::1]:80/TCP".into(),
            rev_nat_index: 4,
            slots: vec!["[f00d::a0a:0:0:5]:8080 (id 7)".into()],
        }];
        assert_eq!(
            render(&entries),
            "SERVICE ADDRESS    BACKEND ADDRESS (REVNAT_ID) (SLOT)\n\
             [f00d::1]:80/TCP   [::]:0 (4) (0)\n\
             \x20                  [f00d::a0a:0:0:5]:8080/TCP (4) (1)\n"
        );
    }

    #[test]
    fn odd_slots_are_shown_as_they_came() {
        assert_eq!(
            backend_address("missing backend (id 9)"),
            "missing backend (id 9)"
        );
        assert_eq!(backend_address("10.0.0.1:80 (id 9)"), "10.0.0.1:80");
    }

    #[test]
    fn no_services_only_header() {
        assert_eq!(
            render(&[]),
            "SERVICE ADDRESS   BACKEND ADDRESS (REVNAT_ID) (SLOT)\n"
        );
    }
}

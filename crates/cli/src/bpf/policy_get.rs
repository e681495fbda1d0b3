//! `cilium bpf policy get {ID | --all}`: endpoints' policy maps.

use anyhow::{Context, Result};
use api::{BpfMap, BpfMapEntry, Client};

use crate::output::{emit, to_json, OutputFormat};
use crate::proto;
use crate::table::Table;

#[derive(clap::Args, Debug)]
pub struct PolicyGetArgs {
    /// Endpoint id
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    id: Option<u16>,
    /// Dump all policy maps
    #[arg(long)]
    all: bool,
    /// Do not resolve IDs
    #[arg(short = 'n', long)]
    numeric: bool,
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, args: &PolicyGetArgs) -> Result<()> {
    let Some(id) = args.id else {
        return run_all(client, args);
    };
    let map = policy_map(client, id)?;
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&map.entries)?),
        None => emit(&render(&map, args.numeric)),
    }
    Ok(())
}

/// Every endpoint's map, each under its path as Cilium prints them; as
/// JSON, the maps with their names and paths.
fn run_all(client: &Client, args: &PolicyGetArgs) -> Result<()> {
    let mut ids: Vec<u16> = client
        .endpoint_list()
        .context("cannot list endpoints")?
        .iter()
        .map(|ep| ep.id)
        .collect();
    ids.sort_unstable();
    let maps = ids
        .into_iter()
        .map(|id| policy_map(client, id))
        .collect::<Result<Vec<_>>>()?;
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&maps)?),
        None => {
            for map in &maps {
                emit(&format!("{}:\n\n{}\n", map.path, render(map, args.numeric)));
            }
        }
    }
    Ok(())
}

fn policy_map(client: &Client, id: u16) -> Result<BpfMap> {
    client
        .map_get(&format!("cilium_policy_{id}"))
        .with_context(|| format!("cannot read policy map of endpoint {id}"))
}

struct Row<'a> {
    identity: u32,
    labels: &'a [String],
    direction: &'a str,
    protocol: u8,
    port: u16,
    deny: bool,
    proxy_port: u16,
    packets: u64,
    bytes: u64,
}

pub fn render(map: &BpfMap, numeric: bool) -> String {
    let mut rows: Vec<Row> = map
        .entries
        .iter()
        .filter_map(|e| match e {
            BpfMapEntry::Policy {
                identity,
                labels,
                direction,
                protocol,
                port,
                deny,
                proxy_port,
                packets,
                bytes,
            } => Some(Row {
                identity: *identity,
                labels,
                direction,
                protocol: *protocol,
                port: *port,
                deny: *deny,
                proxy_port: *proxy_port,
                packets: *packets,
                bytes: *bytes,
            }),
            _ => None,
        })
        .collect();
    // Ingress before egress, then by peer and port, as Cilium sorts its dump.
    rows.sort_by_key(|r| {
        (
            direction_title(r.direction) == "Egress",
            r.identity,
            r.protocol,
            r.port,
        )
    });

    let mut t = Table::new();
    let peer_title = if numeric {
        "IDENTITY"
    } else {
        "LABELS (source:key[=value])"
    };
    t.row([
        "POLICY",
        "DIRECTION",
        peer_title,
        "PORT/PROTO",
        "PROXY PORT",
        "BYTES",
        "PACKETS",
    ]);
    for row in &rows {
        let peers = if numeric {
            vec![row.identity.to_string()]
        } else {
            peer_labels(row.identity, row.labels)
        };
        for (i, peer) in peers.iter().enumerate() {
            if i > 0 {
                t.row(["", "", peer, "", "", "", ""]);
                continue;
            }
            t.row([
                if row.deny { "Deny" } else { "Allow" }.to_string(),
                direction_title(row.direction).to_string(),
                peer.clone(),
                proto::port_proto(row.port, row.protocol),
                proxy_port(row.proxy_port),
                row.bytes.to_string(),
                row.packets.to_string(),
            ]);
        }
    }
    let mut out = t.render();
    if rows.is_empty() {
        out.push_str("Policy stats empty. Perhaps the policy enforcement is disabled?\n");
    }
    out
}

/// Peer labels one per line; identity 0 is the wildcard, shown as `ANY`.
fn peer_labels(identity: u32, labels: &[String]) -> Vec<String> {
    if identity == 0 {
        return vec!["ANY".to_string()];
    }
    if labels.is_empty() {
        return vec![identity.to_string()];
    }
    let mut v: Vec<String> = labels
        .iter()
        .map(|l| {
            if l == "reserved:unknown" {
                "ANY".to_string()
            } else {
                l.clone()
            }
        })
        .collect();
    v.sort();
    v
}

fn direction_title(direction: &str) -> &'static str {
    if direction.eq_ignore_ascii_case("egress") {
        "Egress"
    } else {
        "Ingress"
    }
}

fn proxy_port(port: u16) -> String {
    if port == 0 {
        "NONE".to_string()
    } else {
        port.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(identity: u32, labels: &[&str], direction: &str, proto: u8, port: u16) -> BpfMapEntry {
        BpfMapEntry::Policy {
            identity,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            direction: direction.into(),
            protocol: proto,
            port,
            deny: false,
            proxy_port: 0,
            packets: 3,
            bytes: 180,
        }
    }

    #[test]
    fn cilium_columns_and_wildcard() {
        let map = BpfMap {
            name: "cilium_policy_1234".into(),
            entries: vec![
                entry(0, &[], "egress", 0, 0),
                entry(
                    256,
                    &["container:app=web", "container:tier=front"],
                    "ingress",
                    6,
                    80,
                ),
            ],
            ..Default::default()
        };
        let text = render(&map, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0]
                .split("   ")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>(),
            [
                "POLICY",
                "DIRECTION",
                "LABELS (source:key[=value])",
                "PORT/PROTO",
                "PROXY PORT",
                "BYTES",
                "PACKETS"
            ]
        );
        let ingress: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            ingress,
            [
                "Allow",
                "Ingress",
                "container:app=web",
                "80/TCP",
                "NONE",
                "180",
                "3"
            ]
        );
        assert_eq!(lines[2].trim(), "container:tier=front");
        let egress: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(
            egress,
            ["Allow", "Egress", "ANY", "ANY", "NONE", "180", "3"]
        );
    }

    #[test]
    fn numeric_and_deny_and_proxy() {
        let map = BpfMap {
            entries: vec![BpfMapEntry::Policy {
                identity: 257,
                labels: vec!["container:app=db".into()],
                direction: "ingress".into(),
                protocol: 17,
                port: 53,
                deny: true,
                proxy_port: 15001,
                packets: 0,
                bytes: 0,
            }],
            ..Default::default()
        };
        let text = render(&map, true);
        assert!(text.starts_with("POLICY   DIRECTION   IDENTITY"));
        let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(row, ["Deny", "Ingress", "257", "53/UDP", "15001", "0", "0"]);
    }

    #[test]
    fn one_endpoint_or_all() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: PolicyGetArgs,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("get").chain(args.iter().copied())).map(|c| c.args)
        };
        let one = parse(&["12", "-n"]).unwrap();
        assert_eq!((one.id, one.all, one.numeric), (Some(12), false, true));
        let all = parse(&["--all", "-o", "json"]).unwrap();
        assert_eq!((all.id, all.all), (None, true));
        assert!(parse(&[]).is_err(), "an endpoint id or --all is required");
        assert!(parse(&["12", "--all"]).is_err());
    }

    #[test]
    fn empty_map_says_so() {
        assert!(render(&BpfMap::default(), false).contains("Policy stats empty"));
    }
}

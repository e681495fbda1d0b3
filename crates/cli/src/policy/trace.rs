//! `cilium policy trace`: would traffic from a source to a destination
//! (labels, identity or endpoint) on a port be allowed? The agent answers
//! with the code that programs the datapath.

use anyhow::{bail, Context, Result};
use api::{Client, TraceFrom, TracePort, TraceSelector, TraceTo};

use crate::output::{emit, to_json, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct TraceArgs {
    /// Source label context (repeatable or comma-separated), e.g. k8s:app=web
    #[arg(short = 's', long = "src", value_delimiter = ',')]
    src: Vec<String>,
    /// Security identity ID of the source
    #[arg(long = "src-identity")]
    src_identity: Option<u32>,
    /// Endpoint ID of the source
    #[arg(long = "src-endpoint")]
    src_endpoint: Option<u16>,
    /// Destination label context (repeatable or comma-separated)
    #[arg(short = 'd', long = "dst", value_delimiter = ',')]
    dst: Vec<String>,
    /// Security identity ID of the destination
    #[arg(long = "dst-identity")]
    dst_identity: Option<u32>,
    /// Endpoint ID of the destination
    #[arg(long = "dst-endpoint")]
    dst_endpoint: Option<u16>,
    /// Destination port PORT[/PROTOCOL] (TCP when no protocol is given;
    /// for ICMP the message type); repeatable or comma-separated. None: L3 only
    #[arg(long = "dport", value_delimiter = ',')]
    dports: Vec<String>,
    /// Set tracing to TRACE_VERBOSE (sent to the agent, whose trace is the
    /// same either way)
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

/// `80`, `80/TCP`, `53/udp`, `8/ICMP`.
pub fn parse_dport(text: &str) -> Result<TracePort> {
    let (port, protocol) = text.split_once('/').unwrap_or((text, "TCP"));
    let port: u16 = port
        .parse()
        .with_context(|| format!("--dport {text:?}: {port:?} is not a port number"))?;
    let protocol = protocol.to_ascii_uppercase();
    if !["TCP", "UDP", "SCTP", "ICMP", "ANY"].contains(&protocol.as_str()) {
        bail!("--dport {text:?}: unknown protocol {protocol:?} (TCP, UDP, SCTP, ICMP or ANY)");
    }
    Ok(TracePort { port, protocol })
}

pub fn selector(args: &TraceArgs) -> Result<TraceSelector> {
    let count = |labels: &[String], id: bool, ep: bool| {
        usize::from(!labels.is_empty()) + usize::from(id) + usize::from(ep)
    };
    if count(
        &args.src,
        args.src_identity.is_some(),
        args.src_endpoint.is_some(),
    ) != 1
    {
        bail!("give exactly one source: --src LABELS, --src-identity ID or --src-endpoint ID");
    }
    if count(
        &args.dst,
        args.dst_identity.is_some(),
        args.dst_endpoint.is_some(),
    ) != 1
    {
        bail!("give exactly one destination: --dst LABELS, --dst-identity ID or --dst-endpoint ID");
    }
    Ok(TraceSelector {
        from: TraceFrom {
            labels: args.src.clone(),
            identity: args.src_identity,
            endpoint: args.src_endpoint,
        },
        to: TraceTo {
            labels: args.dst.clone(),
            identity: args.dst_identity,
            endpoint: args.dst_endpoint,
            dports: args
                .dports
                .iter()
                .map(|p| parse_dport(p))
                .collect::<Result<_>>()?,
        },
        verbose: args.verbose,
    })
}

pub fn run(client: &Client, args: &TraceArgs) -> Result<()> {
    let result = client
        .policy_resolve(&selector(args)?)
        .context("cannot trace policy")?;
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&result)?),
        None => emit(&result.log),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: TraceArgs,
    }

    fn parse(args: &[&str]) -> Result<TraceSelector> {
        let mut full = vec!["trace"];
        full.extend_from_slice(args);
        selector(&Cli::try_parse_from(full).unwrap().args)
    }

    #[test]
    fn builds_cilium_shaped_selectors() {
        let sel = parse(&[
            "-s",
            "k8s:app=web,k8s:env=prod",
            "--dst-endpoint",
            "12",
            "--dport",
            "80/udp",
        ])
        .unwrap();
        assert_eq!(sel.from.labels, ["k8s:app=web", "k8s:env=prod"]);
        assert_eq!(sel.to.endpoint, Some(12));
        assert_eq!(
            sel.to.dports,
            [TracePort {
                port: 80,
                protocol: "UDP".into()
            }]
        );
        assert!(!sel.verbose);
        let sel = parse(&[
            "--src-identity",
            "300",
            "-d",
            "app=db",
            "--dport",
            "5432",
            "-v",
        ])
        .unwrap();
        assert_eq!(sel.from.identity, Some(300));
        assert_eq!(sel.to.dports[0].protocol, "TCP");
        assert!(sel.verbose);
        let sel = parse(&["-s", "a=b", "-d", "app=db", "--dport", "80/tcp,53/udp"]).unwrap();
        assert_eq!(sel.to.dports.len(), 2);
    }

    #[test]
    fn rejects_ambiguous_peers_and_bad_ports() {
        assert!(parse(&["-d", "app=db"]).is_err());
        assert!(parse(&["-s", "a=b", "--src-identity", "3", "-d", "app=db"]).is_err());
        assert!(parse_dport("http").is_err());
        assert!(parse_dport("80/QUIC")
            .unwrap_err()
            .to_string()
            .contains("QUIC"));
    }
}

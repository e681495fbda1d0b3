//! `cilium bpf ...`: kernel maps as the agent decodes them (`GET /v1/map/{name}`).

mod ct_list;
mod endpoint_list;
mod ipcache_list;
mod lb_list;
mod nat_list;
mod policy_get;
mod tunnel_list;

use std::process::ExitCode;

use anyhow::{Context, Result};
use api::{BpfMap, Client};
use clap::Subcommand;

use crate::output::{emit, to_json, OutputFormat};

#[derive(Subcommand, Debug)]
pub enum BpfCommand {
    /// Manage policy related BPF maps
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Manage the IPCache mappings for IP/CIDR <-> Identity
    #[command(subcommand)]
    Ipcache(IpcacheCommand),
    /// Connection tracking tables
    #[command(subcommand)]
    Ct(CtCommand),
    /// Local endpoint map
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Load-balancing configuration
    #[command(subcommand)]
    Lb(LbCommand),
    /// Tunnel endpoint map
    #[command(subcommand)]
    Tunnel(TunnelCommand),
    /// NAT mapping tables
    #[command(subcommand)]
    Nat(NatCommand),
}

#[derive(Subcommand, Debug)]
pub enum NatCommand {
    /// List all NAT mapping entries
    #[command(visible_alias = "ls")]
    List(MapArgs),
}

#[derive(Subcommand, Debug)]
pub enum TunnelCommand {
    /// List tunnel endpoint entries
    #[command(visible_alias = "ls")]
    List(MapArgs),
}

#[derive(Subcommand, Debug)]
pub enum LbCommand {
    /// List load-balancing configuration
    #[command(visible_alias = "ls")]
    List(lb_list::LbListArgs),
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Get contents of a policy BPF map
    Get(policy_get::PolicyGetArgs),
}

#[derive(Subcommand, Debug)]
pub enum IpcacheCommand {
    /// List endpoint IPs (local and remote) and their corresponding security identities
    #[command(visible_alias = "ls")]
    List(MapArgs),
}

#[derive(Subcommand, Debug)]
pub enum CtCommand {
    /// List connection tracking entries
    #[command(visible_alias = "ls")]
    List(ct_list::CtListArgs),
}

#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// List local endpoint entries
    #[command(visible_alias = "ls")]
    List(MapArgs),
}

#[derive(clap::Args, Debug)]
pub struct MapArgs {
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, cmd: BpfCommand) -> Result<ExitCode> {
    match cmd {
        BpfCommand::Policy(PolicyCommand::Get(args)) => policy_get::run(client, &args),
        BpfCommand::Ipcache(IpcacheCommand::List(args)) => {
            // Both families, as Cilium's one ipcache holds both.
            show_all(
                client,
                &["cilium_ipcache", "cilium_ipcache6"],
                args.output,
                ipcache_list::render,
            )
        }
        BpfCommand::Ct(CtCommand::List(args)) => ct_list::run(client, &args),
        BpfCommand::Endpoint(EndpointCommand::List(args)) => {
            show(client, "cilium_lxc", args.output, endpoint_list::render)
        }
        BpfCommand::Lb(LbCommand::List(args)) => lb_list::run(client, &args),
        BpfCommand::Tunnel(TunnelCommand::List(args)) => {
            show(client, "cilium_ipcache", args.output, tunnel_list::render)
        }
        BpfCommand::Nat(NatCommand::List(args)) => show_all(
            client,
            &["cilium_snat_v4_external", "cilium_snat_v6_external"],
            args.output,
            nat_list::render,
        ),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// Fetches a map and prints it with `render`, or its entries as JSON.
fn show(
    client: &Client,
    name: &str,
    output: Option<OutputFormat>,
    render: fn(&BpfMap) -> String,
) -> Result<()> {
    show_all(client, &[name], output, render)
}

/// `show` for a listing that spans several maps (an IPv4 map and its IPv6
/// twin): their entries one after the other.
fn show_all(
    client: &Client,
    names: &[&str],
    output: Option<OutputFormat>,
    render: fn(&BpfMap) -> String,
) -> Result<()> {
    let map = fetch_all(client, names)?;
    match output {
        Some(OutputFormat::Json) => emit(&to_json(&map.entries)?),
        None => emit(&render(&map)),
    }
    Ok(())
}

/// The maps `names` as one: the first map's path and name, every map's
/// entries.
pub(crate) fn fetch_all(client: &Client, names: &[&str]) -> Result<BpfMap> {
    let mut all: Option<BpfMap> = None;
    for name in names {
        let map = client
            .map_get(name)
            .with_context(|| format!("cannot read map {name}"))?;
        match &mut all {
            Some(all) => all.entries.extend(map.entries),
            None => all = Some(map),
        }
    }
    all.context("no map to read")
}

//! `cilium`: the command-line client of cilium-agent. It owns argument
//! parsing and human-readable output; every fact it shows comes from the
//! agent's REST API (`cilium flows`: its Hubble Observer API). It must
//! never touch BPF maps, the kvstore or files of the agent directly.

mod bpf;
mod endpoint;
mod flows;
mod fqdn;
mod identity;
mod kvstore;
mod labels;
mod metrics;
mod monitor;
mod node;
mod output;
mod policy;
mod proto;
mod service;
mod status;
mod table;

use std::process::ExitCode;

use api::Client;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cilium",
    about = "CLI for interacting with the local Cilium Agent",
    version
)]
struct Cli {
    /// URI of the agent's API socket (unix:///path or a path); defaults to
    /// $CILIUM_SOCK, then /var/run/cilium/cilium.sock
    #[arg(short = 'H', long, global = true)]
    host: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Display status of the agent
    Status(status::StatusArgs),
    /// Manage endpoints
    #[command(subcommand, visible_alias = "ep")]
    Endpoint(endpoint::EndpointCommand),
    /// Manage security identities
    #[command(subcommand)]
    Identity(identity::IdentityCommand),
    /// Manage security policies
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Direct access to local BPF maps
    #[command(subcommand)]
    Bpf(bpf::BpfCommand),
    /// Display BPF program events
    Monitor(monitor::MonitorArgs),
    /// Access metric status
    #[command(subcommand)]
    Metrics(metrics::MetricsCommand),
    /// Manage services & loadbalancers
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Manage cluster nodes
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Direct access to the kvstore
    #[command(subcommand)]
    Kvstore(kvstore::KvstoreCommand),
    /// Manage fqdn proxy
    #[command(subcommand)]
    Fqdn(fqdn::FqdnCommand),
    /// Observe flows from the agent's Hubble (like `hubble observe`)
    Flows(Box<flows::FlowsArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = Client::from_host(cli.host.as_deref());
    let result = match cli.command {
        Command::Status(args) => status::run(&client, &args),
        Command::Endpoint(cmd) => endpoint::run(&client, cmd),
        Command::Identity(cmd) => identity::run(&client, cmd),
        Command::Policy(cmd) => policy::run(&client, cmd),
        Command::Bpf(cmd) => bpf::run(&client, cmd),
        Command::Monitor(args) => monitor::run(&client, &args),
        Command::Metrics(cmd) => metrics::run(&client, cmd).map(|_| ExitCode::SUCCESS),
        Command::Service(cmd) => service::run(&client, cmd),
        Command::Node(cmd) => node::run(&client, cmd),
        Command::Kvstore(cmd) => kvstore::run(&client, cmd),
        Command::Fqdn(cmd) => fqdn::run(&client, cmd),
        Command::Flows(args) => flows::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

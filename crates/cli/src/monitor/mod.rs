//! `cilium monitor`: follow the agent's event stream and print each event
//! as it arrives.

mod format;

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use api::{monitor_kind, Client, MonitorQuery};

use crate::output::{emit, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct MonitorArgs {
    /// Filter by event type (repeatable)
    #[arg(short = 't', long = "type", value_parser = [
        monitor_kind::DROP,
        monitor_kind::TRACE,
        monitor_kind::POLICY_VERDICT,
        monitor_kind::DEBUG,
        monitor_kind::L7,
    ])]
    types: Vec<String>,
    /// Only show events related to this endpoint id (source or destination)
    #[arg(long = "related-to")]
    related_to: Option<u16>,
    /// Only show events whose source is this endpoint id
    #[arg(long = "from")]
    from: Option<u16>,
    /// Only show events whose destination is this endpoint id
    #[arg(long = "to")]
    to: Option<u16>,
    /// Verbose output (repeatable)
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    verbose: u8,
    /// Output format: raw JSON events, one per line
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, args: &MonitorArgs) -> Result<ExitCode> {
    // The agent filters, so a busy node does not flood the client.
    let query = MonitorQuery {
        types: args.types.clone(),
        from: args.from,
        to: args.to,
        related_to: args.related_to,
    };
    let events = client
        .monitor_query(&query)
        .context("cannot open the monitor stream")?;
    if args.output.is_none() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        emit(&format::banner(cpus));
    }
    for event in events {
        let event = event.context("monitor stream broke")?;
        let text = match args.output {
            Some(OutputFormat::Json) => serde_json::to_string(&event)?,
            None if event.kind == monitor_kind::LOST => format::lost(&event),
            None if args.verbose > 0 => format::verbose(&event),
            None => format::line(&event),
        };
        emit(&(text + "\n"));
    }
    bail!("the agent closed the monitor stream")
}

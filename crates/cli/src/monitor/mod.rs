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
    /// Filter by either source or destination endpoint id
    #[arg(long = "related-to")]
    related_to: Option<u16>,
    /// Filter by source endpoint id
    #[arg(long = "from")]
    from: Option<u16>,
    /// Filter by destination endpoint id
    #[arg(long = "to")]
    to: Option<u16>,
    /// Enable verbose output (-v, -vv)
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    verbose: u8,
    /// Enable json output (one event per line). Shadows -v flag
    #[arg(short = 'j', long = "json")]
    json: bool,
    /// Display all security identities as numeric values (the only way
    /// identities are shown here)
    #[arg(short = 'n', long = "numeric")]
    _numeric: bool,
    /// Same as --json; kept for scripts written against earlier versions
    #[arg(short = 'o', long = "output", hide = true)]
    output: Option<OutputFormat>,
}

impl MonitorArgs {
    fn json(&self) -> bool {
        self.json || self.output == Some(OutputFormat::Json)
    }
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
    let json = args.json();
    if !json {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        emit(&format::banner(cpus));
    }
    for event in events {
        let event = event.context("monitor stream broke")?;
        let text = if json {
            serde_json::to_string(&event)?
        } else if event.kind == monitor_kind::LOST {
            format::lost(&event)
        } else if args.verbose > 0 {
            format::verbose(&event)
        } else {
            format::line(&event)
        };
        emit(&(text + "\n"));
    }
    bail!("the agent closed the monitor stream")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: MonitorArgs,
    }

    fn parse(args: &[&str]) -> MonitorArgs {
        Cli::try_parse_from(std::iter::once("monitor").chain(args.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn ciliums_json_flag_and_the_older_output_flag_both_give_json() {
        assert!(parse(&["-j"]).json());
        assert!(parse(&["--json", "-v"]).json());
        assert!(parse(&["-o", "json"]).json());
        assert!(!parse(&["-v"]).json());
    }

    #[test]
    fn ciliums_short_and_long_filters() {
        let args = parse(&[
            "-t",
            "drop",
            "--type",
            "l7",
            "-n",
            "-vv",
            "--related-to",
            "12",
        ]);
        assert_eq!(args.types, ["drop", "l7"]);
        assert!(args._numeric);
        assert_eq!(args.verbose, 2);
        assert_eq!(args.related_to, Some(12));
    }
}

//! `cilium flows`: the flows the agent's Hubble keeps, as `hubble observe`
//! shows them. It speaks Hubble's Observer gRPC API on the agent's Hubble
//! socket (not the REST API), and sends its filters as Hubble flow filters,
//! so the agent selects exactly what `hubble observe` would.
//!
//! `filter`, `request`, `since` and `printer` are pure; `client` does IO.

mod client;
mod filter;
mod printer;
mod request;
mod since;

use std::cell::RefCell;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{anyhow, Result};
use hubble::timestamp::Timestamp;

use crate::output::{emit, emit_bytes};
use filter::FilterFlags;
use printer::{Output, Printer};
use request::Selector;

#[derive(clap::Args, Debug)]
pub struct FlowsArgs {
    /// Address of the Hubble server: unix:///path (the agent's
    /// --hubble-socket-path) or host:port (its --hubble-listen-address)
    #[arg(long, env = "HUBBLE_SERVER", default_value = client::DEFAULT_SERVER)]
    server: String,

    /// Follow flows output
    #[arg(short = 'f', long)]
    follow: bool,
    /// Get last N flows stored in Hubble's buffer
    #[arg(long, default_value_t = 0)]
    last: u64,
    /// Get first N flows stored in Hubble's buffer
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Get all flows stored in Hubble's buffer
    #[arg(long)]
    all: bool,
    /// Filter flows since a specific date: relative (5s, 30m, 1h) or
    /// RFC3339 (2006-01-02T15:04:05Z)
    #[arg(long)]
    since: Option<String>,
    /// Filter flows until a specific date: relative or RFC3339 (ignored
    /// with --follow)
    #[arg(long)]
    until: Option<String>,

    /// Show all flows related to the given pod name prefix
    /// ([namespace/]<pod-name>); 'default' when no namespace is given
    #[arg(long)]
    pod: Vec<String>,
    /// Show all flows originating in the given pod name prefix
    #[arg(long)]
    from_pod: Vec<String>,
    /// Show all flows terminating in the given pod name prefix
    #[arg(long)]
    to_pod: Vec<String>,
    /// Show all flows related to the given Kubernetes namespace
    #[arg(short = 'n', long)]
    namespace: Vec<String>,
    /// Show all flows originating in the given Kubernetes namespace
    #[arg(long)]
    from_namespace: Vec<String>,
    /// Show all flows terminating in the given Kubernetes namespace
    #[arg(long)]
    to_namespace: Vec<String>,
    /// Show only flows related to an endpoint with the given labels
    /// (e.g. "key1=value1", "reserved:world")
    #[arg(short = 'l', long)]
    label: Vec<String>,
    /// Show only flows originating in an endpoint with the given labels
    #[arg(long)]
    from_label: Vec<String>,
    /// Show only flows terminating in an endpoint with the given labels
    #[arg(long)]
    to_label: Vec<String>,
    /// Show all flows originating or terminating at the given IP address
    /// or CIDR
    #[arg(long)]
    ip: Vec<String>,
    /// Show all flows originating at the given IP address or CIDR
    #[arg(long)]
    from_ip: Vec<String>,
    /// Show all flows terminating at the given IP address or CIDR
    #[arg(long)]
    to_ip: Vec<String>,
    /// Show only flows with the given port in either source or destination
    #[arg(long)]
    port: Vec<String>,
    /// Show only flows with the given source port
    #[arg(long)]
    from_port: Vec<String>,
    /// Show only flows with the given destination port
    #[arg(long)]
    to_port: Vec<String>,
    /// Show only flows with this verdict [FORWARDED, DROPPED, AUDIT,
    /// REDIRECTED, ERROR, TRACED, TRANSLATED]
    #[arg(long)]
    verdict: Vec<String>,
    /// Show only flows which match the given L4/L7 flow protocol (e.g.
    /// "udp", "http")
    #[arg(long)]
    protocol: Vec<String>,
    /// Filter by event types TYPE[:SUBTYPE]: drop, trace[:to-endpoint...],
    /// l7, policy-verdict
    #[arg(short = 't', long = "type")]
    event_type: Vec<String>,
    /// Show all flows in the given traffic direction (ingress or egress)
    #[arg(long)]
    traffic_direction: Vec<String>,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value = "compact")]
    output: Output,
    /// Print policy names in output: the rules that allowed or denied a
    /// policy verdict (compact and table)
    #[arg(long)]
    print_policy_names: bool,
}

impl FlowsArgs {
    fn selector(&self) -> Selector {
        Selector {
            follow: self.follow,
            last: self.last,
            first: self.first,
            all: self.all,
            since: self.since.clone(),
            until: self.until.clone(),
        }
    }

    fn filters(&self) -> FilterFlags {
        FilterFlags {
            pod: self.pod.clone(),
            from_pod: self.from_pod.clone(),
            to_pod: self.to_pod.clone(),
            namespace: self.namespace.clone(),
            from_namespace: self.from_namespace.clone(),
            to_namespace: self.to_namespace.clone(),
            label: self.label.clone(),
            from_label: self.from_label.clone(),
            to_label: self.to_label.clone(),
            ip: self.ip.clone(),
            from_ip: self.from_ip.clone(),
            to_ip: self.to_ip.clone(),
            port: self.port.clone(),
            from_port: self.from_port.clone(),
            to_port: self.to_port.clone(),
            verdict: self.verdict.clone(),
            protocol: self.protocol.clone(),
            event_type: self.event_type.clone(),
            traffic_direction: self.traffic_direction.clone(),
        }
    }
}

/// Output held back at most while responses keep arriving.
const FLUSH_BYTES: usize = 64 * 1024;

pub fn run(args: &FlowsArgs) -> Result<ExitCode> {
    let server = client::parse_server(&args.server)?;
    let now = Timestamp::from_system_time(SystemTime::now());
    let request = request::build(&args.selector(), &args.filters(), now).map_err(|e| anyhow!(e))?;
    let mut printer = Printer::new(args.output, local_utc_offset, args.follow);
    printer.policy_names = args.print_policy_names;
    // Printed in bursts: what arrived together is written together, and
    // flushed as soon as the stream has nothing more ready (a follower at
    // tens of thousands of flows/s would otherwise spend a write per line).
    let pending = RefCell::new(Vec::with_capacity(FLUSH_BYTES + 4096));
    let flush = || {
        let mut pending = pending.borrow_mut();
        if !pending.is_empty() {
            emit_bytes(&pending);
            pending.clear();
        }
    };
    client::get_flows(
        &server,
        request,
        |response| {
            let (err, full) = {
                let mut pending = pending.borrow_mut();
                let err = printer
                    .write_response(&response, &mut pending)
                    .map_err(|e| anyhow!(e))?;
                (err, pending.len() >= FLUSH_BYTES)
            };
            if !err.is_empty() {
                // Lost-events notices keep their place among the flows.
                flush();
                eprint!("{err}");
            }
            if full {
                flush();
            }
            Ok(true)
        },
        flush,
    )?;
    flush();
    emit(&printer.finish());
    Ok(ExitCode::SUCCESS)
}

/// Seconds east of UTC in the local time zone at `seconds` since the
/// epoch (timestamps print in local time, as hubble prints them).
fn local_utc_offset(seconds: i64) -> i64 {
    let t = seconds as libc::time_t;
    // SAFETY: localtime_r only writes the tm we own.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: FlowsArgs,
    }

    fn parse(args: &[&str]) -> FlowsArgs {
        Cli::try_parse_from(std::iter::once("flows").chain(args.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn hubbles_flags_reach_the_request() {
        let a = parse(&[
            "--last",
            "100",
            "--pod",
            "shop/client",
            "-n",
            "shop",
            "-t",
            "drop",
            "--verdict",
            "DROPPED",
            "--protocol",
            "udp",
            "--port",
            "53",
            "-o",
            "json",
        ]);
        assert_eq!(a.output, Output::Json);
        let r = request::build(&a.selector(), &a.filters(), Timestamp::default()).unwrap();
        assert_eq!(r.number, 100);
        assert_eq!(r.whitelist.len(), 2);
        assert_eq!(r.whitelist[0].source_pod, ["shop/client"]);
        assert_eq!(r.whitelist[1].destination_port, ["53"]);
        assert_eq!(r.whitelist[1].event_type[0].r#type, 1);
        assert_eq!(
            client::parse_server(&parse(&[]).server).unwrap(),
            client::Server::Unix("/var/run/cilium/hubble.sock".into())
        );
    }

    #[test]
    fn output_formats() {
        for (flag, want) in [
            ("compact", Output::Compact),
            ("table", Output::Table),
            ("json", Output::Json),
            ("jsonpb", Output::Jsonpb),
        ] {
            assert_eq!(parse(&["-o", flag]).output, want);
        }
        assert_eq!(parse(&[]).output, Output::Compact);
    }
}

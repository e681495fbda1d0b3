//! `cilium fqdn cache list|clean`: what endpoints learned through the DNS
//! proxy (`/v1/fqdn/cache`), with Cilium's columns.

use std::process::ExitCode;

use anyhow::{bail, Result};
use api::{Client, DnsLookup};
use clap::Subcommand;

use crate::output::{emit, to_json, OutputFormat};
use crate::table::Table;

#[derive(Subcommand, Debug)]
pub enum FqdnCommand {
    /// Manage the DNS cache of names endpoints resolved
    #[command(subcommand)]
    Cache(CacheCommand),
}

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// List the names and IPs endpoints learned
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Forget learned names: their IPs lose what toFQDNs rules allowed
    Clean(CleanArgs),
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only names this toFQDNs matchPattern selects
    #[arg(short = 'p', long)]
    matchpattern: Option<String>,
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

#[derive(clap::Args, Debug)]
pub struct CleanArgs {
    /// Only names this toFQDNs matchPattern selects
    #[arg(short = 'p', long)]
    matchpattern: Option<String>,
    /// Skip the confirmation
    #[arg(short = 'f', long)]
    force: bool,
}

pub fn run(client: &Client, cmd: FqdnCommand) -> Result<ExitCode> {
    match cmd {
        FqdnCommand::Cache(CacheCommand::List(args)) => {
            let lookups = client.fqdn_cache_list(args.matchpattern.as_deref())?;
            match args.output {
                Some(OutputFormat::Json) => emit(&to_json(&lookups)?),
                None => emit(&render(&lookups)),
            }
        }
        FqdnCommand::Cache(CacheCommand::Clean(args)) => {
            if !args.force {
                bail!("cleaning the cache can break connections toFQDNs rules allow: pass -f to go ahead");
            }
            client.fqdn_cache_clean(args.matchpattern.as_deref())?;
            emit("Cleaned the FQDN cache\n");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn render(lookups: &[DnsLookup]) -> String {
    let mut t = Table::new();
    t.row(["Endpoint", "Source", "FQDN", "TTL", "ExpirationTime", "IPs"]);
    for l in lookups {
        t.row([
            l.endpoint_id.to_string(),
            l.source.clone(),
            l.fqdn.clone(),
            l.ttl.to_string(),
            l.expiration_time.clone(),
            l.ips.join(","),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_lookup_with_its_ips() {
        let lookup = DnsLookup {
            fqdn: "api.example.test".into(),
            ips: vec!["192.0.2.1".into(), "192.0.2.2".into()],
            ttl: 60,
            lookup_time: "2026-12-07T08:00:00Z".into(),
            expiration_time: "2026-12-07T08:01:00Z".into(),
            endpoint_id: 12,
            source: "lookup".into(),
        };
        let text = render(&[lookup]);
        let row = text.lines().nth(1).unwrap();
        for cell in [
            "12",
            "lookup",
            "api.example.test",
            "60",
            "2026-12-07T08:01:00Z",
            "192.0.2.1,192.0.2.2",
        ] {
            assert!(row.contains(cell), "{row}");
        }
    }
}

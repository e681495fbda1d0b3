//! `cilium policy delete [--all | LABEL...]`.

use anyhow::{bail, Context, Result};
use api::Client;

use crate::output::{emit, to_json, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Delete rules carrying all of these labels
    labels: Vec<String>,
    /// Delete all rules
    #[arg(long, conflicts_with = "labels")]
    all: bool,
    /// Output format: the agent's answer (remaining rules and revision)
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, args: &DeleteArgs) -> Result<()> {
    // An empty list deletes every rule, so refuse to send one by accident.
    if !args.all && args.labels.is_empty() {
        bail!("specify labels of the rules to delete, or --all");
    }
    let policy = client
        .policy_delete(&args.labels)
        .context("cannot delete policy")?;
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&policy)?),
        None => emit(&super::revision_line(policy.revision)),
    }
    Ok(())
}

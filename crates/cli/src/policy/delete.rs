//! `cilium policy delete [--all | LABEL...]`.

use anyhow::{bail, Context, Result};
use api::Client;

use crate::output::emit;

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Delete rules carrying all of these labels
    labels: Vec<String>,
    /// Delete all rules
    #[arg(long, conflicts_with = "labels")]
    all: bool,
}

pub fn run(client: &Client, args: &DeleteArgs) -> Result<()> {
    // An empty list deletes every rule, so refuse to send one by accident.
    if !args.all && args.labels.is_empty() {
        bail!("specify labels of the rules to delete, or --all");
    }
    let policy = client
        .policy_delete(&args.labels)
        .context("cannot delete policy")?;
    emit(&super::revision_line(policy.revision));
    Ok(())
}

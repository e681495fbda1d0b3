//! `cilium policy import FILE`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use api::Client;

use crate::output::emit;

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// File with the rules (JSON array or YAML); `-` reads stdin
    path: PathBuf,
    /// Replace existing rules that carry the same labels
    #[arg(long)]
    replace: bool,
}

pub fn run(client: &Client, args: &ImportArgs) -> Result<()> {
    let text = super::read_policy_file(&args.path)?;
    let policy = client
        .policy_put(&text, args.replace)
        .context("cannot import policy")?;
    emit(&super::revision_line(policy.revision));
    Ok(())
}

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
    let text = if args.path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read policy from stdin")?
    } else {
        std::fs::read_to_string(&args.path)
            .with_context(|| format!("cannot read policy file {}", args.path.display()))?
    };
    let policy = client
        .policy_put(&text, args.replace)
        .context("cannot import policy")?;
    emit(&super::revision_line(policy.revision));
    Ok(())
}

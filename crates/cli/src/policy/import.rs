//! `cilium policy import FILE`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use api::Client;

use crate::output::{emit, to_json, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// File with the rules (JSON array or YAML); `-` reads stdin
    path: PathBuf,
    /// Replace existing rules that carry the same labels
    #[arg(long)]
    replace: bool,
    /// Print policy after import
    #[arg(long)]
    print: bool,
    /// Output format: the agent's answer (rules and revision)
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, args: &ImportArgs) -> Result<()> {
    let text = super::read_policy_file(&args.path)?;
    let policy = client
        .policy_put(&text, args.replace)
        .context("cannot import policy")?;
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&policy)?),
        None if args.print => emit(&super::get::render(&policy)),
        None => emit(&super::revision_line(policy.revision)),
    }
    Ok(())
}

//! `cilium identity list`.

use anyhow::{Context, Result};
use api::Client;

use crate::output::{emit, to_json, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, args: &ListArgs) -> Result<()> {
    let mut identities = client.identity_list().context("cannot get identity list")?;
    identities.sort_by_key(|i| i.id);
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&identities)?),
        None => emit(&super::render(&identities)),
    }
    Ok(())
}

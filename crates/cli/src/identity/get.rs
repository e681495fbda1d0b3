//! `cilium identity get ID`.

use anyhow::{Context, Result};
use api::Client;

use crate::output::{emit, to_json, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Numeric identity
    id: String,
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, args: &GetArgs) -> Result<()> {
    let identity = client
        .identity_get(&args.id)
        .with_context(|| format!("cannot get identity {}", args.id))?;
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&identity)?),
        None => emit(&super::render(std::slice::from_ref(&identity))),
    }
    Ok(())
}

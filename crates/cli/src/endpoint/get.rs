//! `cilium endpoint get ID`: the endpoint as JSON, in a list like Cilium.

use anyhow::{Context, Result};
use api::Client;

use crate::output::{emit, to_json, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Endpoint id, or a prefixed id such as container-id:XYZ
    id: String,
    /// Output format (the output is JSON either way)
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, args: &GetArgs) -> Result<()> {
    let ep = client
        .endpoint_get(&args.id)
        .with_context(|| format!("cannot get endpoint {}", args.id))?;
    emit(&to_json(&[ep])?);
    Ok(())
}

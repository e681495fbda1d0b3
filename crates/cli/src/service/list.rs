//! `cilium service list`.

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
    let services = client.service_list().context("cannot list services")?;
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&services)?),
        None => emit(&super::render(&services)),
    }
    Ok(())
}

//! `cilium service get ID`.

use anyhow::{Context, Result};
use api::Client;

use crate::output::{emit, to_json, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Service id (1-65535)
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    id: u16,
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, args: &GetArgs) -> Result<()> {
    let service = client
        .service_get(args.id)
        .with_context(|| format!("cannot get service '{}'", args.id))?;
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&service)?),
        None => emit(&super::render(std::slice::from_ref(&service))),
    }
    Ok(())
}

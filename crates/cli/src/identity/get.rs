//! `cilium identity get {ID | --label L...}`.

use anyhow::{bail, Context, Result};
use api::Client;

use crate::output::{emit, to_json, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Numeric identity
    #[arg(required_unless_present = "label", conflicts_with = "label")]
    id: Option<String>,
    /// Label to lookup: the identity of exactly these labels (repeatable or
    /// comma-separated)
    #[arg(long, value_delimiter = ',')]
    label: Vec<String>,
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, args: &GetArgs) -> Result<()> {
    let identity = match &args.id {
        Some(id) => client
            .identity_get(id)
            .with_context(|| format!("cannot get identity {id}"))?,
        None => {
            let all = client.identity_list().context("cannot get identity list")?;
            match all.into_iter().find(|i| super::has_exactly(i, &args.label)) {
                Some(identity) => identity,
                None => bail!("no identity has the labels {}", args.label.join(",")),
            }
        }
    };
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&identity)?),
        None => emit(&super::render(std::slice::from_ref(&identity))),
    }
    Ok(())
}

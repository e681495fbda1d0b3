//! `cilium service delete ID | --all`.

use anyhow::{bail, Context, Result};
use api::Client;

use crate::output::emit;

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Service id (1-65535)
    #[arg(
        value_parser = clap::value_parser!(u16).range(1..),
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    id: Option<u16>,
    /// Delete all services
    #[arg(long)]
    all: bool,
}

pub fn run(client: &Client, args: &DeleteArgs) -> Result<()> {
    let ids: Vec<u16> = if args.all {
        let services = client.service_list().context("cannot list services")?;
        let mut ids = Vec::new();
        for svc in services {
            match u16::try_from(svc.spec.id) {
                Ok(id) => ids.push(id),
                Err(_) => bail!("the agent listed a service with id {}", svc.spec.id),
            }
        }
        ids
    } else {
        args.id.into_iter().collect()
    };
    for id in ids {
        client
            .service_delete(id)
            .with_context(|| format!("cannot delete service '{id}'"))?;
        emit(&format!("Service {id} deleted successfully\n"));
    }
    Ok(())
}

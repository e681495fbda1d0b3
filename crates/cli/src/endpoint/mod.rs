//! `cilium endpoint ...`.

mod get;
mod labels;
mod list;

use std::process::ExitCode;

use anyhow::Result;
use api::Client;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// List all endpoints
    #[command(visible_alias = "ls")]
    List(list::ListArgs),
    /// Display endpoint information
    Get(get::GetArgs),
    /// Manage label configuration of endpoint
    Labels(labels::LabelsArgs),
}

pub fn run(client: &Client, cmd: EndpointCommand) -> Result<ExitCode> {
    match cmd {
        EndpointCommand::List(args) => list::run(client, &args),
        EndpointCommand::Get(args) => get::run(client, &args),
        EndpointCommand::Labels(args) => labels::run(client, &args),
    }?;
    Ok(ExitCode::SUCCESS)
}

//! `cilium node ...`: the cluster's nodes as this agent knows them.

mod list;

use std::process::ExitCode;

use anyhow::Result;
use api::Client;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// List nodes
    #[command(visible_alias = "ls")]
    List(list::ListArgs),
}

pub fn run(client: &Client, cmd: NodeCommand) -> Result<ExitCode> {
    match cmd {
        NodeCommand::List(args) => list::run(client, &args),
    }?;
    Ok(ExitCode::SUCCESS)
}

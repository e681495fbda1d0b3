//! `cilium policy ...`.

mod delete;
mod get;
mod import;

use std::process::ExitCode;

use anyhow::Result;
use api::Client;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Import security policy in JSON or YAML format
    Import(import::ImportArgs),
    /// Display policy node information
    Get(get::GetArgs),
    /// Delete policy rules
    Delete(delete::DeleteArgs),
}

pub fn run(client: &Client, cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Import(args) => import::run(client, &args),
        PolicyCommand::Get(args) => get::run(client, &args),
        PolicyCommand::Delete(args) => delete::run(client, &args),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// The line Cilium ends every policy command with.
pub fn revision_line(revision: u64) -> String {
    format!("Revision: {revision}\n")
}

//! `cilium policy ...`.

mod delete;
mod get;
mod import;
mod trace;
mod validate;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
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
    /// Validate a policy file locally (nothing is sent to the agent)
    Validate(validate::ValidateArgs),
    /// Trace a policy decision between a source and a destination
    Trace(trace::TraceArgs),
}

pub fn run(client: &Client, cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Import(args) => import::run(client, &args),
        PolicyCommand::Get(args) => get::run(client, &args),
        PolicyCommand::Delete(args) => delete::run(client, &args),
        PolicyCommand::Validate(args) => validate::run(&args),
        PolicyCommand::Trace(args) => trace::run(client, &args),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// The line Cilium ends every policy command with.
pub fn revision_line(revision: u64) -> String {
    format!("Revision: {revision}\n")
}

/// The text of a policy file; `-` reads stdin.
pub fn read_policy_file(path: &Path) -> Result<String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read policy from stdin")
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read policy file {}", path.display()))
    }
}

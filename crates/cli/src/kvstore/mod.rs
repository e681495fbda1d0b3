//! `cilium kvstore ...`: the cluster's key-value store, through the agent
//! (`/v1/kvstore/{key}`), never by talking to etcd directly.

mod delete;
mod get;
mod set;

use std::process::ExitCode;

use anyhow::Result;
use api::Client;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum KvstoreCommand {
    /// Retrieve a key
    Get(get::GetArgs),
    /// Set a key and value
    Set(set::SetArgs),
    /// Delete a key
    Delete(delete::DeleteArgs),
}

pub fn run(client: &Client, cmd: KvstoreCommand) -> Result<ExitCode> {
    match cmd {
        KvstoreCommand::Get(args) => get::run(client, &args),
        KvstoreCommand::Set(args) => set::run(client, &args),
        KvstoreCommand::Delete(args) => delete::run(client, &args),
    }
}

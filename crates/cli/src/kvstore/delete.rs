//! `cilium kvstore delete [--recursive] KEY`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use api::{Client, ClientError};

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// Delete every key under the prefix
    #[arg(long)]
    recursive: bool,
    /// Key (or prefix with --recursive)
    key: String,
}

pub fn run(client: &Client, args: &DeleteArgs) -> Result<ExitCode> {
    if args.key.trim_matches('/').is_empty() {
        bail!("refusing to delete an empty key (the whole store)");
    }
    match client.kvstore_delete(&args.key, args.recursive) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(ClientError::Api { status: 404, .. }) => {
            bail!("key {:?} not found in the kvstore", args.key)
        }
        Err(e) => bail!("cannot delete key {:?} from the kvstore: {e}", args.key),
    }
}

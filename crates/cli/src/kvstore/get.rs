//! `cilium kvstore get [--recursive] KEY`: one `key => value` line per key,
//! as Cilium prints them. A missing key is an error naming it.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{bail, Result};
use api::{Client, ClientError, KvPair};

use crate::output::{emit, to_json, OutputFormat};

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Recursive lookup: every key under the prefix
    #[arg(long)]
    recursive: bool,
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
    /// Key (or prefix with --recursive)
    key: String,
}

pub fn run(client: &Client, args: &GetArgs) -> Result<ExitCode> {
    let pairs = match client.kvstore_get(&args.key, args.recursive) {
        Ok(pairs) => pairs,
        Err(ClientError::Api { status: 404, .. }) if args.recursive => Vec::new(),
        Err(ClientError::Api { status: 404, .. }) => {
            bail!("key {:?} not found in the kvstore", args.key)
        }
        Err(e) => bail!("cannot get key {:?} from the kvstore: {e}", args.key),
    };
    if !args.recursive && pairs.is_empty() {
        bail!("key {:?} not found in the kvstore", args.key);
    }
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&as_map(&pairs))?),
        None => emit(&render(&pairs)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `key => value` lines, sorted by key.
pub fn render(pairs: &[KvPair]) -> String {
    let mut sorted: Vec<&KvPair> = pairs.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    sorted
        .iter()
        .map(|p| format!("{} => {}\n", p.key, p.value))
        .collect()
}

fn as_map(pairs: &[KvPair]) -> BTreeMap<&str, &str> {
    pairs
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_print_sorted_with_arrows() {
        let pairs = vec![
            KvPair {
                key: "cilium/b".into(),
                value: "2".into(),
            },
            KvPair {
                key: "cilium/a".into(),
                value: "{\"x\":1}".into(),
            },
        ];
        assert_eq!(render(&pairs), "cilium/a => {\"x\":1}\ncilium/b => 2\n");
        assert_eq!(as_map(&pairs)["cilium/b"], "2");
    }
}

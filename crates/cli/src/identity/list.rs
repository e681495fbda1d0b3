//! `cilium identity list [LABELS] [--endpoints]`.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use api::{Client, Endpoint, Identity};

use crate::output::{emit, to_json, OutputFormat};
use crate::table::Table;

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only the identity of exactly this label set
    labels: Vec<String>,
    /// List identities of locally managed endpoints
    #[arg(long, conflicts_with = "labels")]
    endpoints: bool,
    /// Output format
    #[arg(short = 'o', long = "output")]
    output: Option<OutputFormat>,
}

pub fn run(client: &Client, args: &ListArgs) -> Result<()> {
    if args.endpoints {
        let endpoints = client.endpoint_list().context("cannot list endpoints")?;
        let used = endpoint_identities(&endpoints);
        match args.output {
            Some(OutputFormat::Json) => {
                let list: Vec<&Identity> = used.values().map(|(i, _)| i).collect();
                emit(&to_json(&list)?)
            }
            None => emit(&render_with_refcount(&used)),
        }
        return Ok(());
    }
    let mut identities = client.identity_list().context("cannot get identity list")?;
    if !args.labels.is_empty() {
        identities.retain(|i| super::has_exactly(i, &args.labels));
    }
    identities.sort_by_key(|i| i.id);
    match args.output {
        Some(OutputFormat::Json) => emit(&to_json(&identities)?),
        None => emit(&super::render(&identities)),
    }
    Ok(())
}

/// Each identity the endpoints have, with how many of them have it.
fn endpoint_identities(endpoints: &[Endpoint]) -> BTreeMap<u32, (Identity, usize)> {
    let mut used: BTreeMap<u32, (Identity, usize)> = BTreeMap::new();
    for ep in endpoints {
        let identity = &ep.status.identity;
        used.entry(identity.id)
            .or_insert_with(|| (identity.clone(), 0))
            .1 += 1;
    }
    used
}

/// Cilium's `--endpoints` table: ID, LABELS (one per line), REFCOUNT.
fn render_with_refcount(used: &BTreeMap<u32, (Identity, usize)>) -> String {
    let mut t = Table::new();
    t.row(["ID", "LABELS", "REFCOUNT"]);
    for (id, (identity, refs)) in used {
        let labels = crate::labels::sorted(&identity.labels);
        let first = labels.first().cloned().unwrap_or_default();
        t.row([id.to_string(), first, refs.to_string()]);
        for label in labels.iter().skip(1) {
            t.row([String::new(), label.clone(), String::new()]);
        }
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_identities_are_counted() {
        let ep = |id: u16, identity: u32, labels: &[&str]| {
            let mut ep = Endpoint {
                id,
                ..Default::default()
            };
            ep.status.identity = Identity {
                id: identity,
                labels: labels.iter().map(|l| l.to_string()).collect(),
                ..Default::default()
            };
            ep
        };
        let used = endpoint_identities(&[
            ep(1, 300, &["k8s:app=web", "k8s:env=prod"]),
            ep(2, 300, &["k8s:app=web", "k8s:env=prod"]),
            ep(3, 301, &["k8s:app=db"]),
        ]);
        assert_eq!(
            render_with_refcount(&used),
            "ID    LABELS         REFCOUNT\n\
             300   k8s:app=web    2\n      k8s:env=prod\n\
             301   k8s:app=db     1\n"
        );
    }
}

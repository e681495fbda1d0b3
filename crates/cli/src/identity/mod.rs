//! `cilium identity ...`.

mod get;
mod list;

use std::process::ExitCode;

use anyhow::Result;
use api::{Client, Identity};
use clap::Subcommand;

use crate::labels;
use crate::table::Table;

#[derive(Subcommand, Debug)]
pub enum IdentityCommand {
    /// List identities
    #[command(visible_alias = "ls")]
    List(list::ListArgs),
    /// Retrieve information about an identity
    Get(get::GetArgs),
}

pub fn run(client: &Client, cmd: IdentityCommand) -> Result<ExitCode> {
    match cmd {
        IdentityCommand::List(args) => list::run(client, &args),
        IdentityCommand::Get(args) => get::run(client, &args),
    }?;
    Ok(ExitCode::SUCCESS)
}

/// ID / LABELS table, one label per line.
pub fn render(identities: &[Identity]) -> String {
    let mut t = Table::new();
    t.row(["ID", "LABELS"]);
    for identity in identities {
        let sorted = labels::sorted(&identity.labels);
        if sorted.is_empty() {
            t.row([identity.id.to_string(), String::new()]);
        }
        for (i, label) in sorted.iter().enumerate() {
            let id = if i == 0 {
                identity.id.to_string()
            } else {
                String::new()
            };
            t.row([id, label.clone()]);
        }
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_table() {
        let ids = vec![
            Identity {
                id: 1,
                labels: vec!["reserved:host".into()],
                ..Default::default()
            },
            Identity {
                id: 256,
                labels: vec!["container:tier=front".into(), "container:app=web".into()],
                ..Default::default()
            },
        ];
        assert_eq!(
            render(&ids),
            "ID    LABELS\n\
             1     reserved:host\n\
             256   container:app=web\n      container:tier=front\n"
        );
    }
}

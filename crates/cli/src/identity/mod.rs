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

/// Whether `identity` is the one of exactly the label set `wanted` (a label
/// without a source matches any source).
pub fn has_exactly(identity: &Identity, wanted: &[String]) -> bool {
    let have = &identity.labels;
    have.len() == wanted.len()
        && wanted
            .iter()
            .all(|w| have.iter().any(|l| labels::same(l, w)))
        && have
            .iter()
            .all(|l| wanted.iter().any(|w| labels::same(l, w)))
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
    fn a_label_set_names_one_identity() {
        let web = Identity {
            id: 300,
            labels: vec!["k8s:app=web".into(), "k8s:env=prod".into()],
            ..Default::default()
        };
        let wanted = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(has_exactly(&web, &wanted(&["k8s:env=prod", "app=web"])));
        assert!(!has_exactly(&web, &wanted(&["k8s:app=web"])));
        assert!(!has_exactly(
            &web,
            &wanted(&["k8s:app=web", "k8s:env=prod", "x=y"])
        ));
    }

    #[test]
    fn parses_ciliums_flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            cmd: IdentityCommand,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("identity").chain(args.iter().copied()))
        };
        assert!(parse(&["list", "--endpoints"]).is_ok());
        assert!(parse(&["list", "k8s:app=web", "k8s:env=prod"]).is_ok());
        assert!(parse(&["get", "--label", "k8s:app=web", "--label", "k8s:env=prod"]).is_ok());
        assert!(parse(&["get", "300"]).is_ok());
        assert!(parse(&["get"]).is_err());
    }

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

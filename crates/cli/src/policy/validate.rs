//! `cilium policy validate FILE`: parses and checks policy locally with the
//! same reader the agent uses; nothing is sent to the agent.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::output::{emit, to_json};

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// File with the policy (rules, CiliumNetworkPolicy, NetworkPolicy; JSON or YAML); `-` reads stdin
    path: PathBuf,
    /// Print the resulting Cilium rules as JSON
    #[arg(long)]
    print: bool,
}

/// What `validate` prints on success.
pub const VALID: &str = "All policy elements are valid.\n";

pub fn run(args: &ValidateArgs) -> Result<()> {
    let text = super::read_policy_file(&args.path)?;
    let rules = check(&text, &args.path)?;
    if args.print {
        emit(&to_json(&rules)?);
    }
    emit(VALID);
    Ok(())
}

/// Parses `text`; the error names the file and everything the parser said.
fn check(text: &str, path: &std::path::Path) -> Result<Vec<policy::Rule>> {
    policy::parse_rules(text).with_context(|| format!("cannot parse policy {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_policy_and_names_the_problem_otherwise() {
        let path = std::path::Path::new("p.yaml");
        let rules = check(
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web}\nspec: {endpointSelector: {}}\n",
            path,
        )
        .unwrap();
        assert_eq!(rules.len(), 1);
        let err = check(
            "- endpointSelector: {}\n  ingress: [{toPorts: [{ports: [{port: '80', endPort: 70}]}]}]\n",
            path,
        )
        .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "cannot parse policy p.yaml: rule 0: ingress[0].toPorts[0].ports[0].endPort: 70 is below port 80"
        );
    }
}

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
    /// Say so when the policy is valid (`--verbose=false`: only the exit
    /// status tells)
    #[arg(short = 'v', long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    verbose: bool,
}

/// What `validate` prints on success.
pub const VALID: &str = "All policy elements are valid.\n";

pub fn run(args: &ValidateArgs) -> Result<()> {
    let text = super::read_policy_file(&args.path)?;
    let rules = check(&text, &args.path)?;
    if args.print {
        emit(&to_json(&rules)?);
    }
    if args.verbose {
        emit(VALID);
    }
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
    fn verbose_is_on_unless_turned_off() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: ValidateArgs,
        }
        let verbose = |args: &[&str]| {
            Cli::try_parse_from(["validate", "p.yaml"].iter().chain(args))
                .unwrap()
                .args
                .verbose
        };
        assert!(verbose(&[]));
        assert!(verbose(&["-v"]));
        assert!(verbose(&["--print", "--verbose"]));
        assert!(!verbose(&["--verbose=false"]));
    }

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

//! `cilium policy get`: the rules as JSON, then the revision.

use anyhow::{Context, Result};
use api::{Client, Policy};

use crate::output::emit;

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Output format (the rules are JSON either way)
    #[arg(short = 'o', long = "output")]
    output: Option<crate::output::OutputFormat>,
}

pub fn run(client: &Client, _args: &GetArgs) -> Result<()> {
    let policy = client.policy_get().context("cannot get policy")?;
    emit(&render(&policy));
    Ok(())
}

/// Rules indented for reading (kept verbatim if they are not JSON), then
/// `Revision: N`.
pub fn render(policy: &Policy) -> String {
    let rules = match serde_json::from_str::<serde_json::Value>(&policy.policy) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| policy.policy.clone()),
        Err(_) => policy.policy.trim_end().to_string(),
    };
    format!("{rules}\n{}", super::revision_line(policy.revision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_then_revision() {
        let p = Policy {
            revision: 3,
            policy: r#"[{"endpointSelector":{}}]"#.into(),
        };
        assert_eq!(
            render(&p),
            "[\n  {\n    \"endpointSelector\": {}\n  }\n]\nRevision: 3\n"
        );
        let empty = Policy {
            revision: 1,
            policy: String::new(),
        };
        assert_eq!(render(&empty), "\nRevision: 1\n");
    }
}

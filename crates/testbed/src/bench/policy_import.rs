//! `cilium policy import` as the benches use it: the revision it reports
//! is what endpoints are then waited on.

use std::path::Path;

use anyhow::{Context, Result};

use crate::Agent;

/// Imports the policy file at `path` with the CLI; the new revision.
pub fn import_file(agent: &Agent, path: &Path) -> Result<u64> {
    let out = agent.cli_ok(&["policy", "import", &path.display().to_string()])?;
    parse_revision(&out)
}

/// Writes `policy` (YAML or JSON) as `file_name` in the agent's temp
/// directory and imports it; the new revision.
pub fn import_text(agent: &Agent, file_name: &str, policy: &str) -> Result<u64> {
    let path = agent.temp_dir().join(file_name);
    std::fs::write(&path, policy).with_context(|| format!("cannot write {}", path.display()))?;
    import_file(agent, &path)
}

/// The `Revision: N` line of the CLI's output.
pub fn parse_revision(text: &str) -> Result<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("Revision:"))
        .and_then(|r| r.trim().parse().ok())
        .with_context(|| format!("no `Revision: N` in the CLI output {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_revision_line() {
        assert_eq!(parse_revision("Revision: 7\n").unwrap(), 7);
        assert!(parse_revision("imported").is_err());
    }
}

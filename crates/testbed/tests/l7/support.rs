//! Shared by the L7 acceptance tests: importing a policy and waiting until
//! the pods it concerns enforce it, and what the agent and cilium-proxy said
//! about proxying, for failure messages.

use anyhow::Result;
use testbed::{Agent, Pod};

const PROXY_LOG_TAIL_BYTES: usize = 2048;

/// Replaces every rule with `yaml` and waits until each of `pods` has
/// realized the new revision.
pub fn apply_policy(agent: &Agent, pods: &[&Pod], yaml: &str) -> Result<()> {
    agent.cli_ok(&["policy", "delete", "--all"])?;
    agent.import_policy(yaml, pods)?;
    Ok(())
}

/// The agent's log lines about the proxy and the tail of cilium-proxy's
/// own log, and every cilium-proxy listener of the host namespace. A proxy
/// port that another process holds (the agent's proxy then cannot listen,
/// and the datapath hands connections to that other process) shows up
/// here as "Address already in use" and a listener of another pid.
pub fn proxy_report(agent: &Agent) -> String {
    let agent_log = std::fs::read_to_string(agent.log_path()).unwrap_or_default();
    let agent_lines: Vec<&str> = agent_log.lines().filter(|l| l.contains("proxy")).collect();
    let proxy_log =
        std::fs::read(agent.paths().state_dir.join("cilium-proxy.log")).unwrap_or_default();
    let start = proxy_log.len().saturating_sub(PROXY_LOG_TAIL_BYTES);
    let listeners = testbed::cmd::output("ss", &["-Hltnp"])
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    let proxy_listeners: Vec<&str> = listeners
        .lines()
        .filter(|l| l.contains("cilium-proxy"))
        .collect();
    format!(
        "agent log about the proxy:\n{}\ncilium-proxy log tail:\n{}\n\
         cilium-proxy listeners in the host namespace (any agent's):\n{}",
        agent_lines.join("\n"),
        String::from_utf8_lossy(&proxy_log[start..]),
        proxy_listeners.join("\n")
    )
}

//! The cilium-agent a bench measures: started on its own pod range, and
//! its log tail shown when the bench fails (not when Ctrl-C stops it).

use std::time::Instant;

use anyhow::Result;

use super::entry::step;
use super::signals;
use crate::{Agent, AgentOptions};

/// Starts the agent with its pods in `ipv4_range`, a range no other bench
/// and no test uses.
pub fn start(started: Instant, ipv4_range: &str) -> Result<Agent> {
    step(started, "starting cilium-agent");
    Agent::start_with(AgentOptions {
        ipv4_range: Some(ipv4_range.to_string()),
        ..Default::default()
    })
}

/// `result`, after printing the agent's log tail to stderr if it is a
/// failure the signal did not cause.
pub fn with_log_tail<T>(agent: &Agent, result: Result<T>) -> Result<T> {
    if result.is_err() && !signals::stopped() {
        eprintln!("---- cilium-agent log tail ----\n{}", agent.log_tail());
    }
    result
}

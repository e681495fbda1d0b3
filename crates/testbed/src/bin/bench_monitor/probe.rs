//! The counters read around each measurement: the agent's own (datapath
//! drops from `cilium_metrics`, events lost by monitor clients) through
//! `GET /v1/metrics`, and CPU time from /proc.

use std::time::Instant;

use anyhow::{Context, Result};
use testbed::Agent;

/// The agent's counters at one moment.
#[derive(Debug, Clone, Copy)]
pub struct AgentCounters {
    /// `cilium_drop_count_total`, every reason and direction.
    pub datapath_drops: u64,
    /// `cilium_monitor_lost_events_total`: events the agent could not
    /// deliver to a client that fell behind.
    pub monitor_lost: u64,
    /// Halfway through the scrape: when the values were read.
    pub at: Instant,
}

impl AgentCounters {
    pub fn read(agent: &Agent) -> Result<AgentCounters> {
        let asked = Instant::now();
        let samples = agent.client().metrics_list().context("GET /v1/metrics")?;
        let answered = Instant::now();
        let sum = |name: &str| -> u64 {
            samples
                .iter()
                .filter(|s| s.name == name)
                .map(|s| s.value as u64)
                .sum()
        };
        Ok(AgentCounters {
            datapath_drops: sum("cilium_drop_count_total"),
            monitor_lost: sum("cilium_monitor_lost_events_total"),
            at: asked + (answered - asked) / 2,
        })
    }
}

//! Measurement 3: what the agents cost at steady state. Memory from each
//! agent's /proc/<pid>/status; CPU over a quiet window; and the requests
//! each agent makes to kube-apiserver in that window, counted in the API
//! server's audit log (one line per request received, with the client's
//! source address: every agent runs in its node's namespace and reaches the
//! API server from its node IP, while the bench's kubectl and
//! kube-controller-manager come from the bridge). The window is marked in
//! the log by the bench's own two `GET /metrics` scrapes, which also give
//! `apiserver_request_total` (all clients) over the same window. See
//! `audit` for the counting.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use testbed::bench::process_table::agent_pid;
use testbed::bench::procstat::{memory_kib, CpuMeter};
use testbed::bench::signals;
use testbed::cluster::Cluster;

use crate::audit::{self, END_MARK, START_MARK};

#[derive(Debug, Clone)]
pub struct AgentFootprint {
    pub node: String,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    /// VmRSS's parts: anonymous memory (heap, stacks) and file pages (the
    /// binary, mapped files).
    pub anon_kib: u64,
    pub file_kib: u64,
    /// Percent of one core over the quiet window.
    pub cpu_percent: f64,
}

pub struct Footprint {
    pub window: Duration,
    pub agents: Vec<AgentFootprint>,
    pub requests: audit::Window,
    /// The same from the API server's start to the end of the window.
    pub whole_run: audit::Window,
    /// How long that was.
    pub run_seconds: f64,
    /// The increase of `apiserver_request_total` (all clients) between the
    /// two scrapes.
    pub request_total_delta: f64,
}

pub fn measure(cluster: &Cluster, quiet: Duration) -> Result<Footprint> {
    let plane = cluster.control_plane();
    let mut pids = Vec::new();
    for node in cluster.nodes() {
        pids.push(agent_pid(node.agent().socket())?);
    }
    let meters = pids
        .iter()
        .map(|&pid| CpuMeter::start(pid))
        .collect::<Result<Vec<_>>>()?;
    let before = request_total(&plane.kubectl(&["get", "--raw", START_MARK])?);
    let start = Instant::now();
    while start.elapsed() < quiet {
        signals::check()?;
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = request_total(&plane.kubectl(&["get", "--raw", END_MARK])?);
    let window = start.elapsed();
    let mut agents = Vec::new();
    for ((node, &pid), meter) in cluster.nodes().iter().zip(&pids).zip(&meters) {
        let (rss_kib, hwm_kib) = memory_kib(pid)?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        agents.push(AgentFootprint {
            node: node.name().to_string(),
            rss_kib,
            hwm_kib,
            anon_kib: status_kib(&status, "RssAnon:"),
            file_kib: status_kib(&status, "RssFile:"),
            cpu_percent: meter.percent()?,
        });
    }
    let log = audit::read(cluster)?;
    let node_ips: BTreeMap<String, String> = cluster
        .nodes()
        .iter()
        .map(|n| (n.ip().to_string(), n.name().to_string()))
        .collect();
    Ok(Footprint {
        window,
        agents,
        requests: audit::count_window(&log, &node_ips, false)?,
        whole_run: audit::count_window(&log, &node_ips, true)?,
        run_seconds: log_span_seconds(&log).unwrap_or(f64::NAN),
        request_total_delta: after - before,
    })
}

/// A `Name:   123 kB` field of /proc/PID/status (0 if missing).
fn status_kib(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Seconds from the audit log's first request to the window's end mark.
fn log_span_seconds(log: &str) -> Option<f64> {
    let time = |line: &str| -> Option<u64> {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        audit::unix_micros(event["requestReceivedTimestamp"].as_str()?)
    };
    let first = time(log.lines().next()?)?;
    let end = log.lines().find(|l| l.contains(END_MARK)).and_then(time)?;
    Some(end.saturating_sub(first) as f64 / 1e6)
}

/// The sum of every `apiserver_request_total` series.
pub fn request_total(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_request_series() {
        let text = "# HELP apiserver_request_total x\n\
            apiserver_request_total{code=\"200\",verb=\"GET\"} 12\n\
            apiserver_request_total{code=\"201\",verb=\"POST\"} 3\n\
            apiserver_request_duration_seconds_count{verb=\"GET\"} 99\n";
        assert_eq!(request_total(text), 15.0);
    }
}

//! CPU time of the processes on the request path, read from /proc around
//! each measurement: on a shared 2-core machine the CPU a proxy spends per
//! request says more about its cost than the request rate alone.

use testbed::bench::procstat;

/// One process (or a parent with its children, like nginx's master and
/// workers) whose CPU time is sampled.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub name: &'static str,
    pub pids: Vec<u32>,
}

/// user + system CPU seconds of every tracked process, in `tracked` order;
/// a process that is gone counts as 0.
pub fn snapshot(tracked: &[Tracked]) -> Vec<f64> {
    tracked
        .iter()
        .map(|t| {
            t.pids
                .iter()
                .map(|&pid| procstat::process_cpu_seconds(pid).unwrap_or(0.0))
                .sum()
        })
        .collect()
}

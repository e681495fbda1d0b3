//! The ring's memory at capacity. Agents with the default ring and agents
//! with a ring of one flow take the same load (the same pods, policy and
//! wrk run); each agent's RSS is read before the load and once the flow
//! store has caught up after it. Everything else in the agent (the
//! monitor hub, the flow conversion, metrics, the allocator's arenas) sees
//! the same traffic in both, so the difference of the RSS after is what
//! the full ring holds.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use testbed::bench::{procstat, signals};

use crate::load;
use crate::scene::Scene;

/// After the load: the flow store drains the monitor's backlog.
const CATCH_UP: Duration = Duration::from_secs(1);

/// One agent's account.
#[derive(Debug, Clone)]
pub struct MemorySample {
    /// `--hubble-event-buffer-capacity` given (`None`: the default).
    pub requested: Option<usize>,
    /// The capacity as `hubble status` reports it (with the real CLI).
    pub max_flows: Option<u64>,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub hwm_after_kib: u64,
    /// Flows the ring held after the load (`cilium flows --last`).
    pub stored: usize,
    /// `hubble_flows_processed_total` after the load.
    pub processed: u64,
    pub connections_per_s: f64,
}

impl MemorySample {
    pub fn growth_kib(&self) -> i64 {
        self.rss_after_kib as i64 - self.rss_before_kib as i64
    }
}

/// `capacity`: `None` for the agent's default.
pub fn probe(
    started: Instant,
    range: &str,
    capacity: Option<usize>,
    tag: &str,
    fill: Duration,
    connections: u32,
    hubble: Option<&Path>,
) -> Result<MemorySample> {
    let scene = Scene::start(started, range, capacity, tag)?;
    // Warm the same paths in both agents before the first reading.
    load::short_connections(&scene, 1, Duration::from_secs(1), None)?;
    std::thread::sleep(CATCH_UP);
    signals::check()?;
    let (rss_before_kib, _) = procstat::memory_kib(scene.agent_pid)?;
    let run = load::short_connections(&scene, connections, fill, None)?;
    std::thread::sleep(CATCH_UP);
    let (rss_after_kib, hwm_after_kib) = procstat::memory_kib(scene.agent_pid)?;
    let processed = scene.flows_processed()?;
    let (stored, max_flows) = ring_fill(&scene, hubble)?;
    ensure!(
        processed >= 2 * stored as u64,
        "the load made {processed} flows, not twice the {stored} the ring holds: raise \
         --fill-seconds"
    );
    Ok(MemorySample {
        requested: capacity,
        max_flows,
        rss_before_kib,
        rss_after_kib,
        hwm_after_kib,
        stored,
        processed,
        connections_per_s: run.connections_per_s,
    })
}

/// The flows the ring holds (`cilium flows --last` counts them) and, with
/// the real hubble CLI, its capacity from `hubble status` (ServerStatus).
fn ring_fill(scene: &Scene, hubble: Option<&Path>) -> Result<(usize, Option<u64>)> {
    let server = format!("unix://{}", scene.socket().display());
    let out = scene
        .agent
        .cli_ok(&[
            "flows", "--server", &server, "--last", "1000000", "-o", "json",
        ])
        .context("cilium flows --last")?;
    let stored = out.lines().filter(|l| !l.trim().is_empty()).count();
    let max = match hubble {
        Some(bin) => {
            let out = Command::new(bin)
                .args(["status", "--server", &server])
                .env("HOME", scene.socket().parent().unwrap_or(Path::new("/tmp")))
                .output()
                .context("hubble status")?;
            parse_max_flows(&String::from_utf8_lossy(&out.stdout))
        }
        None => None,
    };
    Ok((stored, max))
}

/// `Current/Max Flows: 4,095/4,095 (100.00%)` → 4095.
pub fn parse_max_flows(status: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Current/Max Flows:"))?;
    let max = line.split('/').nth(1)?.split_whitespace().next()?;
    max.replace(',', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_capacity_from_hubble_status() {
        let text = "Healthcheck (via unix:///tmp/h.sock): Ok\n\
                    Current/Max Flows: 4,095/4,095 (100.00%)\nFlows/s: 2.51\n";
        assert_eq!(parse_max_flows(text), Some(4095));
        assert_eq!(parse_max_flows("Current/Max Flows: 1/1 (100.00%)"), Some(1));
        assert_eq!(parse_max_flows("nothing"), None);
    }
}

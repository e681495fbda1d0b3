//! One connection-rate measurement: the configuration it ran, what wrk
//! reported and the counters read around it.

use std::time::Duration;

use crate::load::ShortRun;
use crate::pin::Placement;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    /// Hubble on, its ring filling, nobody observing: the reference.
    Capture,
    /// The same with the real `hubble observe --follow` reading every flow.
    HubbleFollowing,
    /// The same with our `cilium flows --follow`.
    CiliumFollowing,
}

impl Config {
    pub const ALL: [Config; 3] = [
        Config::Capture,
        Config::HubbleFollowing,
        Config::CiliumFollowing,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Config::Capture => "(a) capture, no observer",
            Config::HubbleFollowing => "(b) + hubble observe --follow",
            Config::CiliumFollowing => "(c) + cilium flows --follow",
        }
    }

    /// The following client, for sentences.
    pub fn client(self) -> &'static str {
        match self {
            Config::Capture => "no client",
            Config::HubbleFollowing => "`hubble observe --follow`",
            Config::CiliumFollowing => "`cilium flows --follow`",
        }
    }

    pub fn follows(self) -> bool {
        self != Config::Capture
    }
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub placement: Placement,
    pub config: Config,
    pub round: usize,
    /// Wall time around the wrk run: what CPU times and counts cover.
    pub window: Duration,
    pub run: ShortRun,
    /// `hubble_flows_processed_total` delta.
    pub flows: u64,
    pub agent_cpu: f64,
    /// The following CLI's CPU seconds (0 without one).
    pub follower_cpu: f64,
    /// Lines the follower printed, and flows it was told it lost.
    pub follower_lines: u64,
    pub follower_lost: u64,
    /// Share of all CPUs busy during the window, 0–1.
    pub machine_busy: f64,
    /// Share of CPU 0 and of CPU 1 busy during the window, 0–1.
    pub cpu_busy: [f64; 2],
    /// Sockets in TIME_WAIT in the client pod after the run: its ports.
    pub client_time_wait: u64,
}

impl Sample {
    fn secs(&self) -> f64 {
        self.window.as_secs_f64().max(1e-9)
    }

    pub fn flows_per_s(&self) -> f64 {
        self.flows as f64 / self.secs()
    }

    pub fn flows_per_connection(&self) -> f64 {
        self.flows as f64 / self.run.requests.max(1) as f64
    }

    /// % of one core.
    pub fn cpu_percent(&self, seconds: f64) -> f64 {
        100.0 * seconds / self.secs()
    }

    /// The agent's CPU (% of one core) for every 10,000 flows/s it stored.
    pub fn agent_cpu_per_10k_flows(&self) -> f64 {
        self.cpu_percent(self.agent_cpu) / (self.flows_per_s() / 10_000.0).max(1e-9)
    }

    pub fn follower_lines_per_s(&self) -> f64 {
        self.follower_lines as f64 / self.secs()
    }

    pub fn follower_lost_per_s(&self) -> f64 {
        self.follower_lost as f64 / self.secs()
    }

    /// Flows stored that the follower neither printed nor was told it
    /// lost, per second (it was still behind when the window closed, or
    /// dropped them unannounced).
    pub fn follower_missing_per_s(&self) -> f64 {
        let accounted = self.follower_lines + self.follower_lost;
        self.flows.saturating_sub(accounted) as f64 / self.secs()
    }
}

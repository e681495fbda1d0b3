//! What one measurement holds: the configuration it ran, the counters
//! read around its window, and the rates and shares derived from them.

use std::time::Duration;

use crate::client::Counts;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    /// The allowed flow alone: what the flood itself costs.
    NoFlood,
    /// Flood, no monitor client: the reference for the ratios.
    Flood,
    /// Flood and `cilium monitor -o json` read as fast as it prints.
    FastClient,
    /// Flood and `cilium monitor -o json` read at a slow fixed pace.
    SlowClient,
}

impl Config {
    pub const ALL: [Config; 4] = [
        Config::NoFlood,
        Config::Flood,
        Config::FastClient,
        Config::SlowClient,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Config::NoFlood => "(0) no flood, no client",
            Config::Flood => "(1) flood, no monitor client",
            Config::FastClient => "(2) flood + cilium monitor, fast reader",
            Config::SlowClient => "(3) flood + cilium monitor, slow reader",
        }
    }

    pub fn floods(self) -> bool {
        self != Config::NoFlood
    }

    pub fn has_client(self) -> bool {
        matches!(self, Config::FastClient | Config::SlowClient)
    }
}

/// The fast client's full account of one window, taken after the flood
/// stopped and the client caught up.
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    /// Two events per datagram dropped from the window's start until the
    /// flood stopped.
    pub produced: u64,
    /// Datapath events the client received for that span.
    pub arrived: u64,
    /// What the agent told the client it lost.
    pub reported_lost: u64,
}

impl Settled {
    /// Produced but neither received nor reported lost: lost before the
    /// agent's fan-out.
    pub fn unaccounted(&self) -> i64 {
        self.produced as i64 - (self.arrived + self.reported_lost) as i64
    }

    pub fn unaccounted_share(&self) -> f64 {
        self.unaccounted() as f64 / self.produced.max(1) as f64
    }
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Sample {
    pub config: Config,
    pub round: usize,
    /// The window the CPU times and the flood/client counts cover.
    pub window: Duration,
    /// The window between the two metrics scrapes (datapath counters).
    pub scrape_window: Duration,
    pub sent: u64,
    pub send_errors: u64,
    pub datapath_drops: u64,
    pub agent_lost: u64,
    /// Only for the fast client.
    pub settled: Option<Settled>,
    pub client: Option<Counts>,
    pub gbps: f64,
    pub agent_cpu: f64,
    /// The `cilium monitor` process.
    pub client_cpu: f64,
    /// The bench's thread reading the CLI's stdout.
    pub reader_cpu: f64,
    pub flood_cpu: f64,
    /// Share of all CPUs busy (any process) during the window, 0–1.
    pub machine_busy: f64,
}

impl Sample {
    pub fn per_s(&self, n: u64) -> f64 {
        n as f64 / self.window.as_secs_f64().max(1e-9)
    }

    pub fn per_scrape_s(&self, n: u64) -> f64 {
        n as f64 / self.scrape_window.as_secs_f64().max(1e-9)
    }

    pub fn cpu_percent(&self, seconds: f64) -> f64 {
        100.0 * seconds / self.window.as_secs_f64().max(1e-9)
    }

    pub fn sent_per_s(&self) -> f64 {
        self.per_s(self.sent)
    }

    pub fn drops_per_s(&self) -> f64 {
        self.per_scrape_s(self.datapath_drops)
    }

    /// Each denied datagram puts two events in the ring: the policy
    /// verdict and the drop.
    pub fn produced_per_s(&self) -> f64 {
        2.0 * self.drops_per_s()
    }

    pub fn client_rate(&self, f: impl Fn(&Counts) -> u64) -> Option<f64> {
        self.client.as_ref().map(|c| self.per_s(f(c)))
    }

    /// Share of the produced events the fast client neither received nor
    /// was told it lost.
    pub fn unaccounted_share(&self) -> Option<f64> {
        self.settled.as_ref().map(Settled::unaccounted_share)
    }
}

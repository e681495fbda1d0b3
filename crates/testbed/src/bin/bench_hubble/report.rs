//! The results page: the three questions answered with this run's
//! medians, then the tables they come from. Every measurement ran in one of
//! two placements (pin.rs); each ratio compares configurations of the same
//! placement.

use std::fmt::Write;
use std::time::Duration;

use testbed::bench::stats::{median, min_max, round_ratios};

use crate::memory::MemorySample;
use crate::pin::{Placement, OBSERVER_CPU, WORKLOAD_CPU};
use crate::sample::{Config, Sample};

const RATIO_TARGET: f64 = 0.9;
const RING_TARGET_MIB: f64 = 8.0;
/// The placement the datapath-cost target is judged on (see the page).
const JUDGED: Placement = Placement::Isolated;

pub struct Report {
    pub machine: Vec<(String, String)>,
    pub method: Vec<String>,
    pub rounds: usize,
    pub samples: Vec<Sample>,
    pub memory: Vec<MemorySample>,
    pub notes: Vec<String>,
    pub total: Duration,
}

impl Report {
    fn of(&self, p: Placement, config: Config) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .filter(move |s| s.placement == p && s.config == config)
    }

    pub fn median(&self, p: Placement, config: Config, f: impl Fn(&Sample) -> f64) -> f64 {
        median(&self.of(p, config).map(f).collect::<Vec<_>>())
    }

    fn range(&self, p: Placement, config: Config, f: impl Fn(&Sample) -> f64) -> (f64, f64) {
        min_max(&self.of(p, config).map(f).collect::<Vec<_>>())
    }

    fn conn_rate(&self, p: Placement, config: Config) -> f64 {
        self.median(p, config, |s| s.run.connections_per_s)
    }

    fn measured(&self, p: Placement, config: Config) -> bool {
        self.of(p, config).next().is_some()
    }

    /// The placements measured, isolated first.
    fn placements(&self) -> Vec<Placement> {
        let mut v: Vec<Placement> = self.samples.iter().map(|s| s.placement).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Median of `config`/(a) within each round, in placement `p`.
    pub fn paired_ratio(&self, p: Placement, config: Config) -> f64 {
        let rate = |config: Config, round: usize| {
            self.of(p, config)
                .find(|s| s.round == round)
                .map(|s| s.run.connections_per_s)
        };
        median(&round_ratios(
            self.rounds,
            |r| rate(config, r),
            |r| rate(Config::Capture, r),
        ))
    }

    /// Median conn/s of `config` over that of (a), in placement `p`.
    pub fn ratio(&self, p: Placement, config: Config) -> f64 {
        self.conn_rate(p, config) / self.conn_rate(p, Config::Capture).max(1e-9)
    }

    fn memory_of(&self, default_ring: bool) -> impl Iterator<Item = &MemorySample> {
        self.memory
            .iter()
            .filter(move |m| m.requested.is_none() == default_ring)
    }

    /// Median RSS after the load, default ring minus one-flow ring, MiB.
    pub fn ring_mib(&self) -> Option<f64> {
        let after = |default_ring| {
            let v: Vec<f64> = self
                .memory_of(default_ring)
                .map(|m| m.rss_after_kib as f64)
                .collect();
            (!v.is_empty()).then(|| median(&v))
        };
        Some((after(true)? - after(false)?) / 1024.0)
    }

    fn default_ring_flows(&self) -> Option<f64> {
        let v: Vec<f64> = self.memory_of(true).map(|m| m.stored as f64).collect();
        (!v.is_empty()).then(|| median(&v))
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

fn rate(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

fn placement_words(p: Placement) -> String {
    match p {
        Placement::Isolated => format!(
            "Isolated (wrk and nginx on CPU {WORKLOAD_CPU}, agent and follower on CPU {OBSERVER_CPU})"
        ),
        Placement::Shared => "Shared (every process on both CPUs)".into(),
    }
}

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# Hubble flow capture: following client, agent CPU, ring memory\n\n\
         Produced by `bench/hubble/run.sh` (`cilium-bench-hubble`).\n\n## Machine\n"
    );
    for (k, v) in &r.machine {
        let _ = writeln!(w, "- {k}: {v}");
    }
    let _ = writeln!(w, "\n## Method\n");
    for paragraph in &r.method {
        let _ = writeln!(w, "{paragraph}\n");
    }
    render_findings(w, r);
    render_summary(w, r);
    render_samples(w, r);
    render_memory(w, r);
    let _ = writeln!(w, "## Notes\n");
    for note in &r.notes {
        let _ = writeln!(w, "- {note}");
    }
    let _ = writeln!(w, "\nTotal run time: {:.0} s.", r.total.as_secs_f64());
    out
}

const FOLLOWERS: [Config; 2] = [Config::HubbleFollowing, Config::CiliumFollowing];

fn render_findings(w: &mut String, r: &Report) {
    let mut lines = Vec::new();
    for p in r.placements() {
        for config in FOLLOWERS {
            if !r.measured(p, config) {
                continue;
            }
            let ratio = r.ratio(p, config);
            let judged = if p == JUDGED {
                "target ≥ 0.9 (judged on this placement)"
            } else {
                "against the target ≥ 0.9 (not the judged placement)"
            };
            lines.push(format!(
                "{}: connection rate with {} vs without a client: **{ratio:.2}** ({} vs {} \
                 conn/s; per-round ratios' median {:.2}); {judged}: {}. The follower printed \
                 {} flows/s; the server told it of {} lost/s; {} stored flows/s it neither \
                 printed nor heard of.",
                placement_words(p),
                config.client(),
                rate(r.conn_rate(p, config)),
                rate(r.conn_rate(p, Config::Capture)),
                r.paired_ratio(p, config),
                verdict(ratio >= RATIO_TARGET),
                rate(r.median(p, config, Sample::follower_lines_per_s)),
                rate(r.median(p, config, Sample::follower_lost_per_s)),
                rate(r.median(p, config, Sample::follower_missing_per_s)),
            ));
        }
    }
    if r.placements().contains(&JUDGED) {
        lines.push(format!(
            "The target is judged on the isolated placement: it is about the datapath's cost \
             of capture with a follower. There the datapath (the BPF programs, in the softirqs \
             of wrk's and nginx's packets) has CPU {WORKLOAD_CPU} and the agent's and the \
             follower's user-space work has CPU {OBSERVER_CPU}, as on a node with spare cores \
             where `hubble observe` runs elsewhere (through hubble-relay). In the shared \
             placement the same 2 cores run everything, so the follower's and the agent's \
             CPU come out of wrk's and nginx's: that row measures the whole machine's cost."
        ));
    }
    for p in r.placements() {
        let cpu = |c: Config| r.median(p, c, Sample::agent_cpu_per_10k_flows);
        let mut cpu_line = format!(
            "Agent CPU per 10,000 flows/s, {}: **{:.1} %** of one core without an observer \
             ({} flows/s at {:.0} % CPU)",
            p.label(),
            cpu(Config::Capture),
            rate(r.median(p, Config::Capture, Sample::flows_per_s)),
            r.median(p, Config::Capture, |s| s.cpu_percent(s.agent_cpu)),
        );
        for config in FOLLOWERS {
            if r.measured(p, config) {
                cpu_line += &format!(
                    "; **{:.1} %** with {} ({} flows/s at {:.0} % CPU)",
                    cpu(config),
                    config.client(),
                    rate(r.median(p, config, Sample::flows_per_s)),
                    r.median(p, config, |s| s.cpu_percent(s.agent_cpu)),
                );
            }
        }
        lines.push(cpu_line + ".");
    }
    match (r.ring_mib(), r.default_ring_flows()) {
        (Some(mib), Some(flows)) => lines.push(format!(
            "Ring memory at capacity ({flows:.0} flows): **{mib:.2} MiB** (about {:.0} bytes \
             a flow); target < {RING_TARGET_MIB} MiB: {}.",
            mib * 1024.0 * 1024.0 / flows.max(1.0),
            verdict(mib < RING_TARGET_MIB),
        )),
        _ => lines.push("Ring memory: not measured.".into()),
    }
    let _ = writeln!(w, "## In short (medians of this run)\n");
    for line in lines {
        let _ = writeln!(w, "- {line}");
    }
    let _ = writeln!(w);
}

fn render_summary(w: &mut String, r: &Report) {
    let _ = writeln!(
        w,
        "## Connection rate and CPU (medians over {} rounds)\n\n\
         | placement | configuration | conn/s (min–max) | ratio to (a) | latency p50 / p99 µs | flows/s | flows per connection | cilium-agent CPU | agent CPU per 10k flows/s | follower CPU | follower lines/s | lost, reported to the follower/s | missing/s | machine busy | CPU 0 / CPU 1 busy | client TIME_WAIT |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        r.rounds
    );
    for p in r.placements() {
        let reference = r.conn_rate(p, Config::Capture);
        for config in Config::ALL.into_iter().filter(|c| r.measured(p, *c)) {
            let (min, max) = r.range(p, config, |s| s.run.connections_per_s);
            let following = config.follows();
            let opt = |v: f64| if following { rate(v) } else { "—".into() };
            let m = |f: &dyn Fn(&Sample) -> f64| r.median(p, config, f);
            let _ = writeln!(
                w,
                "| {} | {} | {} ({}–{}) | {:.2} | {:.0} / {:.0} | {} | {:.1} | {:.0} % | {:.1} % | {} | {} | {} | {} | {:.0} % | {:.0} % / {:.0} % | {:.0} |",
                p.label(),
                config.label(),
                rate(r.conn_rate(p, config)),
                rate(min),
                rate(max),
                r.conn_rate(p, config) / reference.max(1e-9),
                m(&|s| s.run.p50_us),
                m(&|s| s.run.p99_us),
                rate(m(&Sample::flows_per_s)),
                m(&Sample::flows_per_connection),
                m(&|s| s.cpu_percent(s.agent_cpu)),
                m(&Sample::agent_cpu_per_10k_flows),
                if following {
                    format!("{:.0} %", m(&|s| s.cpu_percent(s.follower_cpu)))
                } else {
                    "—".into()
                },
                opt(m(&Sample::follower_lines_per_s)),
                opt(m(&Sample::follower_lost_per_s)),
                opt(m(&Sample::follower_missing_per_s)),
                m(&|s| 100.0 * s.machine_busy),
                m(&|s| 100.0 * s.cpu_busy[0]),
                m(&|s| 100.0 * s.cpu_busy[1]),
                m(&|s| s.client_time_wait as f64),
            );
        }
    }
    let _ = writeln!(
        w,
        "\nCPU is % of one core (user + system from /proc/<pid>/stat) over the wrk run; \
         \"machine busy\" is the share of all CPUs not idle, whoever used them, and CPU 0 / \
         CPU 1 the same per CPU. \"missing\" are flows stored that the follower had neither \
         printed nor been told it lost when the window closed. \"client TIME_WAIT\" is the \
         client pod's sockets in TIME_WAIT after the run (its ephemeral ports: see Notes).\n"
    );
}

fn render_samples(w: &mut String, r: &Report) {
    let _ = writeln!(
        w,
        "## Every measurement\n\n\
         | round | placement | configuration | s | conn/s | failed | p99 µs | flows/s | agent CPU | per 10k flows/s | follower CPU | follower lines/s | lost/s | busy | CPU 0 / 1 | client TIME_WAIT |\n\
         |---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for s in &r.samples {
        let following = s.config.follows();
        let opt = |text: String| if following { text } else { "—".into() };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {:.1} | {} | {} | {:.0} | {} | {:.0} % | {:.1} % | {} | {} | {} | {:.0} % | {:.0} / {:.0} % | {} |",
            s.round + 1,
            s.placement.label(),
            s.config.label(),
            s.window.as_secs_f64(),
            rate(s.run.connections_per_s),
            s.run.bad,
            s.run.p99_us,
            rate(s.flows_per_s()),
            s.cpu_percent(s.agent_cpu),
            s.agent_cpu_per_10k_flows(),
            opt(format!("{:.0} %", s.cpu_percent(s.follower_cpu))),
            opt(rate(s.follower_lines_per_s())),
            opt(rate(s.follower_lost_per_s())),
            100.0 * s.machine_busy,
            100.0 * s.cpu_busy[0],
            100.0 * s.cpu_busy[1],
            s.client_time_wait,
        );
    }
    let _ = writeln!(w);
}

fn render_memory(w: &mut String, r: &Report) {
    let _ = writeln!(
        w,
        "## Ring memory (one agent per line)\n\n\
         | ring | capacity (hubble status) | flows stored after the load | flows processed | load conn/s | RSS before | RSS after | growth | VmHWM after |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mib = |kib: f64| format!("{:.1} MiB", kib / 1024.0);
    for m in &r.memory {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.requested.map_or("default".into(), |c| format!(
                "--hubble-event-buffer-capacity {c}"
            )),
            m.max_flows.map_or("—".into(), |c| c.to_string()),
            m.stored,
            m.processed,
            rate(m.connections_per_s),
            mib(m.rss_before_kib as f64),
            mib(m.rss_after_kib as f64),
            mib(m.growth_kib() as f64),
            mib(m.hwm_after_kib as f64),
        );
    }
    let _ = writeln!(w);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::ShortRun;

    fn sample(config: Config, round: usize, conn: f64) -> Sample {
        Sample {
            placement: Placement::Isolated,
            config,
            round,
            window: Duration::from_secs(2),
            run: ShortRun {
                connections_per_s: conn,
                requests: (conn * 2.0) as u64,
                bad: 0,
                p50_us: 100.0,
                p99_us: 900.0,
            },
            flows: 40_000,
            agent_cpu: 0.5,
            follower_cpu: if config.follows() { 0.4 } else { 0.0 },
            follower_lines: 30_000,
            follower_lost: 0,
            machine_busy: 0.9,
            cpu_busy: [0.9, 0.5],
            client_time_wait: 10,
        }
    }

    fn memory(requested: Option<usize>, after: u64) -> MemorySample {
        MemorySample {
            requested,
            max_flows: Some(requested.map_or(4095, |c| c as u64)),
            rss_before_kib: 20_000,
            rss_after_kib: after,
            hwm_after_kib: after,
            stored: requested.unwrap_or(4095),
            processed: 50_000,
            connections_per_s: 2000.0,
        }
    }

    #[test]
    fn ratios_cpu_per_flows_and_ring_memory() {
        let samples: Vec<Sample> = (0..3)
            .flat_map(|round| {
                [
                    sample(Config::Capture, round, 2000.0),
                    sample(Config::HubbleFollowing, round, 1900.0),
                ]
            })
            .collect();
        let report = Report {
            machine: vec![("kernel".into(), "6.x".into())],
            method: vec!["method".into()],
            rounds: 3,
            samples,
            memory: vec![memory(Some(1), 30_000), memory(None, 32_048)],
            notes: vec!["noisy".into()],
            total: Duration::from_secs(60),
        };
        let iso = Placement::Isolated;
        assert!((report.ratio(iso, Config::HubbleFollowing) - 0.95).abs() < 1e-9);
        assert!((report.paired_ratio(iso, Config::HubbleFollowing) - 0.95).abs() < 1e-9);
        assert!(!report.measured(iso, Config::CiliumFollowing));
        assert!(!report.measured(Placement::Shared, Config::Capture));
        // 25 % CPU at 20,000 flows/s: 12.5 % per 10k flows/s.
        assert!((report.samples[0].agent_cpu_per_10k_flows() - 12.5).abs() < 1e-9);
        assert_eq!(report.ring_mib(), Some(2.0));
        let page = render(&report);
        assert!(page.contains("**0.95**"), "{page}");
        assert!(page.contains("judged on this placement"), "{page}");
        assert!(page.contains("**2.00 MiB**"), "{page}");
        assert!(page.contains("**12.5 %**"), "{page}");
        assert!(!page.contains("missed"), "{page}");
        assert!(!page.contains(Config::CiliumFollowing.label()), "{page}");
    }
}

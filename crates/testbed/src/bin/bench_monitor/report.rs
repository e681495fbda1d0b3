//! The results page: machine, method, the accounting check, per
//! configuration medians (flood, events delivered and lost, the allowed
//! flow's throughput and its ratio to the flood without a client, CPU),
//! and every measurement's raw numbers.

use std::fmt::Write as _;
use std::time::Duration;

use testbed::bench::stats::{min_max, quantile, round_ratios};

use crate::client::Counts;
use crate::sample::{Config, Sample};

/// The moderate-rate check before the rounds: every event accounted for?
#[derive(Debug, Clone)]
pub struct Check {
    pub packets: u64,
    pub per_second: u64,
    pub datapath_drops: u64,
    pub client: Counts,
}

pub struct Report {
    pub machine: Vec<(String, String)>,
    pub method: Vec<String>,
    pub check: Check,
    pub rounds: usize,
    pub samples: Vec<Sample>,
    pub notes: Vec<String>,
    pub total: Duration,
}

impl Report {
    fn of(&self, config: Config) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |s| s.config == config)
    }

    fn median(&self, config: Config, value: impl Fn(&Sample) -> f64) -> f64 {
        let v: Vec<f64> = self.of(config).map(value).collect();
        quantile(&v, 0.5)
    }

    fn median_opt(&self, config: Config, value: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
        let v: Vec<f64> = self.of(config).filter_map(value).collect();
        (!v.is_empty()).then(|| quantile(&v, 0.5))
    }

    fn range(&self, config: Config, value: impl Fn(&Sample) -> f64) -> (f64, f64) {
        let v: Vec<f64> = self.of(config).map(value).collect();
        min_max(&v)
    }

    pub fn gbps(&self, config: Config) -> f64 {
        self.median(config, |s| s.gbps)
    }

    /// Median over rounds of `a`'s throughput over `b`'s in the same round.
    fn paired_ratio(&self, a: Config, b: Config) -> f64 {
        let gbps = |config: Config, round: usize| {
            self.samples
                .iter()
                .find(|s| s.config == config && s.round == round)
                .map(|s| s.gbps)
        };
        quantile(
            &round_ratios(self.rounds, |r| gbps(a, r), |r| gbps(b, r)),
            0.5,
        )
    }
}

fn rate(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

fn opt_rate(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), rate)
}

fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "—".into(), |s| format!("{:.1} %", 100.0 * s))
}

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# Monitor under a flood of drop events\n\nProduced by `bench/monitor/run.sh` \
         (`cilium-bench-monitor`).\n\n## Machine\n"
    );
    for (k, v) in &r.machine {
        let _ = writeln!(w, "- {k}: {v}");
    }
    let _ = writeln!(w, "\n## Method\n");
    for paragraph in &r.method {
        let _ = writeln!(w, "{paragraph}\n");
    }
    render_check(w, &r.check);
    render_findings(w, r);
    render_summary(w, r);
    render_samples(w, r);
    let _ = writeln!(w, "## Notes\n");
    for note in &r.notes {
        let _ = writeln!(w, "- {note}");
    }
    let _ = writeln!(w, "\nTotal run time: {:.0} s.", r.total.as_secs_f64());
    out
}

fn render_check(w: &mut String, c: &Check) {
    let _ = writeln!(
        w,
        "## Accounting check at a moderate rate\n\n\
         {} datagrams at {}/s from the attacker, one fast `cilium monitor -o json` client:\n\n\
         - datapath drops (`cilium_drop_count_total`): {}\n\
         - drop events received: {} ({:.1} %)\n\
         - policy-verdict events received: {}\n\
         - lost reported to the client: {} (in {} `lost` events)\n",
        c.packets,
        c.per_second,
        c.datapath_drops,
        c.client.drops,
        100.0 * c.client.drops as f64 / c.packets.max(1) as f64,
        c.client.verdicts,
        c.client.lost,
        c.client.lost_reports,
    );
}

/// The questions answered with this run's medians.
fn render_findings(w: &mut String, r: &Report) {
    let cpu = |config: Config| r.median(config, |s| s.cpu_percent(s.agent_cpu));
    let per_s = |config: Config, f: fn(&Counts) -> u64| {
        opt_rate(r.median_opt(config, |s| s.client_rate(f)))
    };
    let ratio = |config: Config| r.gbps(config) / r.gbps(Config::Flood).max(1e-9);
    let unaccounted = r.median_opt(Config::FastClient, Sample::unaccounted_share);
    let lines = [
        format!(
            "Flood: {} datagrams/s sent, {} dropped by policy/s, so about {} events/s into \
             the ring.",
            rate(r.median(Config::Flood, Sample::sent_per_s)),
            rate(r.median(Config::Flood, Sample::drops_per_s)),
            rate(r.median(Config::Flood, Sample::produced_per_s)),
        ),
        format!(
            "Allowed flow, ratio to (1) the flood without a client: **(2) fast client {:.2}**, \
             **(3) slow client {:.2}** (per-round medians {:.2} and {:.2}). The flood itself: \
             (1)/(0) = {:.2}.",
            ratio(Config::FastClient),
            ratio(Config::SlowClient),
            r.paired_ratio(Config::FastClient, Config::Flood),
            r.paired_ratio(Config::SlowClient, Config::Flood),
            r.gbps(Config::Flood) / r.gbps(Config::NoFlood).max(1e-9),
        ),
        format!(
            "Events delivered to the client: (2) {}/s, (3) {}/s. Lost and reported to the \
             client as `kind: lost`: (2) {}/s, (3) {}/s.",
            per_s(Config::FastClient, Counts::events),
            per_s(Config::SlowClient, Counts::events),
            per_s(Config::FastClient, |c| c.lost),
            per_s(Config::SlowClient, |c| c.lost),
        ),
        format!(
            "Produced but neither delivered to the fast client nor reported lost to it \
             (counted once the flood stopped and the client caught up): {} of the events.",
            percent(unaccounted),
        ),
        format!(
            "cilium-agent CPU, % of one core: (0) {:.0}, (1) {:.0} (no client connected), \
             (2) {:.0}, (3) {:.0}.",
            cpu(Config::NoFlood),
            cpu(Config::Flood),
            cpu(Config::FastClient),
            cpu(Config::SlowClient),
        ),
    ];
    let _ = writeln!(w, "## In short (medians of this run)\n");
    for line in lines {
        let _ = writeln!(w, "- {line}");
    }
    let _ = writeln!(w);
}

fn render_summary(w: &mut String, r: &Report) {
    let _ = writeln!(
        w,
        "## Flood and events (medians over {} rounds, per second)\n\n\
         | configuration | flood sent | datapath drops | events produced (2 per drop) | drop events delivered | events delivered (all kinds) | lost, reported to the client | agent's lost counter | neither delivered nor reported (share) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|",
        r.rounds
    );
    for config in Config::ALL {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            config.label(),
            rate(r.median(config, Sample::sent_per_s)),
            rate(r.median(config, Sample::drops_per_s)),
            rate(r.median(config, Sample::produced_per_s)),
            opt_rate(r.median_opt(config, |s| s.client_rate(|c| c.drops))),
            opt_rate(r.median_opt(config, |s| s.client_rate(Counts::events))),
            opt_rate(r.median_opt(config, |s| s.client_rate(|c| c.lost))),
            rate(r.median(config, |s| s.per_scrape_s(s.agent_lost))),
            percent(r.median_opt(config, Sample::unaccounted_share)),
        );
    }
    let _ = writeln!(
        w,
        "\n## Allowed flow and CPU (medians)\n\n\
         | configuration | iperf3 Gbit/s (min–max) | ratio to (1) | per-round ratio to (1) | ratio to (0) | cilium-agent | cilium monitor + the bench's reader | flood thread | machine busy (all CPUs) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let reference = r.gbps(Config::Flood);
    let idle = r.gbps(Config::NoFlood);
    for config in Config::ALL {
        let (min, max) = r.range(config, |s| s.gbps);
        let gbps = r.gbps(config);
        let _ = writeln!(
            w,
            "| {} | {:.1} ({:.1}–{:.1}) | {:.2} | {:.2} | {:.2} | {:.0} % | {} | {:.0} % | {:.0} % |",
            config.label(),
            gbps,
            min,
            max,
            gbps / reference.max(1e-9),
            r.paired_ratio(config, Config::Flood),
            gbps / idle.max(1e-9),
            r.median(config, |s| s.cpu_percent(s.agent_cpu)),
            if config.has_client() {
                format!(
                    "{:.0} % + {:.0} %",
                    r.median(config, |s| s.cpu_percent(s.client_cpu)),
                    r.median(config, |s| s.cpu_percent(s.reader_cpu))
                )
            } else {
                "—".into()
            },
            r.median(config, |s| s.cpu_percent(s.flood_cpu)),
            r.median(config, |s| 100.0 * s.machine_busy),
        );
    }
    let _ = writeln!(
        w,
        "\nCPU is % of one core (user + system from /proc) during the measurement; \
         \"machine busy\" is the share of all CPUs not idle, whoever used them.\n"
    );
}

fn render_samples(w: &mut String, r: &Report) {
    let _ = writeln!(
        w,
        "## Every measurement\n\n\
         | round | configuration | s | sent/s | send errors | drops/s | delivered/s | lost reported/s | agent lost/s | unaccounted | Gbit/s | agent CPU | client CPU | busy |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for s in &r.samples {
        let _ = writeln!(
            w,
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.0} % | {} | {:.0} % |",
            s.round + 1,
            s.config.label(),
            s.window.as_secs_f64(),
            rate(s.sent_per_s()),
            s.send_errors,
            rate(s.drops_per_s()),
            opt_rate(s.client_rate(Counts::events)),
            opt_rate(s.client_rate(|c| c.lost)),
            rate(s.per_scrape_s(s.agent_lost)),
            percent(s.unaccounted_share()),
            s.gbps,
            s.cpu_percent(s.agent_cpu),
            if s.client.is_some() {
                format!("{:.0} %", s.cpu_percent(s.client_cpu))
            } else {
                "—".into()
            },
            100.0 * s.machine_busy,
        );
    }
    let _ = writeln!(w);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Settled;

    fn sample(config: Config, round: usize, gbps: f64) -> Sample {
        Sample {
            config,
            round,
            window: Duration::from_secs(2),
            scrape_window: Duration::from_secs(2),
            sent: 200_000,
            send_errors: 0,
            datapath_drops: 200_000,
            agent_lost: 10_000,
            settled: (config == Config::FastClient).then_some(Settled {
                produced: 400_000,
                arrived: 120_000,
                reported_lost: 240_000,
            }),
            client: config.has_client().then_some(Counts {
                lines: 120_010,
                drops: 60_000,
                verdicts: 60_000,
                lost: 100_000,
                lost_reports: 10,
            }),
            gbps,
            agent_cpu: 1.0,
            client_cpu: 0.5,
            reader_cpu: 0.1,
            flood_cpu: 1.8,
            machine_busy: 0.9,
        }
    }

    #[test]
    fn unaccounted_is_what_neither_arrived_nor_was_reported() {
        let s = sample(Config::FastClient, 0, 10.0);
        // 400k events produced, 120k arrived + 240k reported lost.
        assert_eq!(s.settled.unwrap().unaccounted(), 40_000);
        assert_eq!(s.unaccounted_share(), Some(0.1));
        assert_eq!(sample(Config::Flood, 0, 10.0).unaccounted_share(), None);
        let more = Settled {
            produced: 10,
            arrived: 8,
            reported_lost: 4,
        };
        assert_eq!(more.unaccounted(), -2, "edge effects may overshoot");
    }

    #[test]
    fn page_has_every_configuration_and_paired_ratios() {
        let samples: Vec<Sample> = (0..3)
            .flat_map(|round| {
                Config::ALL.map(|c| sample(c, round, if c == Config::Flood { 10.0 } else { 5.0 }))
            })
            .collect();
        let report = Report {
            machine: vec![("kernel".into(), "6.x".into())],
            method: vec!["method".into()],
            check: Check {
                packets: 1000,
                per_second: 10_000,
                datapath_drops: 1000,
                client: Counts::default(),
            },
            rounds: 3,
            samples,
            notes: vec!["noisy".into()],
            total: Duration::from_secs(100),
        };
        assert_eq!(report.paired_ratio(Config::SlowClient, Config::Flood), 0.5);
        let page = render(&report);
        for config in Config::ALL {
            assert!(page.contains(config.label()), "{page}");
        }
        assert!(page.contains("| 0.50 |"), "{page}");
    }
}

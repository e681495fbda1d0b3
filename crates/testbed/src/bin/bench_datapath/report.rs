//! Turns the samples into the results page: medians per configuration,
//! ratios next to the targets, the per-round values, the control
//! plane's timings and the machine the numbers came from.

use std::fmt::Write;
use std::time::Duration;

use testbed::bench::stats::{advantage, median};
use testbed::bench::Machine;

use crate::import::ImportTiming;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    Ceiling,
    Cilium,
    Iptables,
}

impl Config {
    pub const ALL: [Config; 3] = [Config::Ceiling, Config::Cilium, Config::Iptables];
    /// Over IPv6 the bench compares (b) with the ceiling only.
    pub const IPV6: [Config; 2] = [Config::Ceiling, Config::Cilium];

    pub fn label(self) -> &'static str {
        match self {
            Config::Ceiling => "(a) routed veth, no BPF",
            Config::Cilium => "(b) cilium-rs",
            Config::Iptables => "(c) iptables 10k rules",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Latency,
    ConnRate,
    Throughput,
}

impl Metric {
    pub const ALL: [Metric; 3] = [Metric::Latency, Metric::ConnRate, Metric::Throughput];

    pub fn label(self) -> &'static str {
        match self {
            Metric::Latency => "sockperf RR",
            Metric::ConnRate => "connection loop",
            Metric::Throughput => "iperf3",
        }
    }

    /// The tool of the IPv6 measurement.
    pub fn label6(self) -> &'static str {
        match self {
            Metric::Latency => "TCP ping-pong",
            _ => self.label(),
        }
    }
}

/// Mean run time of one program over one measurement.
#[derive(Debug, Clone)]
pub struct ProgCost {
    pub program: String,
    pub metric: Metric,
    /// Measured over the pods' IPv6 addresses.
    pub ipv6: bool,
    pub ns_per_run: f64,
    pub runs: u64,
}

/// One configuration's values, one per round.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    pub p50_us: Vec<f64>,
    pub p99_us: Vec<f64>,
    pub conn_per_s: Vec<f64>,
    pub conn_failed: u64,
    pub gbps: Vec<f64>,
    /// The agent's CPU (% of one core) during each measurement, by metric.
    pub agent_cpu: [Vec<f64>; 3],
}

/// What the run set up, as the bench checked it.
#[derive(Debug, Default, Clone)]
pub struct Setup {
    pub endpoints: usize,
    pub identities: usize,
    pub server_policy_lines: usize,
    pub server_policy_entries: usize,
    pub iptables_rules: usize,
    pub registration_total: Duration,
    pub registration_first100_ms: f64,
    pub registration_last100_ms: f64,
    pub steady_import: Duration,
    pub import_rules: usize,
    pub import_targets: usize,
}

#[derive(Debug, Default, Clone)]
pub struct Results {
    pub samples: [Samples; 3],
    /// (a) and (b) over IPv6, by [`Config::index`].
    pub samples6: [Samples; 2],
    pub imports: Vec<ImportTiming>,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub setup: Setup,
    pub prog_costs: Vec<ProgCost>,
    pub rounds: usize,
    pub seconds: u64,
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// A row of the datapath table. `lower_is_better` flips the ratios so that
/// a ratio above 1 always means (b) does better.
fn row(
    out: &mut String,
    name: &str,
    [a, b, c]: [f64; 3],
    lower_is_better: bool,
    vs_iptables_target: Option<f64>,
) {
    let b_vs_a = advantage(b, a, lower_is_better);
    let b_vs_c = advantage(b, c, lower_is_better);
    let c_cell = match vs_iptables_target {
        Some(t) => format!("{b_vs_c:.2}× ({} ≥ {t}×)", verdict(b_vs_c >= t)),
        None => format!("{b_vs_c:.2}× (no target)"),
    };
    let _ = writeln!(
        out,
        "| {name} | {a:.2} | {b:.2} | {c:.2} | {b_vs_a:.3} ({} ≥ 0.95) | {c_cell} |",
        verdict(b_vs_a >= 0.95)
    );
}

/// `tools`: the versions of sockperf, iperf3 and iptables.
pub fn render(machine: &Machine, tools: &[String], r: &Results) -> String {
    let mut out = String::new();
    let med =
        |f: fn(&Samples) -> &Vec<f64>| -> [f64; 3] { [0, 1, 2].map(|i| median(f(&r.samples[i]))) };
    let _ = writeln!(out, "# Datapath benchmark — {}\n", machine.date);
    let _ = writeln!(
        out,
        "Machine: {} × {}, Linux {}; load average at start: {}.  ",
        machine.cpus,
        machine.cpu_model,
        machine.kernel,
        machine.load_1_5_15()
    );
    let _ = writeln!(out, "Tools: {}.  ", tools.join("; "));
    let _ = writeln!(
        out,
        "Run: {} rounds, configurations interleaved within each round (order rotated per round), {} s per measurement; medians over rounds.\n",
        r.rounds, r.seconds
    );

    let _ = writeln!(out, "## Datapath: client pod → server pod on this node\n");
    let _ = writeln!(
        out,
        "| metric | {} | {} | {} | (b) vs (a), target | (b) vs (c), target |",
        Config::Ceiling.label(),
        Config::Cilium.label(),
        Config::Iptables.label()
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---|---|");
    row(
        &mut out,
        "TCP RR latency p50 (µs, RTT)",
        med(|s| &s.p50_us),
        true,
        Some(2.0),
    );
    row(
        &mut out,
        "TCP RR latency p99 (µs, RTT)",
        med(|s| &s.p99_us),
        true,
        Some(2.0),
    );
    row(
        &mut out,
        "new TCP connections/s",
        med(|s| &s.conn_per_s),
        false,
        Some(2.0),
    );
    row(
        &mut out,
        "iperf3 1 stream (Gbit/s)",
        med(|s| &s.gbps),
        false,
        None,
    );
    let _ = writeln!(
        out,
        "\nRatios are (b)'s performance relative to the other: rate/rate, or latency(other)/latency(b); above 1 means (b) is better. Failed connections in the rate loop: {}.\n",
        Config::ALL
            .iter()
            .map(|c| format!("{} {}", short(*c), r.samples[c.index()].conn_failed))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let _ = writeln!(out, "Per round (a / b / c):\n");
    let columns: Vec<&Samples> = Config::ALL.iter().map(|c| &r.samples[c.index()]).collect();
    render_rounds(&mut out, r.rounds, &columns);

    render_ipv6(&mut out, r);
    render_costs(&mut out, r);
    render_control_plane(&mut out, r);
    out
}

/// (a) and (b) over IPv6 next to the same ratios over IPv4 from the same
/// rounds.
fn render_ipv6(out: &mut String, r: &Results) {
    let _ = writeln!(
        out,
        "\n## Datapath over IPv6: the same pods, their IPv6 addresses\n"
    );
    let _ = writeln!(
        out,
        "(a) over IPv6 is a second pair of plain pods plumbed like (a) (`/128`, static neighbours, host `/128` routes, `net.ipv6.conf.all.forwarding=1`); (b) is the same dual-stack cilium-rs client and server, under the same policy. Measured in the same rounds, right after each round's IPv4 measurements, (a) and (b) interleaved and rotated. Latency over IPv6 is the bench's own TCP ping-pong (64 B, `TCP_NODELAY`, one connection, each round trip timed), because sockperf 3.7 (Debian 12) takes no IPv6 address; so compare ratios, not absolute latencies, with the IPv4 table.\n"
    );
    let _ = writeln!(
        out,
        "| metric | (a) IPv6 | (b) IPv6 | (b) vs (a) IPv6, target | (b) vs (a) IPv4, same run |"
    );
    let _ = writeln!(out, "|---|---:|---:|---|---:|");
    type Field = fn(&Samples) -> &Vec<f64>;
    let rows: [(&str, Field, bool); 4] = [
        ("TCP RR latency p50 (µs, RTT)", |s| &s.p50_us, true),
        ("TCP RR latency p99 (µs, RTT)", |s| &s.p99_us, true),
        ("new TCP connections/s", |s| &s.conn_per_s, false),
        ("iperf3 1 stream (Gbit/s)", |s| &s.gbps, false),
    ];
    for (name, field, lower_is_better) in rows {
        let [a6, b6] = [0, 1].map(|i| median(field(&r.samples6[i])));
        let [a4, b4] = [0, 1].map(|i| median(field(&r.samples[i])));
        let ratio6 = advantage(b6, a6, lower_is_better);
        let ratio4 = advantage(b4, a4, lower_is_better);
        let _ = writeln!(
            out,
            "| {name} | {a6:.2} | {b6:.2} | {ratio6:.3} ({} ≥ 0.95) | {ratio4:.3} |",
            verdict(ratio6 >= 0.95)
        );
    }
    let _ = writeln!(
        out,
        "\nFailed connections in the IPv6 rate loop: (a) {}, (b) {}.\n",
        r.samples6[0].conn_failed, r.samples6[1].conn_failed
    );
    let _ = writeln!(out, "Per round over IPv6 (a / b):\n");
    let columns: Vec<&Samples> = r.samples6.iter().collect();
    render_rounds(out, r.rounds, &columns);
}

/// The per-round table: each cell holds that round's value of every
/// configuration in `columns`, " / " between them ("-" where one is missing).
fn render_rounds(out: &mut String, rounds: usize, columns: &[&Samples]) {
    let _ = writeln!(out, "| round | p50 µs | p99 µs | conn/s | Gbit/s |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for round in 0..rounds {
        let cell = |f: fn(&Samples) -> &Vec<f64>, digits: usize| {
            columns
                .iter()
                .map(|s| {
                    f(s).get(round)
                        .map_or("-".to_string(), |v| format!("{v:.digits$}"))
                })
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            round + 1,
            cell(|s| &s.p50_us, 1),
            cell(|s| &s.p99_us, 1),
            cell(|s| &s.conn_per_s, 0),
            cell(|s| &s.gbps, 2)
        );
    }
}

fn render_costs(out: &mut String, r: &Results) {
    let _ = writeln!(out, "\n## Where (b)'s time goes\n");
    let _ = writeln!(
        out,
        "The agent's CPU while each measurement ran, % of one core (median over rounds; the agent serves (b) only, so (a) and (c) show its idle cost):\n"
    );
    let _ = writeln!(out, "| measurement | (a) | (b) | (c) |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (i, metric) in Metric::ALL.iter().enumerate() {
        let cells: Vec<String> = Config::ALL
            .iter()
            .map(|c| format!("{:.1}", median(&r.samples[c.index()].agent_cpu[i])))
            .collect();
        let _ = writeln!(out, "| {} | {} |", metric.label(), cells.join(" | "));
    }
    if r.prog_costs.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nMean run time of (b)'s endpoint programs (kernel BPF statistics, `kernel.bpf_stats_enabled=1` in a separate pass after the rounds; each packet of the flow runs one program on each side's veth):\n"
    );
    let _ = writeln!(out, "| program | measurement | ns per run | runs |");
    let _ = writeln!(out, "|---|---|---:|---:|");
    for c in &r.prog_costs {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} |",
            c.program,
            if c.ipv6 {
                format!("{} over IPv6", c.metric.label6())
            } else {
                c.metric.label().to_string()
            },
            c.ns_per_run,
            c.runs
        );
    }
}

fn short(c: Config) -> &'static str {
    match c {
        Config::Ceiling => "(a)",
        Config::Cilium => "(b)",
        Config::Iptables => "(c)",
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn render_control_plane(out: &mut String, r: &Results) {
    let s = &r.setup;
    let _ = writeln!(out, "\n## Control plane\n");
    let _ = writeln!(out, "| metric | value | target |");
    let _ = writeln!(out, "|---|---:|---|");
    let enforced: Vec<f64> = r.imports.iter().map(|t| ms(t.enforced)).collect();
    let enforced_med = median(&enforced);
    let _ = writeln!(
        out,
        "| `policy import` of {} rules → enforced on {} endpoints (median of {}) | {enforced_med:.0} ms | < 200 ms: {} |",
        s.import_rules,
        s.import_targets,
        r.imports.len(),
        verdict(enforced_med < 200.0)
    );
    let rss_mib = r.rss_kib as f64 / 1024.0;
    let _ = writeln!(
        out,
        "| agent VmRSS, {} endpoints / {} identities, all rules loaded | {rss_mib:.1} MiB (peak VmHWM {:.1} MiB) | < 64 MiB: {} |",
        s.endpoints,
        s.identities,
        r.hwm_kib as f64 / 1024.0,
        verdict(rss_mib < 64.0)
    );
    let _ = writeln!(
        out,
        "\nImport milestones, ms from the CLI's start (per repetition):\n"
    );
    let _ = writeln!(
        out,
        "| # | CLI returned | all targets at new revision | probe allowed (enforced) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (i, t) in r.imports.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {:.0} |",
            i + 1,
            ms(t.cli_returned),
            ms(t.revisions),
            ms(t.enforced)
        );
    }
    let _ = writeln!(out, "\nSetup, as checked by the bench:\n");
    let _ = writeln!(
        out,
        "- endpoints {}, identities {} (`GET /v1/identity`); the server's policy map holds {} entries (`cilium bpf policy get <server> -o json`; the table prints {} lines); rules in the iptables chain {}",
        s.endpoints, s.identities, s.server_policy_entries, s.server_policy_lines, s.iptables_rules
    );
    let _ = writeln!(
        out,
        "- registering the fillers (`PUT /v1/endpoint`, one at a time): {:.1} s in total; mean {:.0} ms each for the first 100, {:.0} ms for the last 100",
        s.registration_total.as_secs_f64(),
        s.registration_first100_ms,
        s.registration_last100_ms
    );
    let _ = writeln!(
        out,
        "- importing the steady-state rules (10,000-entry server map) after the fillers: {:.0} ms",
        ms(s.steady_import)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_favour_b_above_one() {
        let mut out = String::new();
        row(&mut out, "lat", [10.0, 10.0, 30.0], true, Some(2.0));
        assert!(out.contains("1.000 (met"), "{out}");
        assert!(out.contains("3.00× (met"), "{out}");
        out.clear();
        row(&mut out, "rate", [100.0, 90.0, 50.0], false, Some(2.0));
        assert!(out.contains("0.900 (**missed**"), "{out}");
        assert!(out.contains("1.80× (**missed**"), "{out}");
    }
}

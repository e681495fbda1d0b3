//! The results page: the targets first, then each workload's table (medians
//! over rounds), the name → allowed percentiles, and every measurement.

use std::fmt::Write;
use std::time::Duration;

use testbed::bench::stats::{median, min_max, nearest_rank, round_ratios};

use crate::dnsperf::Run;
use crate::probe::Probe;
use crate::{Args, Outcome, MAX_DELAY_US};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Direct,
    Proxy,
}

impl Setup {
    pub const ALL: [Setup; 2] = [Setup::Direct, Setup::Proxy];

    pub fn label(self) -> &'static str {
        match self {
            Setup::Direct => "(a) direct, L3/L4 only",
            Setup::Proxy => "(b) through the DNS proxy",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Names the agent learned before the runs.
    Steady,
    /// Every query a name the agent has not seen.
    Fresh,
    /// AAAA queries for the learned names: answers without addresses,
    /// which the proxy forwards without waiting for the agent.
    NoAddress,
}

impl Workload {
    pub const ALL: [Workload; 3] = [Workload::Steady, Workload::Fresh, Workload::NoAddress];

    pub fn title(self) -> &'static str {
        match self {
            Workload::Steady => "steady state, names already learned",
            Workload::Fresh => "new names, each asked for the first time",
            Workload::NoAddress => "answers without addresses (AAAA), nothing for the agent",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Workload::Steady => "steady",
            Workload::Fresh => "new names",
            Workload::NoAddress => "AAAA",
        }
    }
}

pub struct Sample {
    pub setup: Setup,
    pub workload: Workload,
    pub round: usize,
    pub run: Run,
    /// CPU seconds of the tracked processes, then the client (dnsperf).
    pub cpu_seconds: Vec<f64>,
}

pub struct Report<'a> {
    pub facts: Vec<(String, String)>,
    pub args: &'a Args,
    pub autogroup_off: bool,
    pub outcome: Outcome,
    pub total: Duration,
}

/// One workload's samples of one setup.
struct Series<'a> {
    samples: Vec<&'a Sample>,
}

impl<'a> Series<'a> {
    fn of(outcome: &'a Outcome, workload: Workload, setup: Setup) -> Series<'a> {
        Series {
            samples: outcome
                .samples
                .iter()
                .filter(|s| s.workload == workload && s.setup == setup)
                .collect(),
        }
    }

    fn values(&self, f: impl Fn(&Sample) -> f64) -> Vec<f64> {
        self.samples.iter().map(|s| f(s)).collect()
    }

    fn rate(&self) -> f64 {
        median(&self.values(|s| s.run.per_second))
    }

    fn in_round(&self, round: usize) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.round == round)
            .map(|s| s.run.per_second)
    }
}

pub fn render(r: &Report) -> String {
    let mut page = String::new();
    let o = &r.outcome;
    let _ = writeln!(
        page,
        "# DNS-aware policy: DNS through the proxy vs direct\n\n\
         Produced by `bench/fqdn/run.sh` (`cilium-bench-fqdn`) in {:.0} s.\n\n## Machine\n",
        r.total.as_secs_f64()
    );
    for (fact, value) in &r.facts {
        let _ = writeln!(page, "- {fact}: {value}");
    }
    method(&mut page, r);
    page.push_str("\n## Checks before measuring\n\n");
    for check in &o.checks {
        let _ = writeln!(page, "- {check}");
    }
    targets(&mut page, r);
    for workload in Workload::ALL {
        workload_tables(&mut page, r, workload);
    }
    name_to_allowed(&mut page, &o.probes);
    every_measurement(&mut page, o);
    page
}

fn method(page: &mut String, r: &Report) {
    let a = r.args;
    let s = a.shape;
    let _ = write!(
        page,
        "\n## Method\n\n\
         A one-node testbed cluster (cilium-agent with its cilium-proxy), one client pod, and a \
         host outside the cluster (a network namespace on the underlay, `world` to the agent) \
         running one dnsmasq, authoritative for every name of the bench (`addn-hosts`, \
         `local=/test/`, TTL 3600 s, no query log). Each name has an address of its own in \
         198.18.0.0/15; the outside host answers TCP on all of them. dnsmasq listens on two \
         addresses, and the client's egress policy treats them differently, so both setups run \
         against the same server process without a policy change between measurements:\n\n\
         - **(a) direct**: `toCIDR: [198.19.255.2/32]`, port 53 (ANY), no L7 rules: queries \
         go straight to dnsmasq, allowed by the datapath alone (the redirect is per peer; the \
         check below makes sure (a) bypasses the proxy).\n\
         - **(b) proxy**: `toCIDR: [198.19.255.1/32]`, port 53 (ANY), `rules.dns: [{{matchPattern: \
         \"*\"}}]`: every query goes through the DNS proxy, which allows it and forwards it. \
         `toFQDNs` patterns cover every bench name (port {port}/TCP), so every answer carrying \
         addresses is held by the proxy until the agent has put them in the pod's policy map and \
         the ipcache (or until `--tofqdns-proxy-response-max-delay`, 1 s, passes).\n\n\
         Workloads, each with dnsperf in the pod (`-c {c} -q {q}`: {q} queries in flight, \
         closed loop, `-t 5`, `-v` for every query's latency; p50/p99 are over all answers of a \
         run, tables show medians over rounds; \"answers ≥ 1 s\" counts answers that took at \
         least the proxy's max delay, which were most likely released without the agent's \
         go-ahead, before the datapath allowed their addresses):\n\n\
         - **steady state**: {names} names learned through the proxy before the rounds (checked \
         in the agent's FQDN cache), asked again and again for {sec} s. For (b) each answer \
         still goes to the agent, which finds nothing new.\n\
         - **new names**: each round has {fresh} names of its own; (b) asks each once (`-n 1`, at \
         most {sec} s), so every answer is a name and an address the agent has never seen: a new \
         identity, a policy map entry, an ipcache entry and the FQDN cache saved. (a) asks the \
         same names (again and again for {sec} s; dnsmasq does the same work for a name the \
         second time). After (b)'s run the bench forgets the round's names (`cilium fqdn cache \
         clean -p \"*.fresh.test\"`), so every round starts from the same cache.\n\
         - **AAAA** (a diagnostic, no target): the steady names asked for AAAA records, which \
         they do not have: dnsmasq answers NOERROR without records, and the proxy forwards an \
         answer without addresses at once, telling the agent nothing. (b) here is the proxy's \
         own path (policy check, forwarding, access-log events) without the hold.\n\n\
         {rounds} rounds; each round runs both setups of a workload back to back, the order \
         rotating from round to round. CPU: user+system time from /proc of cilium-proxy, \
         cilium-agent and dnsmasq during each run, and dnsperf's from \
         `getrusage(RUSAGE_CHILDREN)`; shown as % of one core and µs per answered query.\n\n\
         **Name → allowed** ({probes} names new to the agent, after the rounds): from a thread \
         in the pod, the bench's own stub resolver (one UDP socket, one query at a time) asks \
         the direct server and then the proxied one for the same new name (the order \
         alternating), timing each round trip; right after the proxy's answer it opens one TCP \
         connection to the name's address (1 s limit, no retry). Since the proxy releases the \
         answer only once the datapath allows the address, **(b) − (a)** for a new name is the \
         time the proxy added, which holds the agent's whole update; the time from the answer \
         leaving dnsmasq to the address being allowed is within it (it also holds the proxy's \
         own forwarding, so it over-states; it leaves out the answer's last hop, a few µs to the \
         pod's namespace on the same node). The same pair for a learned name gives the proxy's \
         cost without learning; (b) alone bounds everything from the query leaving the pod.\n",
        port = crate::names::TCP_PORT,
        c = s.clients,
        q = s.outstanding,
        sec = s.seconds,
        names = a.plan.steady,
        fresh = a.plan.fresh_per_round,
        rounds = a.rounds,
        probes = a.plan.probes,
    );
    if r.autogroup_off {
        page.push_str(
            "\n`kernel.sched_autogroup_enabled` was 0 during the run (restored after): \
             cilium-proxy runs in a session of its own, so autogroup scheduling would make \
             only (b) cross between scheduling groups.\n",
        );
    }
}

/// Two decimals, three below 0.1 (so that a small ratio is not 0.00).
fn ratio_text(r: f64) -> String {
    if r < 0.1 {
        format!("{r:.3}")
    } else {
        format!("{r:.2}")
    }
}

fn verdict(met: bool) -> &'static str {
    if met {
        "**met**"
    } else {
        "**not met**"
    }
}

fn targets(page: &mut String, r: &Report) {
    let o = &r.outcome;
    page.push_str("\n## Targets (issue 17)\n\n");
    for workload in Workload::ALL {
        let (a, b) = (
            Series::of(o, workload, Setup::Direct),
            Series::of(o, workload, Setup::Proxy),
        );
        let ratio = ratio_text(b.rate() / a.rate());
        let per_round = ratio_text(median(&round_ratios(
            r.args.rounds,
            |i| b.in_round(i),
            |i| a.in_round(i),
        )));
        let held_long: usize = b.samples.iter().map(|x| x.run.at_least(MAX_DELAY_US)).sum();
        match workload {
            Workload::Steady => {
                let _ = writeln!(
                    page,
                    "- Steady state: (b)/(a) ≥ 0.7: {:.0} / {:.0} queries/s = **{ratio}** \
                     (per-round median {per_round}) — {}; {held_long} of (b)'s {} answers took \
                     ≥ 1 s",
                    b.rate(),
                    a.rate(),
                    verdict(b.rate() >= 0.7 * a.rate()),
                    b.samples.iter().map(|x| x.run.completed).sum::<u64>(),
                );
                let _ = writeln!(
                    page,
                    "- Steady state: (b) ≥ 20,000 queries/s: **{:.0}** — {}",
                    b.rate(),
                    verdict(b.rate() >= 20_000.0)
                );
            }
            Workload::Fresh => {
                let _ = writeln!(
                    page,
                    "- New names (no target): (b)/(a) {:.0} / {:.0} queries/s = **{ratio}** \
                     (per-round median {per_round}); {held_long} of (b)'s {} answers took ≥ 1 s, \
                     most likely released by the max delay before the agent's go-ahead",
                    b.rate(),
                    a.rate(),
                    b.samples.iter().map(|x| x.run.completed).sum::<u64>(),
                );
            }
            Workload::NoAddress => {
                let _ = writeln!(
                    page,
                    "- The proxy without the agent's hold (no target; AAAA, answers without \
                     addresses): (b)/(a) {:.0} / {:.0} queries/s = **{ratio}** (per-round \
                     median {per_round})",
                    b.rate(),
                    a.rate(),
                );
            }
        }
    }
    let added: Vec<f64> = o.probes.iter().map(Probe::added_new).collect();
    let whole: Vec<f64> = o.probes.iter().map(|p| p.proxy_new).collect();
    let failed = o.probes.iter().filter(|p| p.connect.is_none()).count();
    let p99 = nearest_rank(&added, 0.99);
    let _ = writeln!(
        page,
        "- Name → allowed p99 < 5 ms: (b) − (a) for {} new names: p50 {}, **p99 {}** — {}; \
         the whole (b) round trip, an upper bound: p99 {}. First connections right after the \
         answer: {} of {} failed.",
        o.probes.len(),
        us(nearest_rank(&added, 0.5)),
        us(p99),
        verdict(p99 < 5_000.0),
        us(nearest_rank(&whole, 0.99)),
        failed,
        o.probes.len()
    );
}

fn us(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v.abs() >= 10_000.0 {
        format!("{:.1} ms", v / 1e3)
    } else {
        format!("{v:.0} µs")
    }
}

fn workload_tables(page: &mut String, r: &Report, workload: Workload) {
    let o = &r.outcome;
    let _ = writeln!(
        page,
        "\n## {}{}\n\n\
         | setup | queries/s (median, min–max) | p50 | p99 | lost | answers ≥ 1 s |\n\
         |---|---:|---:|---:|---:|---:|",
        workload.title()[..1].to_uppercase(),
        &workload.title()[1..]
    );
    for setup in Setup::ALL {
        let s = Series::of(o, workload, setup);
        let rates = s.values(|x| x.run.per_second);
        let (lo, hi) = min_max(&rates);
        let _ = writeln!(
            page,
            "| {} | {:.0} ({lo:.0}–{hi:.0}) | {} | {} | {} | {} |",
            setup.label(),
            median(&rates),
            us(median(&s.values(|x| x.run.p50_us()))),
            us(median(&s.values(|x| x.run.p99_us()))),
            s.samples.iter().map(|x| x.run.lost).sum::<u64>(),
            s.samples
                .iter()
                .map(|x| x.run.at_least(MAX_DELAY_US))
                .sum::<usize>(),
        );
    }
    let _ = write!(
        page,
        "\nCPU during the runs, % of one core (µs per answered query), medians:\n\n| setup |"
    );
    let mut names: Vec<&str> = o.tracked.clone();
    names.push("dnsperf");
    for name in &names {
        let _ = write!(page, " {name} |");
    }
    let _ = write!(page, "\n|---|{}\n", "---:|".repeat(names.len()));
    for setup in Setup::ALL {
        let s = Series::of(o, workload, setup);
        let _ = write!(page, "| {} |", setup.label());
        for i in 0..names.len() {
            let percent = median(&s.values(|x| 100.0 * x.cpu_seconds[i] / x.run.run_seconds));
            let per_query =
                median(&s.values(|x| 1e6 * x.cpu_seconds[i] / (x.run.completed.max(1) as f64)));
            let _ = write!(page, " {percent:.0} % ({per_query:.1}) |");
        }
        page.push('\n');
    }
}

fn name_to_allowed(page: &mut String, probes: &[Probe]) {
    let _ = writeln!(
        page,
        "\n## Name → allowed ({} names new to the agent)\n\n\
         | µs | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|",
        probes.len()
    );
    let rows: [(&str, Vec<f64>); 7] = [
        (
            "**(b) − (a), new name** (the proxy's hold + forwarding)",
            probes.iter().map(Probe::added_new).collect(),
        ),
        (
            "(b) − (a), learned name (forwarding only)",
            probes.iter().map(Probe::added_known).collect(),
        ),
        (
            "(b) round trip, new name",
            probes.iter().map(|p| p.proxy_new).collect(),
        ),
        (
            "(a) round trip, new name",
            probes.iter().map(|p| p.direct_new).collect(),
        ),
        (
            "(b) round trip, learned name",
            probes.iter().map(|p| p.proxy_known).collect(),
        ),
        (
            "(a) round trip, learned name",
            probes.iter().map(|p| p.direct_known).collect(),
        ),
        (
            "first TCP handshake right after (b)'s answer",
            probes.iter().filter_map(|p| p.connect).collect(),
        ),
    ];
    for (what, values) in rows {
        let (_, max) = min_max(&values);
        let _ = writeln!(
            page,
            "| {what} | {} | {} | {} | {} |",
            us(nearest_rank(&values, 0.5)),
            us(nearest_rank(&values, 0.9)),
            us(nearest_rank(&values, 0.99)),
            us(max)
        );
    }
    let failed = probes.iter().filter(|p| p.connect.is_none()).count();
    let _ = writeln!(
        page,
        "\nFirst connections: {} of {} completed their handshake on the first attempt.",
        probes.len() - failed,
        probes.len()
    );
}

fn every_measurement(page: &mut String, o: &Outcome) {
    page.push_str(
        "\n## Every measurement\n\n\
         | round | workload | setup | queries/s | p50 | p99 | sent | lost | NOERROR | run time |\n\
         |---:|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in &o.samples {
        let _ = writeln!(
            page,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.2} s |",
            s.round + 1,
            s.workload.short(),
            s.setup.label(),
            s.run.per_second,
            us(s.run.p50_us()),
            us(s.run.p99_us()),
            s.run.sent,
            s.run.lost,
            s.run.noerror,
            s.run.run_seconds
        );
    }
}

//! The results page: machine, method, per-setup medians for each protocol,
//! the targets with their ratios, where the CPU went, and every
//! round's raw numbers.

use std::fmt::Write as _;
use std::time::Duration;

use testbed::bench::stats::{min_max, nearest_rank, round_ratios};

use crate::load::{LoadResult, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Client → origin, L3/L4 policy only.
    Direct,
    /// Client → origin on the port with the L7 rule: through cilium-proxy.
    Proxy,
    /// Client → nginx reverse proxy pod → origin, L3/L4 policy only.
    Nginx,
}

impl Setup {
    pub const ALL: [Setup; 3] = [Setup::Direct, Setup::Proxy, Setup::Nginx];

    pub fn label(self) -> &'static str {
        match self {
            Setup::Direct => "(a) direct, L3/L4 policy",
            Setup::Proxy => "(b) cilium-proxy, L7 allow rule",
            Setup::Nginx => "(c) nginx reverse proxy, L3/L4 policy",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    pub fn title(self) -> &'static str {
        match self {
            Protocol::Http1 => "HTTP/1.1 (wrk)",
            Protocol::Http2 => "HTTP/2 cleartext (h2load)",
        }
    }
}

/// One measurement: the load generator's numbers and the CPU seconds each
/// tracked process used meanwhile.
#[derive(Debug, Clone)]
pub struct Sample {
    pub setup: Setup,
    pub round: usize,
    pub load: LoadResult,
    pub wall: Duration,
    /// Same order as [`Report::tracked`].
    pub cpu_seconds: Vec<f64>,
}

#[derive(Debug)]
pub struct Series {
    pub protocol: Protocol,
    pub shape: Shape,
    pub rounds: usize,
    pub samples: Vec<Sample>,
}

impl Series {
    fn of(&self, setup: Setup) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(move |s| s.setup == setup)
    }

    fn median(&self, setup: Setup, value: impl Fn(&Sample) -> f64) -> f64 {
        let v: Vec<f64> = self.of(setup).map(value).collect();
        nearest_rank(&v, 0.5)
    }

    pub fn rate(&self, setup: Setup) -> f64 {
        self.median(setup, |s| s.load.requests_per_second)
    }

    fn p50(&self, setup: Setup) -> f64 {
        self.median(setup, |s| s.load.p50_us)
    }

    fn p99(&self, setup: Setup) -> f64 {
        self.median(setup, |s| s.load.p99_us)
    }

    fn rate_range(&self, setup: Setup) -> (f64, f64) {
        let rates: Vec<f64> = self.of(setup).map(|s| s.load.requests_per_second).collect();
        min_max(&rates)
    }

    fn bad(&self, setup: Setup) -> u64 {
        self.of(setup).map(|s| s.load.bad).sum()
    }

    /// Median over rounds of `a`'s rate over `b`'s in the same round: load
    /// from other work on the machine drifts less within a round.
    fn paired_ratio(&self, a: Setup, b: Setup) -> f64 {
        let rate = |setup: Setup, round: usize| {
            self.samples
                .iter()
                .find(|s| s.setup == setup && s.round == round)
                .map(|s| s.load.requests_per_second)
        };
        nearest_rank(
            &round_ratios(self.rounds, |r| rate(a, r), |r| rate(b, r)),
            0.5,
        )
    }

    /// Median share of one core that tracked process `index` used.
    fn cpu_percent(&self, setup: Setup, index: usize) -> f64 {
        self.median(setup, |s| {
            100.0 * s.cpu_seconds[index] / s.wall.as_secs_f64().max(1e-9)
        })
    }

    /// Median CPU microseconds tracked process `index` spent per request.
    fn cpu_us_per_request(&self, setup: Setup, index: usize) -> f64 {
        self.median(setup, |s| {
            1e6 * s.cpu_seconds[index] / (s.load.requests.max(1) as f64)
        })
    }
}

pub struct Report {
    pub machine: Vec<(String, String)>,
    pub tracked: Vec<&'static str>,
    pub http1: Series,
    pub http2: Option<Series>,
    /// What was verified before measuring (the proxy is in the path...).
    pub checks: Vec<String>,
    pub notes: Vec<String>,
    pub total: Duration,
}

pub fn render(r: &Report) -> String {
    let mut s = String::from(
        "# L7 policy: direct vs cilium-proxy vs nginx as a reverse proxy\n\n\
         Produced by `bench/l7/run.sh` (`cilium-bench-l7`).\n\n## Machine\n\n",
    );
    for (k, v) in &r.machine {
        let _ = writeln!(s, "- {k}: {v}");
    }
    s.push_str(&method(r));
    s.push_str("\n## Checks before measuring\n\n");
    for c in &r.checks {
        let _ = writeln!(s, "- {c}");
    }
    s.push_str("\n## Targets (issue 6)\n\n");
    s.push_str(&targets(&r.http1));
    if let Some(h2) = &r.http2 {
        s.push_str(&targets(h2));
    }
    for series in std::iter::once(&r.http1).chain(&r.http2) {
        s.push_str(&series_tables(series, &r.tracked));
    }
    if !r.notes.is_empty() {
        s.push_str("\n## Notes\n\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    let _ = writeln!(s, "\nTotal run time: {:.0} s.", r.total.as_secs_f64());
    s
}

fn method(r: &Report) -> String {
    let h1 = &r.http1.shape;
    let mut s = format!(
        "\n## Method\n\n\
         One cilium-agent and three pods on this node: `origin` (nginx answering every \
         request with a fixed 22-byte `200`), `client` (the load generator) and `rproxy` (a \
         second nginx, a plain reverse proxy). Each setup has its own port, so no policy \
         changes between measurements:\n\n\
         - **{}**: client → origin:8080 (HTTP/1.1) / :8082 (h2c); the origin's ingress policy \
         allows the client on these ports, no L7 rule.\n\
         - **{}**: client → origin:80 (HTTP/1.1) / :81 (h2c), where the policy adds \
         `rules: {{http: [{{method: GET, path: \"/.*\"}}]}}`. The datapath hands these \
         connections to cilium-proxy (`bpf_sk_assign`), which judges every request and forwards \
         it over its own connection to the origin.\n\
         - **{}**: client → rproxy:8081 (HTTP/1.1) / :8083 (h2c); nginx `proxy_pass`es over \
         keep-alive HTTP/1.1 connections (`keepalive {}` idle per worker, more than the \
         client's concurrency) to origin:8080. The reverse proxy \
         runs in a third pod (not the node's namespace) so that both of its hops go through the \
         datapath with an L3/L4 policy, like the client's hop in (a).\n\n\
         Both nginx instances run `worker_processes` = number of CPUs, as cilium-proxy runs one \
         tokio worker per CPU. HTTP/1.1: `wrk -t{} -c{} -d{}s --latency`, {} rounds. ",
        Setup::Direct.label(),
        Setup::Proxy.label(),
        Setup::Nginx.label(),
        crate::nginx::UPSTREAM_KEEPALIVE,
        h1.threads,
        h1.connections,
        h1.seconds,
        r.http1.rounds,
    );
    if let Some(h2) = &r.http2 {
        let _ = write!(
            s,
            "HTTP/2: `h2load -t{} -c{} -m{} -D{}`, {} rounds; p50/p99 from its per-request log; \
             in (c) nginx takes h2c from the client and speaks HTTP/1.1 upstream (nginx's \
             `proxy_pass` has no HTTP/2 upstream), while cilium-proxy speaks HTTP/2 on both sides. ",
            h2.shape.threads,
            h2.shape.connections,
            h2.shape.streams,
            h2.shape.seconds,
            h2.rounds
        );
    }
    s.push_str(
        "Every round measures all three setups back to back, the order rotating from round to \
         round; tables show medians over the rounds (req/s min–max in brackets). Latency \
         percentiles are the load generator's (closed loop: a slow response delays the next \
         request on that connection). The ratio targets are computed from the medians; the \
         median of the per-round ratios is shown next to them.\n\n\
         CPU: user+system time from /proc of each process during each measurement (all threads, \
         nginx master and workers together); the client's from `getrusage(RUSAGE_CHILDREN)`. \
         Shown as % of one core and as µs of CPU per request.\n",
    );
    s
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**not met**"
    }
}

fn targets(series: &Series) -> String {
    let (a, b, c) = (
        series.rate(Setup::Direct),
        series.rate(Setup::Proxy),
        series.rate(Setup::Nginx),
    );
    let mut s = String::new();
    let _ = writeln!(
        s,
        "- {}: (b)/(a) ≥ 0.5: {b:.0} / {a:.0} req/s = **{:.2}** (per-round median {:.2}) — {}",
        series.protocol.title(),
        b / a,
        series.paired_ratio(Setup::Proxy, Setup::Direct),
        verdict(b / a >= 0.5)
    );
    let _ = writeln!(
        s,
        "- {}: (b)/(c) ≥ 1: {b:.0} / {c:.0} req/s = **{:.2}** (per-round median {:.2}) — {}",
        series.protocol.title(),
        b / c,
        series.paired_ratio(Setup::Proxy, Setup::Nginx),
        verdict(b / c >= 1.0)
    );
    let _ = writeln!(
        s,
        "- {}: p99 latency (no target): (a) {} / (b) {} / (c) {}",
        series.protocol.title(),
        us(series.p99(Setup::Direct)),
        us(series.p99(Setup::Proxy)),
        us(series.p99(Setup::Nginx)),
    );
    s
}

fn us(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1e3)
    } else {
        format!("{v:.0} µs")
    }
}

fn series_tables(series: &Series, tracked: &[&str]) -> String {
    let mut s = format!("\n## {}\n\n", series.protocol.title());
    s.push_str("| setup | req/s (median, min–max) | p50 | p99 | non-2xx + errors |\n");
    s.push_str("|---|---:|---:|---:|---:|\n");
    for setup in Setup::ALL {
        let (lo, hi) = series.rate_range(setup);
        let _ = writeln!(
            s,
            "| {} | {:.0} ({:.0}–{:.0}) | {} | {} | {} |",
            setup.label(),
            series.rate(setup),
            lo,
            hi,
            us(series.p50(setup)),
            us(series.p99(setup)),
            series.bad(setup)
        );
    }
    s.push_str("\nCPU during the measurement, % of one core (µs per request):\n\n| setup |");
    for name in tracked {
        let _ = write!(s, " {name} |");
    }
    s.push_str("\n|---|");
    for _ in tracked {
        s.push_str("---:|");
    }
    s.push('\n');
    for setup in Setup::ALL {
        let _ = write!(s, "| {} |", setup.label());
        for index in 0..tracked.len() {
            let _ = write!(
                s,
                " {:.0} % ({:.1}) |",
                series.cpu_percent(setup, index),
                series.cpu_us_per_request(setup, index)
            );
        }
        s.push('\n');
    }
    s.push_str("\nEvery measurement:\n\n| round | setup | req/s | p50 | p99 | requests | non-2xx + errors |\n");
    s.push_str("|---:|---|---:|---:|---:|---:|---:|\n");
    for sample in &series.samples {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {} | {} | {} |",
            sample.round + 1,
            sample.setup.label(),
            sample.load.requests_per_second,
            us(sample.load.p50_us),
            us(sample.load.p99_us),
            sample.load.requests,
            sample.load.bad
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(setup: Setup, round: usize, rps: f64) -> Sample {
        Sample {
            setup,
            round,
            load: LoadResult {
                requests_per_second: rps,
                p50_us: 100.0,
                p99_us: 900.0,
                requests: (rps * 2.0) as u64,
                bad: 0,
            },
            wall: Duration::from_secs(2),
            cpu_seconds: vec![1.0],
        }
    }

    #[test]
    fn ratios_and_verdicts() {
        let series = Series {
            protocol: Protocol::Http1,
            shape: Shape {
                threads: 1,
                connections: 16,
                streams: 1,
                seconds: 2,
            },
            rounds: 2,
            samples: vec![
                sample(Setup::Direct, 0, 1000.0),
                sample(Setup::Proxy, 0, 600.0),
                sample(Setup::Nginx, 0, 500.0),
                sample(Setup::Direct, 1, 1000.0),
                sample(Setup::Proxy, 1, 400.0),
                sample(Setup::Nginx, 1, 500.0),
            ],
        };
        let text = targets(&series);
        assert!(text.contains("= **0.40**"), "{text}");
        assert!(text.contains("— **not met**"), "{text}");
        let report = Report {
            machine: vec![("kernel".into(), "6.1".into())],
            tracked: vec!["cilium-proxy"],
            http1: series,
            http2: None,
            checks: vec!["POST → 403".into()],
            notes: vec![],
            total: Duration::from_secs(60),
        };
        let page = render(&report);
        assert!(
            page.contains("| (b) cilium-proxy, L7 allow rule | 400 (400–600)"),
            "{page}"
        );
        assert!(page.contains("50 % (1000.0)"), "{page}");
    }
}

//! dnsperf from inside the client pod, and what its output says: the
//! summary (sent, completed, lost, run time, queries/s) and, with `-v`,
//! one line per answered query with its latency, from which the bench
//! takes percentiles (dnsperf itself prints only the mean).

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};
use testbed::bench::stats::nearest_rank;
use testbed::bench::tools;
use testbed::NetNs;

/// How dnsperf loads the server.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// `-c`: clients (source ports).
    pub clients: u32,
    /// `-q`: queries outstanding at once (closed loop).
    pub outstanding: u32,
    /// `-l`: the run's length.
    pub seconds: u32,
}

/// One dnsperf run.
#[derive(Debug, Clone, Default)]
pub struct Run {
    pub sent: u64,
    pub completed: u64,
    pub lost: u64,
    /// Answers with rcode NOERROR.
    pub noerror: u64,
    pub run_seconds: f64,
    pub per_second: f64,
    /// Every answered query's latency, µs.
    pub latencies_us: Vec<f64>,
}

impl Run {
    pub fn p50_us(&self) -> f64 {
        nearest_rank(&self.latencies_us, 0.5)
    }

    pub fn p99_us(&self) -> f64 {
        nearest_rank(&self.latencies_us, 0.99)
    }

    /// Answers that took at least `us`.
    pub fn at_least(&self, us: f64) -> usize {
        self.latencies_us.iter().filter(|&&l| l >= us).count()
    }
}

/// Runs dnsperf in `netns` against `server` with the queries of `file`:
/// for `shape.seconds`, going through the file again and again, or with
/// `once` through it at most once.
pub fn run(netns: &NetNs, server: Ipv4Addr, file: &Path, shape: Shape, once: bool) -> Result<Run> {
    let (server, file) = (server.to_string(), file.display().to_string());
    let (clients, outstanding, seconds) = (
        shape.clients.to_string(),
        shape.outstanding.to_string(),
        shape.seconds.to_string(),
    );
    let mut args = vec![
        "dnsperf",
        "-s",
        &server,
        "-d",
        &file,
        "-l",
        &seconds,
        "-c",
        &clients,
        "-q",
        &outstanding,
        "-t",
        "5",
        "-v",
    ];
    if once {
        args.extend(["-n", "1"]);
    }
    let out = tools::run_in(netns, &args)?;
    parse(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("reading the output of `{}`", args.join(" ")))
}

fn parse(output: &str) -> Result<Run> {
    let mut run = Run::default();
    for line in output.lines() {
        if let Some(answer) = line.strip_prefix("> ") {
            // `> NOERROR s1.steady.test A 0.000198`
            let mut words = answer.split_whitespace();
            let rcode = words.next().unwrap_or_default();
            if let Some(seconds) = words.last().and_then(|l| l.parse::<f64>().ok()) {
                run.latencies_us.push(seconds * 1e6);
            }
            if rcode == "NOERROR" {
                run.noerror += 1;
            }
            continue;
        }
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let first = value.split_whitespace().next().unwrap_or_default();
        match key {
            "Queries sent" => run.sent = first.parse()?,
            "Queries completed" => run.completed = first.parse()?,
            "Queries lost" => run.lost = first.parse()?,
            "Run time (s)" => run.run_seconds = first.parse()?,
            "Queries per second" => run.per_second = first.parse()?,
            _ => {}
        }
    }
    anyhow::ensure!(
        run.run_seconds > 0.0,
        "no `Run time (s)` line in dnsperf's output:\n{}",
        output.lines().take(30).collect::<Vec<_>>().join("\n")
    );
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -d q.txt -n 1 -v
> NOERROR n0.bench.test A 0.000198
> NOERROR n1.bench.test A 0.000095
> REFUSED n2.bench.test A 0.000072
[Timeout] Query timed out: msg id 3

Statistics:

  Queries sent:         4
  Queries completed:    3 (75.00%)
  Queries lost:         1 (25.00%)

  Response codes:       NOERROR 2 (66.67%), REFUSED 1 (33.33%)
  Average packet size:  request 32, response 48
  Run time (s):         1.000500
  Queries per second:   2.998501

  Average Latency (s):  0.000121 (min 0.000072, max 0.000198)
";

    #[test]
    fn reads_the_summary_and_every_answer() {
        let run = parse(OUTPUT).unwrap();
        assert_eq!((run.sent, run.completed, run.lost), (4, 3, 1));
        assert_eq!(run.noerror, 2);
        assert_eq!(run.run_seconds, 1.0005);
        assert_eq!(run.latencies_us.len(), 3);
        assert!((run.p50_us() - 95.0).abs() < 1e-6);
        assert!((run.p99_us() - 198.0).abs() < 1e-6);
        assert_eq!(run.at_least(100.0), 1);
        assert!(parse("nothing").is_err());
    }
}

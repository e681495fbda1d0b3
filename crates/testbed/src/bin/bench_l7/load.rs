//! The load generators, run inside the client pod: wrk for HTTP/1.1 and
//! h2load for HTTP/2 (cleartext, prior knowledge), and parsers for what
//! they print.

use std::path::Path;

use anyhow::{bail, Context, Result};
use testbed::bench::stats::nearest_rank;
use testbed::bench::tools;
use testbed::NetNs;

/// One measurement of one setup.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    pub requests_per_second: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub requests: u64,
    /// Non-2xx responses plus socket errors / failed requests.
    pub bad: u64,
}

/// How hard the client pushes.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub threads: u32,
    pub connections: u32,
    /// HTTP/2 only: concurrent streams per connection.
    pub streams: u32,
    pub seconds: u32,
}

/// `wrk --latency` against `url` for `shape.seconds`.
pub fn wrk(netns: &NetNs, url: &str, shape: Shape) -> Result<LoadResult> {
    let args = [
        "wrk".to_string(),
        format!("-t{}", shape.threads),
        format!("-c{}", shape.connections),
        format!("-d{}s", shape.seconds),
        "--timeout".into(),
        "2s".into(),
        "--latency".into(),
        url.to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = run(netns, &args)?;
    parse_wrk(&text).with_context(|| format!("cannot read wrk's output:\n{text}"))
}

/// `h2load` against `url`; latencies come from its per-request log file
/// (`log`, overwritten), since its summary has no percentiles.
pub fn h2load(netns: &NetNs, url: &str, shape: Shape, log: &Path) -> Result<LoadResult> {
    let args = [
        "h2load".to_string(),
        format!("-t{}", shape.threads),
        format!("-c{}", shape.connections),
        format!("-m{}", shape.streams),
        format!("-D{}", shape.seconds),
        format!("--log-file={}", log.display()),
        url.to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = run(netns, &args)?;
    let mut result =
        parse_h2load(&text).with_context(|| format!("cannot read h2load's output:\n{text}"))?;
    let log_text = std::fs::read_to_string(log)
        .with_context(|| format!("cannot read h2load's log {}", log.display()))?;
    let latencies = parse_h2load_log(&log_text);
    if latencies.is_empty() {
        bail!("h2load's log {} holds no requests", log.display());
    }
    result.p50_us = nearest_rank(&latencies, 0.5);
    result.p99_us = nearest_rank(&latencies, 0.99);
    Ok(result)
}

fn run(netns: &NetNs, args: &[&str]) -> Result<String> {
    let out = tools::run_in(netns, args)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// wrk's summary: `Requests/sec:`, the `--latency` distribution, the
/// request count and any non-2xx responses or socket errors.
pub fn parse_wrk(text: &str) -> Result<LoadResult> {
    let mut r = LoadResult::default();
    let (mut have_rate, mut have_p50, mut have_p99) = (false, false, false);
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            r.requests_per_second = v.trim().parse().context("Requests/sec")?;
            have_rate = true;
        } else if let Some(v) = line.strip_prefix("50%") {
            r.p50_us = duration_us(v.trim())?;
            have_p50 = true;
        } else if let Some(v) = line.strip_prefix("99%") {
            r.p99_us = duration_us(v.trim())?;
            have_p99 = true;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            r.bad += v.trim().parse::<u64>().context("Non-2xx count")?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for part in v.split(',') {
                if let Some(n) = part.split_whitespace().nth(1) {
                    r.bad += n.parse::<u64>().context("socket error count")?;
                }
            }
        } else if line.contains(" requests in ") {
            r.requests = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .parse()
                .context("request count")?;
        }
    }
    if !(have_rate && have_p50 && have_p99) {
        bail!("no Requests/sec or latency distribution (was --latency given?)");
    }
    Ok(r)
}

/// `12.5us`, `1.23ms`, `2.00s` → microseconds.
fn duration_us(text: &str) -> Result<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        bail!("{text:?} has no time unit");
    };
    let value: f64 = number
        .trim()
        .parse()
        .with_context(|| format!("{text:?} is not a duration"))?;
    Ok(value * scale)
}

/// h2load's summary: `finished in …, N req/s`, the `requests:` total and
/// the `status codes:` line.
pub fn parse_h2load(text: &str) -> Result<LoadResult> {
    let mut r = LoadResult::default();
    let mut have_rate = false;
    let mut total = 0;
    let mut ok = 0;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in") {
            let rate = rest
                .split(',')
                .find_map(|p| p.trim().strip_suffix(" req/s"))
                .context("no req/s on the `finished in` line")?;
            r.requests_per_second = rate.trim().parse().context("req/s")?;
            have_rate = true;
        } else if let Some(rest) = line.strip_prefix("requests:") {
            for part in rest.split(',') {
                let mut words = part.split_whitespace();
                let (Some(n), Some(what)) = (words.next(), words.next()) else {
                    continue;
                };
                let n: u64 = n.parse().with_context(|| format!("requests: {part:?}"))?;
                if what == "total" {
                    total = n;
                }
            }
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            ok = rest
                .split(',')
                .find_map(|p| p.trim().strip_suffix(" 2xx"))
                .context("no 2xx count")?
                .trim()
                .parse()
                .context("2xx count")?;
        }
    }
    if !have_rate {
        bail!("no `finished in … req/s` line");
    }
    r.requests = ok;
    // Everything that did not end in a 2xx: errors, timeouts, 403s.
    r.bad = total.saturating_sub(ok);
    Ok(r)
}

/// h2load's `--log-file`: one line per request, `start(µs)\tstatus\telapsed(µs)`.
pub fn parse_h2load_log(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|line| line.split('\t').nth(2)?.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "\
Running 4s test @ http://10.0.0.5:8080/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   420.58us  172.44us   9.77ms   98.90%
    Req/Sec    38.86k     1.39k   40.22k    72.73%
  Latency Distribution
     50%  400.00us
     75%  424.00us
     90%  466.00us
     99%    1.18ms
  154397 requests in 4.10s, 23.85MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  37656.68
Transfer/sec:      5.82MB
";

    #[test]
    fn reads_wrk() {
        let r = parse_wrk(WRK).unwrap();
        assert_eq!(r.requests_per_second, 37656.68);
        assert_eq!(r.p50_us, 400.0);
        assert_eq!(r.p99_us, 1180.0);
        assert_eq!(r.requests, 154397);
        assert_eq!(r.bad, 8);
    }

    #[test]
    fn wrk_without_latency_is_an_error() {
        assert!(parse_wrk("Requests/sec: 5.0\n").is_err());
    }

    #[test]
    fn reads_durations() {
        assert_eq!(duration_us("12.50us").unwrap(), 12.5);
        assert_eq!(duration_us("2.00s").unwrap(), 2e6);
        assert!(duration_us("12").is_err());
    }

    #[test]
    fn reads_h2load() {
        let text = "\
finished in 3.00s, 20123.50 req/s, 1.40MB/s
requests: 60372 total, 60388 started, 60372 done, 60370 succeeded, 2 failed, 0 errored, 0 timeout
status codes: 60370 2xx, 0 3xx, 2 4xx, 0 5xx
";
        let r = parse_h2load(text).unwrap();
        assert_eq!(r.requests_per_second, 20123.5);
        assert_eq!(r.requests, 60370);
        assert_eq!(r.bad, 2);
    }

    #[test]
    fn reads_h2load_log() {
        let v = parse_h2load_log("1795702739413058\t200\t428\n1\t200\t100\nbad line\n");
        assert_eq!(v, vec![428.0, 100.0]);
    }
}

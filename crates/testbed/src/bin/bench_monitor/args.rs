//! Command-line flags, and the method section of the page they describe.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Result};
use testbed::bench::Flags;

use crate::client::Pace;

pub struct Args {
    pub rounds: usize,
    pub seconds: u32,
    /// `None`: as fast as one thread can send.
    pub flood_pps: Option<u64>,
    pub slow_bytes: usize,
    pub slow_every_ms: u64,
    pub check_packets: u64,
    pub check_pps: u64,
    pub output: Option<PathBuf>,
}

const USAGE: &str = "\
cilium-bench-monitor [FLAGS]   (root; normally run by bench/monitor/run.sh)

  --rounds N           interleaved rounds of the four configurations (5)
  --seconds S          iperf3 seconds per measurement, plus 1 s omitted (4)
  --flood-pps N        flood datagrams per second, 0 = as fast as possible (0)
  --slow-bytes B       the slow client reads at most B bytes ... (4096)
  --slow-every-ms M    ... every M milliseconds (20)
  --check-packets N    datagrams in the accounting check (5000)
  --check-pps N        their rate (10000)
  --output FILE.md     also write the results page there
";

impl Args {
    pub fn parse(argv: impl Iterator<Item = String>) -> Result<Args> {
        let mut args = Args {
            rounds: 5,
            seconds: 4,
            flood_pps: None,
            slow_bytes: 4096,
            slow_every_ms: 20,
            check_packets: 5000,
            check_pps: 10_000,
            output: None,
        };
        let mut flags = Flags::new(argv, USAGE);
        while let Some(flag) = flags.next_flag()? {
            match flag.name.as_str() {
                "--rounds" => args.rounds = flag.number()?,
                "--seconds" => args.seconds = flag.number()?,
                "--flood-pps" => args.flood_pps = Some(flag.number()?).filter(|n| *n > 0),
                "--slow-bytes" => args.slow_bytes = flag.number()?,
                "--slow-every-ms" => args.slow_every_ms = flag.number()?,
                "--check-packets" => args.check_packets = flag.number()?,
                "--check-pps" => args.check_pps = flag.number()?,
                "--output" => args.output = Some(flag.path()),
                _ => return Err(flag.unknown()),
            }
        }
        ensure!(
            args.rounds > 0 && args.seconds > 0,
            "--rounds and --seconds must be positive"
        );
        ensure!(
            args.slow_bytes > 0 && args.slow_every_ms > 0,
            "--slow-bytes and --slow-every-ms must be positive"
        );
        ensure!(
            args.check_packets > 0 && args.check_pps > 0,
            "--check-packets and --check-pps must be positive"
        );
        Ok(args)
    }

    pub fn slow_pace(&self) -> Pace {
        Pace::Slow {
            bytes: self.slow_bytes,
            every: Duration::from_millis(self.slow_every_ms),
        }
    }

    /// The method section of the results page.
    pub fn method(&self) -> Vec<String> {
        let flood = match self.flood_pps {
            None => "as fast as one thread can send".to_string(),
            Some(n) => format!("paced at {n} datagrams/s"),
        };
        let slow_rate = self.slow_bytes as f64 * 1000.0 / self.slow_every_ms as f64 / 1024.0;
        vec![
            "One cilium-agent (range 10.190.0.0/24) and four pods on this node. `attacker` \
             sends 18-byte UDP datagrams to `victim`:9 from one connected socket (a thread of \
             the bench, in the attacker's namespace). The victim's ingress policy allows only \
             `client` there, so every datagram is dropped by the victim's `cil_to_container`: \
             a denied flow never gets a conntrack entry, so each datagram is a new flow and \
             puts a policy-verdict and a drop event into the `cilium_events` ring. Meanwhile \
             `client` runs iperf3 (one TCP stream) to `server`:5201, which the policy allows."
                .into(),
            format!(
                "Configurations: **(0)** no flood and no monitor client (what the flood itself \
                 costs); **(1)** the flood ({flood}), no monitor client, the reference for the \
                 ratios; **(2)** the flood and `cilium monitor -o json` (the real CLI, no type \
                 filter) whose stdout the bench reads as fast as it comes; **(3)** the same \
                 client read slowly: at most {} bytes every {} ms ({slow_rate:.0} KiB/s, a few \
                 hundred events/s), so the CLI blocks on its pipe and stops reading the \
                 agent's stream. Each measurement starts the flood and the client, waits for \
                 the client's first line and {} ms more, then reads every counter, runs \
                 `iperf3 -t {} -O 1`, and reads them again.",
                self.slow_bytes,
                self.slow_every_ms,
                crate::SETTLE.as_millis(),
                self.seconds
            ),
            format!(
                "{} rounds; every round measures all four configurations back to back, the \
                 order rotating from round to round; tables show medians over the rounds. \
                 Counted: datagrams the flood thread sent; the datapath's drops \
                 (`cilium_drop_count_total` from `GET /v1/metrics`); the client's lines by \
                 kind and the sum of its `kind: lost` events (what the agent tells a client \
                 that fell behind); the agent's `cilium_monitor_lost_events_total`; CPU \
                 time of the agent, the CLI and the flood thread from /proc; and how busy \
                 the whole machine was (/proc/stat).",
                self.rounds
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(flags: &[&str]) -> Result<Args> {
        Args::parse(flags.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_overrides() {
        let a = parse(&[]).unwrap();
        assert_eq!((a.rounds, a.seconds, a.flood_pps), (5, 4, None));
        let a = parse(&["--rounds", "2", "--flood-pps", "50000", "--seconds", "2"]).unwrap();
        assert_eq!((a.rounds, a.seconds, a.flood_pps), (2, 2, Some(50_000)));
        assert_eq!(parse(&["--flood-pps", "0"]).unwrap().flood_pps, None);
    }

    #[test]
    fn rejects_bad_flags() {
        assert!(parse(&["--rounds", "0"]).is_err());
        assert!(parse(&["--rounds"]).is_err());
        assert!(parse(&["--bogus", "1"]).is_err());
        assert!(parse(&["--seconds", "x"]).is_err());
    }
}

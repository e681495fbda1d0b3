//! Command-line flags.

use std::path::PathBuf;

use anyhow::{ensure, Result};
use testbed::bench::Flags;

pub struct Args {
    pub rounds: usize,
    pub seconds: u32,
    /// wrk's concurrent connections (each request opens one).
    pub connections: u32,
    /// Seconds of load that fill a ring in the memory probe.
    pub fill_seconds: u32,
    /// Agents per capacity in the memory probe.
    pub memory_pairs: usize,
    pub output: Option<PathBuf>,
}

const USAGE: &str = "\
cilium-bench-hubble [FLAGS]   (root; normally run by bench/hubble/run.sh)

  --rounds N          interleaved rounds of both configurations (5)
  --seconds S         wrk seconds per measurement (4)
  --connections C     wrk's concurrent connections, each request a new one (8)
  --fill-seconds S    load that fills the ring in the memory probe (3)
  --memory-pairs N    agents per ring capacity in the memory probe (2)
  --output FILE.md    also write the results page there
";

impl Args {
    pub fn parse(argv: impl Iterator<Item = String>) -> Result<Args> {
        let mut args = Args {
            rounds: 5,
            seconds: 4,
            connections: 8,
            fill_seconds: 3,
            memory_pairs: 2,
            output: None,
        };
        let mut flags = Flags::new(argv, USAGE);
        while let Some(flag) = flags.next_flag()? {
            match flag.name.as_str() {
                "--rounds" => args.rounds = flag.number()?,
                "--seconds" => args.seconds = flag.number()?,
                "--connections" => args.connections = flag.number()?,
                "--fill-seconds" => args.fill_seconds = flag.number()?,
                "--memory-pairs" => args.memory_pairs = flag.number()?,
                "--output" => args.output = Some(flag.path()),
                _ => return Err(flag.unknown()),
            }
        }
        ensure!(
            args.rounds > 0 && args.seconds > 0,
            "--rounds and --seconds must be positive"
        );
        ensure!(args.connections > 0, "--connections must be positive");
        ensure!(
            args.fill_seconds > 0 && args.memory_pairs > 0,
            "--fill-seconds and --memory-pairs must be positive"
        );
        Ok(args)
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
        assert_eq!((a.rounds, a.seconds, a.connections), (5, 4, 8));
        let a = parse(&[
            "--rounds",
            "2",
            "--connections",
            "16",
            "--memory-pairs",
            "1",
        ])
        .unwrap();
        assert_eq!((a.rounds, a.connections, a.memory_pairs), (2, 16, 1));
    }

    #[test]
    fn rejects_bad_flags() {
        assert!(parse(&["--rounds", "0"]).is_err());
        assert!(parse(&["--connections", "0"]).is_err());
        assert!(parse(&["--seconds"]).is_err());
        assert!(parse(&["--bogus", "1"]).is_err());
    }
}

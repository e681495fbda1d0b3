//! Command-line flags; the defaults are the issue's scenario.

use std::path::PathBuf;

use anyhow::{bail, Result};
use testbed::bench::Flags;

#[derive(Debug, Clone)]
pub struct Args {
    pub rounds: usize,
    pub seconds: u64,
    pub fillers: usize,
    pub ports_per_filler: u16,
    pub iptables_rules: usize,
    pub import_rules: usize,
    pub import_targets: usize,
    pub output: Option<PathBuf>,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            rounds: 3,
            seconds: 5,
            fillers: 1000,
            ports_per_filler: 10,
            iptables_rules: 10_000,
            import_rules: 1000,
            import_targets: 100,
            output: None,
        }
    }
}

pub const USAGE: &str = "\
cilium-bench-datapath [FLAGS]   (root; normally run by bench/run.sh)

  --rounds N            interleaved rounds (3)
  --seconds S           duration of each measurement (5)
  --fillers N           extra endpoints, one identity each (1000)
  --ports-per-filler N  server policy entries per filler identity (10)
  --iptables-rules N    non-matching rules before the ACCEPT in (c) (10000)
  --import-rules N      rules in the import-to-enforcement set (1000)
  --import-targets N    endpoints those rules select (100)
  --output FILE         also write the results page there
";

impl Args {
    pub fn parse(argv: impl Iterator<Item = String>) -> Result<Args> {
        let mut args = Args::default();
        let mut flags = Flags::new(argv, USAGE);
        while let Some(flag) = flags.next_flag()? {
            match flag.name.as_str() {
                "--rounds" => args.rounds = flag.number()?,
                "--seconds" => args.seconds = flag.number()?,
                "--fillers" => args.fillers = flag.number()?,
                "--ports-per-filler" => args.ports_per_filler = flag.number()?,
                "--iptables-rules" => args.iptables_rules = flag.number()?,
                "--import-rules" => args.import_rules = flag.number()?,
                "--import-targets" => args.import_targets = flag.number()?,
                "--output" => args.output = Some(flag.path()),
                _ => return Err(flag.unknown()),
            }
        }
        if args.rounds == 0 || args.seconds == 0 {
            bail!("--rounds and --seconds must be at least 1");
        }
        if args.import_targets == 0 || args.import_targets > args.fillers + 1 {
            bail!(
                "--import-targets {} must be between 1 and --fillers + 1 ({}): the probe pod and fillers are the targets",
                args.import_targets,
                args.fillers + 1
            );
        }
        if args.import_rules == 0 || args.import_rules > args.fillers + 1 {
            bail!("--import-rules must be between 1 and --fillers + 1 (one filler per rule)");
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args> {
        Args::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_are_the_issue_scenario() {
        let a = parse(&[]).unwrap();
        assert_eq!(
            (
                a.fillers,
                a.iptables_rules,
                a.import_rules,
                a.import_targets
            ),
            (1000, 10_000, 1000, 100)
        );
    }

    #[test]
    fn flags_override_and_bad_input_is_named() {
        let a = parse(&[
            "--rounds",
            "1",
            "--fillers",
            "50",
            "--import-rules",
            "20",
            "--import-targets",
            "10",
        ])
        .unwrap();
        assert_eq!((a.rounds, a.fillers), (1, 50));
        let err = parse(&["--seconds", "x"]).unwrap_err().to_string();
        assert!(err.contains("--seconds"), "{err}");
        assert!(parse(&["--bogus", "1"]).is_err());
        assert!(parse(&["--fillers", "10"]).is_err());
    }
}

//! The benches' command lines: `--flag value` pairs and `-h`/`--help`.
//! Each bench matches the flag names it knows; reading the value, naming a
//! bad number and refusing an unknown flag happen here, the same way for
//! every bench.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context, Result};

/// The flags of one command line, read in order.
pub struct Flags<I> {
    argv: I,
    usage: &'static str,
}

impl<I: Iterator<Item = String>> Flags<I> {
    /// `argv` without the program name; `usage` is shown for `--help` and
    /// with every mistake.
    pub fn new(argv: I, usage: &'static str) -> Flags<I> {
        Flags { argv, usage }
    }

    /// The next flag and its value; `None` after the last. `-h`/`--help`
    /// fails with the usage text, as does a flag without a value.
    pub fn next_flag(&mut self) -> Result<Option<Flag>> {
        let Some(name) = self.argv.next() else {
            return Ok(None);
        };
        if name == "-h" || name == "--help" {
            bail!("{}", self.usage);
        }
        let value = self
            .argv
            .next()
            .with_context(|| format!("{name} needs a value\n\n{}", self.usage))?;
        Ok(Some(Flag {
            name,
            value,
            usage: self.usage,
        }))
    }
}

/// One `--flag value`.
#[derive(Debug)]
pub struct Flag {
    pub name: String,
    pub value: String,
    usage: &'static str,
}

impl Flag {
    /// The value as a number (or anything else `FromStr` parses).
    pub fn number<T: FromStr>(&self) -> Result<T> {
        self.value
            .parse()
            .map_err(|_| anyhow!("{}: {:?} is not a number", self.name, self.value))
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.value)
    }

    /// The error for a flag the bench does not know.
    pub fn unknown(&self) -> anyhow::Error {
        anyhow!("unknown flag {:?}\n\n{}", self.name, self.usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USAGE: &str = "bench [--rounds N]";

    fn flags(argv: &[&str]) -> Flags<impl Iterator<Item = String>> {
        Flags::new(
            argv.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into_iter(),
            USAGE,
        )
    }

    #[test]
    fn reads_pairs_in_order() {
        let mut f = flags(&["--rounds", "3", "--output", "x.md"]);
        let rounds = f.next_flag().unwrap().unwrap();
        assert_eq!(
            (rounds.name.as_str(), rounds.number::<u32>().unwrap()),
            ("--rounds", 3)
        );
        let output = f.next_flag().unwrap().unwrap();
        assert_eq!(output.path(), PathBuf::from("x.md"));
        assert!(f.next_flag().unwrap().is_none());
    }

    #[test]
    fn mistakes_name_the_flag_and_show_the_usage() {
        let err = flags(&["--rounds"]).next_flag().unwrap_err().to_string();
        assert!(
            err.starts_with("--rounds needs a value") && err.ends_with(USAGE),
            "{err}"
        );
        let flag = flags(&["--rounds", "x"]).next_flag().unwrap().unwrap();
        let err = flag.number::<u32>().unwrap_err().to_string();
        assert_eq!(err, "--rounds: \"x\" is not a number");
        assert!(flag.unknown().to_string().contains(USAGE));
        let help = flags(&["--help"]).next_flag().unwrap_err().to_string();
        assert_eq!(help, USAGE);
    }
}

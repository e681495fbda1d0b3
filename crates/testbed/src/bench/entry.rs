//! The frame every bench binary runs in: the signal handler, parsing the
//! command line, the exit status, progress lines on stderr and where the
//! results page goes.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};

use super::signals;

/// Installs the signal handler, parses the flags with `parse` and runs the
/// bench. Exit status: 0 done, 2 bad flags (or `--help`), 130 interrupted
/// (after every guard unwound), 1 failed.
pub fn main<A>(
    parse: impl FnOnce(std::iter::Skip<std::env::Args>) -> Result<A>,
    run: impl FnOnce(&A) -> Result<()>,
) -> ExitCode {
    signals::install();
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        // A measurement cut short by the signal fails in its own way; the
        // signal is the story.
        Err(_) if signals::stopped() => {
            eprintln!("interrupted: everything the bench created is removed");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A progress line: seconds since `started`, then what happens now.
pub fn step(started: Instant, what: &str) {
    eprintln!("[{:6.1} s] {what}", started.elapsed().as_secs_f64());
}

/// Prints the results page and, with `output`, also writes it there
/// (creating the directory).
pub fn publish(page: &str, output: Option<&Path>) -> Result<()> {
    println!("\n{page}");
    if let Some(path) = output {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

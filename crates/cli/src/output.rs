//! `-o json` support and line-at-a-time printing.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
}

/// Indented JSON like Cilium's `-o json` (two spaces).
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

/// Writes `text` to stdout and flushes, so readers on a pipe see it at
/// once. A closed pipe (`cilium ... | head`) ends the program quietly.
pub fn emit(text: &str) {
    emit_bytes(text.as_bytes())
}

/// [`emit`] for text already encoded (UTF-8).
pub fn emit_bytes(text: &[u8]) {
    let mut out = std::io::stdout().lock();
    if out.write_all(text).and_then(|_| out.flush()).is_err() {
        std::process::exit(0);
    }
}

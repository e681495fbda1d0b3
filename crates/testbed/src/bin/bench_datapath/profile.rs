//! Where (b)'s time goes in the datapath, for the results page: the mean
//! run time of each endpoint program from kernel BPF statistics (switched
//! on only for a separate pass, see `SysctlOverride`, because they cost a
//! little on every run). Read-only: programs are found through the links
//! the agent pinned, with bpftool.

use std::path::Path;

use anyhow::{Context, Result};
use testbed::cmd;

/// The program behind a pinned link.
pub fn pinned_prog_id(link: &Path) -> Result<u64> {
    let text = cmd::run(
        "bpftool",
        &["-j", "link", "show", "pinned", &link.display().to_string()],
    )?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("bpftool link show: not JSON: {text}"))?;
    json["prog_id"]
        .as_u64()
        .with_context(|| format!("no prog_id for {}: {json}", link.display()))
}

/// (run_time_ns, run_cnt) of a program; zero while statistics are off.
pub fn prog_counters(prog_id: u64) -> Result<(u64, u64)> {
    let text = cmd::run(
        "bpftool",
        &["-j", "prog", "show", "id", &prog_id.to_string()],
    )?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("bpftool prog show: not JSON: {text}"))?;
    Ok((
        json["run_time_ns"].as_u64().unwrap_or(0),
        json["run_cnt"].as_u64().unwrap_or(0),
    ))
}

/// Mean nanoseconds per run of each program over a span of traffic.
pub struct ProgSpan {
    programs: Vec<(String, u64, (u64, u64))>,
}

impl ProgSpan {
    pub fn start(programs: &[(String, u64)]) -> Result<ProgSpan> {
        let programs = programs
            .iter()
            .map(|(name, id)| Ok((name.clone(), *id, prog_counters(*id)?)))
            .collect::<Result<_>>()?;
        Ok(ProgSpan { programs })
    }

    /// (name, mean ns per run, runs) per program.
    pub fn finish(&self) -> Result<Vec<(String, f64, u64)>> {
        self.programs
            .iter()
            .map(|(name, id, (ns0, cnt0))| {
                let (ns, cnt) = prog_counters(*id)?;
                let runs = cnt.saturating_sub(*cnt0);
                let mean = if runs == 0 {
                    f64::NAN
                } else {
                    ns.saturating_sub(*ns0) as f64 / runs as f64
                };
                Ok((name.clone(), mean, runs))
            })
            .collect()
    }
}

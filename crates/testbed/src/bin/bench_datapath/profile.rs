//! Hints about where (b)'s time goes, for the results page: the agent's
//! CPU use while a measurement runs, and the mean run time of each endpoint
//! program (kernel BPF statistics, switched on only for a separate pass
//! because they cost a little on every run). Read-only: programs are found
//! through the links the agent pinned, with bpftool.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use testbed::cmd;

/// CPU seconds (user + system, all threads) a process has used.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("malformed {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at 3.
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("no field {i} in {path}"))
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(14)? + ticks(15)?) / hz)
}

/// Share of one core a process used between `start` and now.
pub struct CpuMeter {
    pid: u32,
    cpu: f64,
    wall: Instant,
}

impl CpuMeter {
    pub fn start(pid: u32) -> Result<CpuMeter> {
        Ok(CpuMeter {
            pid,
            cpu: cpu_seconds(pid)?,
            wall: Instant::now(),
        })
    }

    /// Percent of one core.
    pub fn percent(&self) -> Result<f64> {
        let cpu = cpu_seconds(self.pid)? - self.cpu;
        Ok(100.0 * cpu / self.wall.elapsed().as_secs_f64())
    }
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// `kernel.bpf_stats_enabled=1` until dropped.
pub struct BpfStats {
    previous: String,
}

impl BpfStats {
    pub fn enable() -> Result<BpfStats> {
        let previous = std::fs::read_to_string(BPF_STATS)
            .with_context(|| format!("cannot read {BPF_STATS}"))?
            .trim()
            .to_string();
        std::fs::write(BPF_STATS, "1").with_context(|| format!("cannot write {BPF_STATS}"))?;
        Ok(BpfStats { previous })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, &self.previous);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_cpu_time() {
        let spent = cpu_seconds(std::process::id()).unwrap();
        assert!(spent >= 0.0);
    }
}

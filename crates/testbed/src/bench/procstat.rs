//! What /proc says a process, a thread or the whole machine used: CPU time
//! (user + system) and memory. On a shared 2-core machine, where the CPU
//! goes says as much about a setup's cost as its rates do.

use std::time::Instant;

use anyhow::{Context, Result};

/// user + system seconds of a whole process (all threads).
pub fn process_cpu_seconds(pid: u32) -> Result<f64> {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// user + system seconds of thread `tid` of this process.
pub fn own_thread_cpu_seconds(tid: i32) -> Result<f64> {
    stat_cpu_seconds(&format!("/proc/self/task/{tid}/stat"))
}

fn stat_cpu_seconds(path: &str) -> Result<f64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let ticks = parse_stat_ticks(&text).with_context(|| format!("no utime/stime in {path}"))?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// Fields 14 and 15 (utime, stime) of a stat file; the command name in
/// parentheses may contain spaces, so fields are counted after its `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU seconds of the children this process has waited for (load
/// generators run to completion; long-running ones are not reaped until the
/// end).
pub fn reaped_children_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// (busy, total) ticks of all CPUs together, from the `cpu` line of
/// /proc/stat; idle and iowait count as not busy. (0, 0) if unreadable.
pub fn machine_ticks() -> (u64, u64) {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| parse_machine_ticks(&text))
        .unwrap_or((0, 0))
}

fn parse_machine_ticks(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is
    // already inside user and nice).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
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
            cpu: process_cpu_seconds(pid)?,
            wall: Instant::now(),
        })
    }

    /// Percent of one core.
    pub fn percent(&self) -> Result<f64> {
        let cpu = process_cpu_seconds(self.pid)? - self.cpu;
        Ok(100.0 * cpu / self.wall.elapsed().as_secs_f64())
    }
}

/// (VmRSS, VmHWM) in KiB from /proc/PID/status.
pub fn memory_kib(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let field = |name: &str| -> Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in {path}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ticks_after_a_name_with_spaces() {
        let stat = "42 (nginx: worker) S 41 41 41 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0";
        assert_eq!(parse_stat_ticks(stat), Some(325));
    }

    #[test]
    fn machine_ticks_leave_out_idle_and_iowait() {
        let text = "cpu  100 5 50 800 20 3 7 0 0 0\ncpu0 50 2 25 400 10 1 3 0 0 0\n";
        assert_eq!(parse_machine_ticks(text), Some((165, 985)));
    }

    #[test]
    fn our_own_process_has_cpu_time_and_memory() {
        assert!(process_cpu_seconds(std::process::id()).unwrap() >= 0.0);
        assert!(process_cpu_seconds(u32::MAX).is_err());
        let (rss, hwm) = memory_kib(std::process::id()).unwrap();
        assert!(rss > 0 && hwm >= rss);
    }
}

//! CPU time from /proc: of a process (the agent, a `cilium monitor`
//! client), of one thread (the flood sender) and of the whole machine. On
//! a shared 2-core machine, where the CPU goes says as much as the rates.

use std::path::Path;

/// user + system seconds of a whole process (all threads); 0 once gone.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// user + system seconds of thread `tid` of this process; 0 once gone.
pub fn own_thread_cpu_seconds(tid: i32) -> f64 {
    stat_cpu_seconds(&format!("/proc/self/task/{tid}/stat"))
}

fn stat_cpu_seconds(path: &str) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| parse_stat_ticks(&text))
        .map_or(0.0, |ticks| ticks as f64 / clock_ticks_per_second())
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

/// (busy, total) ticks of all CPUs together, from the `cpu` line of
/// /proc/stat; idle and iowait count as not busy.
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

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Processes whose program name ends with `program` and that have `arg`
/// among their command-line arguments.
pub fn pids_with_arg(program: &str, arg: &Path) -> Vec<u32> {
    let arg = arg.as_os_str().as_encoded_bytes();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            argv.first()
                .is_some_and(|a| a.ends_with(program.as_bytes()))
                && argv.contains(&arg)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ticks_after_a_name_with_spaces() {
        let stat = "42 (tokio rt worker) S 41 41 41 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0";
        assert_eq!(parse_stat_ticks(stat), Some(325));
    }

    #[test]
    fn machine_ticks_leave_out_idle_and_iowait() {
        let text = "cpu  100 5 50 800 20 3 7 0 0 0\ncpu0 50 2 25 400 10 1 3 0 0 0\n";
        assert_eq!(parse_machine_ticks(text), Some((165, 985)));
    }

    #[test]
    fn our_own_process_has_cpu_time() {
        assert!(process_cpu_seconds(std::process::id()) >= 0.0);
        assert_eq!(process_cpu_seconds(u32::MAX), 0.0);
    }
}

//! CPU time of the processes on the request path, read from /proc around
//! each measurement: on a shared 2-core machine the CPU a proxy spends per
//! request says more about its cost than the request rate alone.

use std::path::Path;

/// One process (or a parent with its children, like nginx's master and
/// workers) whose CPU time is sampled.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub name: &'static str,
    pub pids: Vec<u32>,
}

/// user + system CPU seconds of every tracked process, in `tracked` order;
/// a process that is gone counts as 0.
pub fn snapshot(tracked: &[Tracked]) -> Vec<f64> {
    tracked
        .iter()
        .map(|t| t.pids.iter().map(|&pid| cpu_seconds(pid)).sum())
        .collect()
}

/// CPU seconds of the children this process has waited for (wrk, h2load and
/// curl: the long-running ones are not reaped until the end).
pub fn reaped_children_seconds() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// utime + stime of a whole process (all threads) in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    parse_stat_ticks(&text).map_or(0.0, |ticks| ticks as f64 / clock_ticks_per_second())
}

/// Fields 14 and 15 (utime, stime) of /proc/PID/stat; the command name in
/// parentheses may contain spaces, so fields are counted after its `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn parent_of(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
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

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The processes whose parent is `pid` (nginx's workers).
pub fn children_of(pid: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&p| parent_of(p) == Some(pid))
        .collect()
}

/// Processes with `arg` among their command-line arguments, optionally
/// only those whose program name ends with `program`.
pub fn pids_with_arg(arg: &Path, program: Option<&str>) -> Vec<u32> {
    let arg = arg.as_os_str().as_encoded_bytes();
    all_pids()
        .into_iter()
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let program_ok =
                program.is_none_or(|p| argv.first().is_some_and(|a| a.ends_with(p.as_bytes())));
            program_ok && argv.contains(&arg)
        })
        .collect()
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
    fn our_own_process_is_found_and_has_a_parent() {
        let me = std::process::id();
        assert!(parent_of(me).is_some());
        assert!(cpu_seconds(me) >= 0.0);
    }
}

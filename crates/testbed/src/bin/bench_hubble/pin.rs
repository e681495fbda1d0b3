//! Where the processes of a measurement run: everywhere (shared CPUs, as
//! the machine schedules them) or isolated, the workload (wrk and nginx,
//! and so the datapath's programs, which run in their packets' softirqs)
//! on one CPU and the agent and the following client on another, as on a
//! node whose observers have cores of their own.

use std::path::Path;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Placement {
    /// Isolated: workload on CPU 0, agent and follower on CPU 1.
    Isolated,
    /// Every process may run on every CPU.
    Shared,
}

/// The CPU of the workload and the CPU of the agent and its client.
pub const WORKLOAD_CPU: usize = 0;
pub const OBSERVER_CPU: usize = 1;

impl Placement {
    pub fn label(self) -> &'static str {
        match self {
            Placement::Isolated => "isolated",
            Placement::Shared => "shared",
        }
    }

    /// The CPUs the workload may use; `None`: all.
    pub fn workload_cpu(self) -> Option<usize> {
        (self == Placement::Isolated).then_some(WORKLOAD_CPU)
    }

    /// The CPUs the agent and the follower may use; `None`: all.
    pub fn observer_cpu(self) -> Option<usize> {
        (self == Placement::Isolated).then_some(OBSERVER_CPU)
    }
}

/// CPUs online (the isolated placement needs two).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Every thread of process `pid` on `cpu` (all CPUs for `None`). Threads
/// created later inherit the mask of the thread creating them.
pub fn pin_process(pid: u32, cpu: Option<usize>) -> Result<()> {
    let tasks = Path::new("/proc").join(pid.to_string()).join("task");
    let entries =
        std::fs::read_dir(&tasks).with_context(|| format!("cannot list {}", tasks.display()))?;
    for entry in entries.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread may exit between the listing and here.
        match set_affinity(tid, cpu) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            other => other.with_context(|| format!("cannot pin thread {tid} of {pid}"))?,
        }
    }
    Ok(())
}

/// The calling thread on `cpu`.
pub fn pin_thread(cpu: usize) -> std::io::Result<()> {
    set_affinity(0, Some(cpu))
}

fn set_affinity(tid: libc::pid_t, cpu: Option<usize>) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let n = cpus();
    for c in 0..n {
        if cpu.is_none_or(|only| only == c) {
            // SAFETY: c < n ≤ CPU_SETSIZE on this machine.
            unsafe { libc::CPU_SET(c, &mut set) };
        }
    }
    // SAFETY: the set lives across the call and its size is passed.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `taskset -c <cpu>` before `args` when pinned, else `args` alone.
pub fn on_cpu<'a>(cpu: Option<&'a str>, args: &[&'a str]) -> Vec<&'a str> {
    match cpu {
        Some(cpu) => ["taskset", "-c", cpu]
            .into_iter()
            .chain(args.iter().copied())
            .collect(),
        None => args.to_vec(),
    }
}

/// Fails early when the isolated placement cannot be had.
pub fn check_isolation() -> Result<()> {
    if cpus() < 2 {
        bail!(
            "the isolated placement needs 2 CPUs, this machine has {}",
            cpus()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taskset_prefix_only_when_pinned() {
        assert_eq!(
            on_cpu(Some("0"), &["wrk", "-t1"]),
            ["taskset", "-c", "0", "wrk", "-t1"]
        );
        assert_eq!(on_cpu(None, &["wrk"]), ["wrk"]);
    }

    /// Pinning this test's own process to one CPU and back to all.
    #[test]
    fn pins_every_thread_and_releases() {
        if cpus() < 2 {
            return;
        }
        let me = std::process::id();
        pin_process(me, Some(1)).unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(status.contains("Cpus_allowed_list:\t1\n"), "{status}");
        pin_process(me, None).unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(!status.contains("Cpus_allowed_list:\t1\n"), "{status}");
    }
}

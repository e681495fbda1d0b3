//! Finding processes the testbed does not hand out pids for (the agent,
//! its proxy, nginx workers), by their command line or their parent.

use std::path::Path;

use anyhow::{Context, Result};

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

fn parent_of(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
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

/// The pid of the `cilium-agent` serving `socket`: the testbed does not
/// expose it, and the agent's command line names its private socket.
pub fn agent_pid(socket: &Path) -> Result<u32> {
    pids_with_arg(socket, Some("cilium-agent"))
        .first()
        .copied()
        .with_context(|| {
            format!(
                "no cilium-agent process with --socket {} in /proc",
                socket.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_has_a_parent_and_is_found_by_its_arguments() {
        let me = std::process::id();
        let parent = parent_of(me).unwrap();
        assert!(children_of(parent).contains(&me));
        let program = std::env::args().next().unwrap();
        assert!(pids_with_arg(Path::new(&program), None).contains(&me));
        assert!(agent_pid(Path::new("/nonexistent/cilium.sock")).is_err());
    }
}

//! The external tools a bench runs: long-running servers (sockperf,
//! iperf3) inside a namespace, stopped on drop, and one-shot commands run
//! to completion.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::NetNs;

/// A process started with `nsenter --net=`; SIGTERM then SIGKILL on drop.
pub struct NsProcess {
    what: String,
    child: Child,
}

impl NsProcess {
    pub fn spawn(netns: &NetNs, args: &[&str]) -> Result<NsProcess> {
        let what = format!("`{}` in netns {}", args.join(" "), netns.name());
        let child = Command::new("nsenter")
            .arg(format!("--net={}", netns.path().display()))
            .arg("--")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        Ok(NsProcess { what, child })
    }

    /// Fails if the process already exited (e.g. the port was taken).
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early with {status}", self.what);
        }
        Ok(())
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        // SAFETY: signalling our own, not yet reaped, child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Has the kernel send `signal` to the program `command` starts when the
/// spawning thread exits: a bench killed without running `Drop` takes it
/// along. (`nsenter` execs the program in place, so this reaches it too.)
pub fn stop_with_parent(command: &mut Command, signal: libc::c_int) {
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to signal
    // the child when the spawning thread exits.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, signal);
            Ok(())
        });
    }
}

/// Runs `args` inside `netns` to completion; fails unless it exits 0, with
/// everything it printed.
pub fn run_in(netns: &NetNs, args: &[&str]) -> Result<Output> {
    let out = netns.exec(args)?;
    if !out.status.success() {
        bail!(
            "`{}` in netns {} failed ({}): {}{}",
            args.join(" "),
            netns.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(out)
}

/// Runs a host command, feeding `stdin`; fails unless it exits 0.
pub fn run_with_stdin(program: &str, args: &[&str], stdin: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    child
        .stdin
        .take()
        .context("no stdin pipe")?
        .write_all(stdin.as_bytes())
        .with_context(|| format!("cannot feed {program}"))?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

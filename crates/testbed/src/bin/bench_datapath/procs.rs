//! Long-running tools (sockperf and iperf3 servers) inside a namespace,
//! stopped on drop, and one-shot tools run to completion.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use testbed::NetNs;

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

/// Runs `args` inside `netns` to completion; fails unless it exits 0.
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

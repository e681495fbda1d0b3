//! A program running in the background inside a pod's network namespace (a
//! gRPC server, a Kafka mock broker, a socat relay), for tests that need a
//! real third-party server or relay next to the agent.
//!
//! Started with `nsenter --net=` (which joins the namespace and execs the
//! program, so the child is the program itself), in a process group of its
//! own so that the workers it forks (socat's `fork`) go with it. Its stdout
//! and stderr are appended to a log file the test polls for readiness; its
//! stdin stays open until drop, because some programs (an idle `kcat -P`
//! hosting a mock cluster) end at end-of-file.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns::NetNs;

const POLL: Duration = Duration::from_millis(20);
const LOG_TAIL_BYTES: usize = 4 * 1024;

/// A running program; its process group is killed (SIGKILL) on drop.
pub struct BackgroundProcess {
    child: Child,
    /// Set once the child has been reaped: its pid (the group id) may then
    /// belong to someone else.
    exited: bool,
    command_line: String,
    log: PathBuf,
}

impl BackgroundProcess {
    /// Runs `args` (program first) inside `netns`, output appended to `log`.
    ///
    /// The program also gets `PR_SET_PDEATHSIG`: it is killed when the
    /// thread that spawned it exits, so a test killed without running
    /// `Drop` leaves nothing behind. Spawn it from the test's own thread.
    pub fn spawn(netns: &NetNs, args: &[&str], log: &Path) -> Result<BackgroundProcess> {
        let command_line = args.join(" ");
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", netns.path().display()))
            .arg("--")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to
        // signal the child when the spawning thread exits.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start `{command_line}` in netns {}", netns.name()))?;
        Ok(BackgroundProcess {
            child,
            exited: false,
            command_line,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the program wrote so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Polls the log until `find` extracts something from it; fails with
    /// the log's tail when the program exits first or `timeout` passes.
    pub fn wait_for_log<T>(
        &mut self,
        timeout: Duration,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = find(&self.log()) {
                return Ok(found);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = true;
                bail!(
                    "`{}` exited with {status}; log tail:\n{}",
                    self.command_line,
                    self.log_tail()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "`{}` did not get ready within {timeout:?}; log tail:\n{}",
                    self.command_line,
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let mut start = log.len().saturating_sub(LOG_TAIL_BYTES);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_string()
    }
}

impl Drop for BackgroundProcess {
    fn drop(&mut self) {
        if self.exited {
            return;
        }
        // The group id is the child's pid (`process_group(0)`); it stays
        // ours until the child is reaped below.
        let group = self.child.id() as libc::pid_t;
        // SAFETY: plain syscall signalling the group this guard created.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

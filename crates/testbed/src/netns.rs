//! Named network namespaces (`/run/netns/NAME`) and running code inside one.
//!
//! Never `ip netns exec`: it remounts `/sys`, which hides bpffs. Commands go
//! through `nsenter --net=`, in-process work through `setns` on a dedicated
//! thread (the network namespace is per thread; sockets created there keep
//! it after the thread ends).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Output;

use anyhow::{bail, Context, Result};

use crate::cmd;

/// A namespace this process created; deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// `ip netns add NAME` (fails if it exists: it would not be ours).
    pub fn create(name: &str) -> Result<NetNs> {
        cmd::ip(&["netns", "add", name])
            .with_context(|| format!("cannot create network namespace {name}"))?;
        Ok(NetNs {
            name: name.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/NAME`, what `setns`, `nsenter` and the agent open.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `f` on a fresh thread that first joins this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        run_in(&self.path(), f)
    }

    /// `nsenter --net=PATH ARGS...`; the caller decides what a failure means.
    pub fn exec(&self, args: &[&str]) -> Result<Output> {
        let net = format!("--net={}", self.path().display());
        let mut full = vec![net.as_str(), "--"];
        full.extend_from_slice(args);
        cmd::output("nsenter", &full)
    }

    /// Like [`NetNs::exec`] but fails unless the command exits 0.
    pub fn exec_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.exec(args)?;
        if !out.status.success() {
            bail!(
                "`{}` in netns {} failed ({}): {}",
                args.join(" "),
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Sets a `net.*` sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec_ok(&["sysctl", "-q", "-w", &format!("{key}={value}")])
            .map(|_| ())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        cmd::run_ignoring_errors("ip", &["netns", "del", &self.name]);
    }
}

/// Runs `f` on a new thread that has joined the namespace at `path`.
pub fn run_in<T: Send>(path: &std::path::Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let ns = File::open(path)
        .with_context(|| format!("cannot open network namespace {}", path.display()))?;
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || -> Result<T> {
            // SAFETY: plain syscall on a valid fd; it only changes this
            // (short-lived, dedicated) thread's network namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                bail!(
                    "setns({}) failed: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
            }
            Ok(f())
        });
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

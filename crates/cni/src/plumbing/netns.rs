//! Running code inside the container's network namespace. The namespace is
//! per thread, so the work runs on a fresh thread that joins it with
//! `setns` and ends afterwards; the calling thread never changes namespace.
//! (Never `ip netns exec`: it remounts /sys and needs a named namespace.)

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{code, CniError};

/// Opens `path`; code 3 (container unknown) when it does not exist.
pub fn open(path: &Path) -> Result<File, CniError> {
    File::open(path).map_err(|e| {
        CniError::new(
            code::UNKNOWN_CONTAINER,
            format!(
                "cannot open the container's network namespace {}",
                path.display()
            ),
            format!("{e}; CNI_NETNS must name an existing network namespace"),
        )
    })
}

/// Runs `f` on a new thread inside the namespace `ns`.
pub fn run_in<T: Send>(
    ns: &File,
    path: &Path,
    f: impl FnOnce() -> Result<T, CniError> + Send,
) -> Result<T, CniError> {
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            // SAFETY: setns on a valid fd; it only moves this dedicated,
            // short-lived thread into the namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(CniError::plumbing(
                    format!("cannot enter network namespace {}", path.display()),
                    std::io::Error::last_os_error().to_string(),
                ));
            }
            f()
        });
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

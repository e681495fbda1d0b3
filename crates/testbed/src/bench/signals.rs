//! Ctrl-C and SIGTERM become a flag the bench checks between steps and
//! inside its load loops, so that an interrupted run still unwinds through
//! every `Drop` guard (agent, pods, veths, iptables rules, servers,
//! ip_forward) instead of dying on the spot.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores into an atomic, which is
    // async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Fails once a stop was requested; called between the bench's steps.
pub fn check() -> Result<()> {
    if stopped() {
        bail!("interrupted: cleaning up");
    }
    Ok(())
}

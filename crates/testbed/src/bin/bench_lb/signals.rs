//! Ctrl-C and SIGTERM become a flag checked between steps and inside the
//! load loops, so an interrupted run unwinds through every Drop guard
//! (iptables chains, agent, pods, ip_forward).

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores into an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

pub fn check() -> Result<()> {
    if stopped() {
        bail!("interrupted: cleaning up");
    }
    Ok(())
}

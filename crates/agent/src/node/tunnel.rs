//! The collect-metadata VXLAN device that carries pod traffic between
//! nodes, with the source identity as the VNI.

use std::process::Command;

use anyhow::{bail, Context};

/// Cilium's device name and port for its VXLAN overlay.
pub const DEVICE: &str = "cilium_vxlan";
pub const PORT: u16 = 8472;

/// Creates the device unless it exists, brings it up, returns its ifindex.
/// An existing device is kept: its pinned program and in-flight traffic
/// survive an agent restart.
pub fn ensure_device() -> anyhow::Result<u32> {
    if crate::netdev::ifindex(DEVICE).is_none() {
        ip(&[
            "link",
            "add",
            DEVICE,
            "type",
            "vxlan",
            "dstport",
            &PORT.to_string(),
            "external",
        ])?;
    }
    ip(&["link", "set", DEVICE, "up"])?;
    crate::netdev::ifindex(DEVICE)
        .with_context(|| format!("{DEVICE} vanished right after creation"))
}

pub(crate) fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

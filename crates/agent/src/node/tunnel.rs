//! The collect-metadata VXLAN device that carries pod traffic between
//! nodes, with the source identity as the VNI, its programs, and the routes
//! that send the node's own connections to remote pods into it.

use std::{net::IpAddr, process::Command};

use anyhow::{bail, Context};
use datapath::BpfRoot;

/// Cilium's device name and port for its VXLAN overlay.
pub const DEVICE: &str = "cilium_vxlan";
pub const PORT: u16 = 8472;

/// Sets the overlay up: the device with bpf_overlay. Returns the VXLAN
/// device's ifindex. (bpf_host, on the node's devices, takes most packets
/// from other nodes off the wire before they reach it: `host_device`.)
pub fn attach(root: &BpfRoot) -> anyhow::Result<u32> {
    let ifindex = ensure_device()?;
    datapath::overlay::attach(root, DEVICE)?;
    Ok(ifindex)
}

/// Detaches the overlay's program (`--tunnel-protocol disabled`).
pub fn detach(root: &BpfRoot) -> anyhow::Result<()> {
    datapath::overlay::detach(root)?;
    Ok(())
}

/// Creates the device unless it exists, brings it up, returns its ifindex.
/// An existing device is kept: its pinned program and in-flight traffic
/// survive an agent restart.
fn ensure_device() -> anyhow::Result<u32> {
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
    // No ARP: the device has no neighbours, cil_to_overlay sets each
    // packet's destination (a tunnel key) instead.
    ip(&["link", "set", DEVICE, "arp", "off", "up"])?;
    crate::netdev::ifindex(DEVICE)
        .with_context(|| format!("{DEVICE} vanished right after creation"))
}

/// Routes another node's pod CIDR (either family) into the overlay, from
/// this node's address of that family when it has one: the node's own
/// connections to pods there and the L7 proxy's upstreams on a client's
/// behalf get their tunnel key in cil_to_overlay. IPv6 goes out of the
/// device only once IPv6 is on there (a node may have it off by default).
pub fn route_pod_cidr(cidr: &str, src: Option<IpAddr>) -> anyhow::Result<()> {
    let family = family_of(cidr);
    if family == "-6" {
        enable_ipv6_on_device()?;
    }
    let mut args = vec![family, "route", "replace", cidr, "dev", DEVICE];
    let src = src.map(|ip| ip.to_string());
    if let Some(src) = &src {
        args.extend(["src", src.as_str()]);
    }
    ip(&args)
}

/// Removes what [`route_pod_cidr`] added; a route already gone is fine.
pub fn unroute_pod_cidr(cidr: &str) -> anyhow::Result<()> {
    match ip(&[family_of(cidr), "route", "del", cidr, "dev", DEVICE]) {
        Err(e) if e.to_string().contains("No such process") => Ok(()),
        other => other,
    }
}

fn family_of(cidr: &str) -> &'static str {
    if cidr.contains(':') {
        "-6"
    } else {
        "-4"
    }
}

fn enable_ipv6_on_device() -> anyhow::Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{DEVICE}/disable_ipv6");
    std::fs::write(&path, "0").with_context(|| format!("turning IPv6 on: {path}"))
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

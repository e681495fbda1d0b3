//! The collect-metadata VXLAN device that carries pod traffic between
//! nodes, with the source identity as the VNI, its programs, and the routes
//! that send the node's own connections to remote pods into it.

use std::{net::Ipv4Addr, process::Command};

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

/// Routes another node's pod CIDR into the overlay, from this node's
/// address: the node's own connections to pods there (the L7 proxy's
/// upstreams on a client's behalf) get their tunnel key in cil_to_overlay.
pub fn route_pod_cidr(cidr: &str, node_ip: Ipv4Addr) -> anyhow::Result<()> {
    ip(&[
        "route",
        "replace",
        cidr,
        "dev",
        DEVICE,
        "src",
        &node_ip.to_string(),
    ])
}

/// Removes what [`route_pod_cidr`] added; a route already gone is fine.
pub fn unroute_pod_cidr(cidr: &str) -> anyhow::Result<()> {
    match ip(&["route", "del", cidr, "dev", DEVICE]) {
        Err(e) if e.to_string().contains("No such process") => Ok(()),
        other => other,
    }
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

//! bpf_host at tc ingress of the node's devices: the one carrying the node
//! IP and any named with `--devices`. It serves NodePort, LoadBalancer and
//! external IP frontends to clients outside the cluster, gives the L7 proxy
//! the packets of connections it terminates on pods' behalf that arrive
//! from outside the node and, with the overlay, takes VXLAN packets for
//! local endpoints off the wire before the kernel's VXLAN path
//! (bpf/bpf_host.c).

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{bail, Context};
use datapath::{host::Overlay, BpfRoot};

/// Attaches bpf_host (replacing a previous agent's in place) to the device
/// with `node_ip` and to `extra` devices; `overlay` when the overlay is
/// on. IPv6 NodePort flows to other nodes' backends leave from `node_ip6`.
/// Devices it was on before and are not named now lose it.
pub fn attach(
    root: &BpfRoot,
    node_ip: Ipv4Addr,
    node_ip6: Option<Ipv6Addr>,
    extra: &[String],
    overlay: Option<Overlay>,
) -> anyhow::Result<()> {
    if let Some(missing) = extra.iter().find(|d| crate::netdev::ifindex(d).is_none()) {
        bail!("--devices: there is no device {missing:?} here");
    }
    let mut devices = extra.to_vec();
    match crate::netdev::device_with_address(node_ip) {
        Some(netdev) if !devices.contains(&netdev) => devices.insert(0, netdev),
        Some(_) => {}
        None => eprintln!(
            "level=info msg=\"node IP {node_ip} is on no device here: bpf_host runs only on --devices ({})\"",
            extra.join(",")
        ),
    }
    if devices.is_empty() {
        datapath::host::detach(root)?;
        return Ok(());
    }
    datapath::host::HostProgram::load_dual_stack(root, node_ip, node_ip6, overlay)?
        .attach(root, &devices)
        .with_context(|| format!("attaching bpf_host to {}", devices.join(",")))
}

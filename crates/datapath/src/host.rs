//! The node's devices: bpf_host at their tc ingress, which serves
//! NodePort and other external service frontends, hands the L7 proxy the
//! packets of its connections on pods' behalf and takes VXLAN packets for
//! local endpoints straight off the wire (bpf/bpf_host.c says why), through
//! a pinned link per device under `netdev/`.

use std::net::{Ipv4Addr, Ipv6Addr};

use aya::programs::TcAttachType;

use crate::{
    links::{self, attach_pinned, classifier, program_error, remove_pin},
    object::BPF_HOST,
    BpfRoot, DatapathError,
};

pub const FROM_NETDEV: &str = "cil_from_netdev";

/// bpf_host loaded for this node.
pub struct HostProgram {
    ebpf: aya::Ebpf,
}

/// The node's VXLAN overlay: the UDP port it receives on and its device.
#[derive(Debug, Clone, Copy)]
pub struct Overlay {
    pub port: u16,
    pub ifindex: u32,
}

impl HostProgram {
    /// Loads bpf_host against the shared maps for the node at `node_ip`;
    /// with an overlay, for VXLAN packets to `node_ip`:`overlay.port`, and
    /// NodePort flows to other nodes' backends leave through its device.
    pub fn load(
        root: &BpfRoot,
        node_ip: Ipv4Addr,
        overlay: Option<Overlay>,
    ) -> Result<Self, DatapathError> {
        Self::load_dual_stack(root, node_ip, None, overlay)
    }

    /// [`HostProgram::load`] for a node that also has the IPv6 address
    /// `node_ip6`: IPv6 NodePort flows to other nodes' backends leave from
    /// it. Without one, IPv6 external frontends reach local backends only.
    pub fn load_dual_stack(
        root: &BpfRoot,
        node_ip: Ipv4Addr,
        node_ip6: Option<Ipv6Addr>,
        overlay: Option<Overlay>,
    ) -> Result<Self, DatapathError> {
        let node_ip = u32::from(node_ip).to_be();
        let node_ip6 = node_ip6.unwrap_or(Ipv6Addr::UNSPECIFIED).octets();
        let vxlan_port = overlay.map_or(0, |o| o.port);
        let encap_ifindex = overlay.map_or(0, |o| o.ifindex);
        let mut ebpf = crate::object::loader()
            .default_map_pin_directory(root.dir())
            .override_global("NODE_IP", &node_ip, true)
            .override_global("NODE_IP6", &node_ip6, true)
            .override_global("VXLAN_PORT", &vxlan_port, true)
            .override_global("ENCAP_IFINDEX", &encap_ifindex, true)
            .load(BPF_HOST)
            .map_err(|e| DatapathError::Load {
                what: "host device".into(),
                source: Box::new(e),
            })?;
        classifier(&mut ebpf, FROM_NETDEV)?
            .load()
            .map_err(|e| program_error(FROM_NETDEV, e))?;
        Ok(HostProgram { ebpf })
    }

    /// Attaches at tc ingress of each of `devices` (replacing a previous
    /// agent's program in place) and detaches it from any other device it
    /// was on.
    pub fn attach(&mut self, root: &BpfRoot, devices: &[String]) -> Result<(), DatapathError> {
        let prog = classifier(&mut self.ebpf, FROM_NETDEV)?;
        for ifname in devices {
            let pin = links_dir(root).join(ifname);
            attach_pinned(prog, FROM_NETDEV, ifname, TcAttachType::Ingress, &pin)?;
        }
        detach_except(root, devices)
    }

    /// File descriptor of the loaded program (for BPF_PROG_TEST_RUN).
    pub fn program_fd(&self) -> Result<std::os::fd::BorrowedFd<'_>, DatapathError> {
        links::program_fd(&self.ebpf, FROM_NETDEV)
    }
}

/// Detaches bpf_host from every device (no overlay). Idempotent.
pub fn detach(root: &BpfRoot) -> Result<(), DatapathError> {
    detach_except(root, &[])
}

fn links_dir(root: &BpfRoot) -> std::path::PathBuf {
    root.dir().join("netdev")
}

/// Removes the pinned links of devices other than `keep`.
fn detach_except(root: &BpfRoot, keep: &[String]) -> Result<(), DatapathError> {
    let Ok(entries) = std::fs::read_dir(links_dir(root)) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if !keep.iter().any(|k| entry.file_name() == k.as_str()) {
            remove_pin(&entry.path())?;
        }
    }
    Ok(())
}

//! One endpoint's instance of bpf_lxc: loaded with the endpoint's constants
//! and policy map, attached at tc on its host-side veth, links pinned so the
//! programs outlive the agent process. Its policy program, which local
//! senders and the overlay tail-call, sits in the pinned `cilium_call_policy`
//! at the endpoint's id.

use std::net::Ipv6Addr;

use aya::maps::ProgramArray;
use aya::programs::TcAttachType;

use crate::{
    links::{self, attach_pinned, classifier, program_error, remove_pin},
    maps,
    object::BPF_LXC,
    BpfRoot, DatapathError,
};

pub const FROM_CONTAINER: &str = "cil_from_container";
pub const TO_CONTAINER: &str = "cil_to_container";
/// cil_to_container's enforcement for packets from local endpoints and the
/// overlay (tail-called), which it delivers straight into the container's
/// namespace.
pub const LXC_POLICY: &str = "cil_lxc_policy";

/// What an endpoint's programs are loaded with besides its id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointConfig {
    /// The node's VXLAN device (0: no overlay).
    pub encap_ifindex: u32,
    /// The endpoint's IPv6 gateway (the node's router address): the
    /// programs answer the container's neighbour solicitations for it.
    /// None: no IPv6 gateway, solicitations go unanswered.
    pub router_ip6: Option<Ipv6Addr>,
    /// The MAC of the endpoint's host-side veth, which the answer names.
    pub host_mac: [u8; 6],
}

/// The loaded programs of one endpoint.
pub struct EndpointProgram {
    ebpf: aya::Ebpf,
    endpoint_id: u16,
}

impl EndpointProgram {
    /// Loads the programs into the kernel, sharing the pinned maps under
    /// `root` and pinning the endpoint's own policy map. `encap_ifindex` is
    /// the node's VXLAN device (0: no overlay). A policy map pinned with
    /// another size than `--bpf-policy-map-max` is rebuilt at that size with
    /// the same entries before the new programs use it.
    pub fn load(
        root: &BpfRoot,
        endpoint_id: u16,
        encap_ifindex: u32,
    ) -> Result<Self, DatapathError> {
        let config = EndpointConfig {
            encap_ifindex,
            ..Default::default()
        };
        Self::load_with(root, endpoint_id, &config)
    }

    /// [`load`](Self::load) with every setting, IPv6's included.
    pub fn load_with(
        root: &BpfRoot,
        endpoint_id: u16,
        config: &EndpointConfig,
    ) -> Result<Self, DatapathError> {
        let encap_ifindex = config.encap_ifindex;
        let router_ip6 = config.router_ip6.unwrap_or(Ipv6Addr::UNSPECIFIED).octets();
        let policy_pin = root.policy_map(endpoint_id);
        let resize = maps::policy_resize::prepare(&policy_pin)?;
        let load_pin = resize
            .as_ref()
            .map_or(policy_pin.as_path(), |r| r.aside.as_path());
        let lxc_id = endpoint_id as u32;
        let loaded = crate::object::loader()
            .default_map_pin_directory(root.dir())
            .map_pin_path(maps::POLICY_MAP, load_pin)
            .override_global("LXC_ID", &lxc_id, true)
            .override_global("ENCAP_IFINDEX", &encap_ifindex, true)
            .override_global("ROUTER_IP6", &router_ip6, true)
            .override_global("HOST_MAC", &config.host_mac, true)
            .load(BPF_LXC)
            .map_err(|e| DatapathError::Load {
                what: format!("endpoint {endpoint_id}"),
                source: Box::new(e),
            });
        let mut ebpf = match resize {
            Some(resize) => resize.finish(loaded, &policy_pin)?,
            None => loaded?,
        };
        for name in [FROM_CONTAINER, TO_CONTAINER, LXC_POLICY] {
            classifier(&mut ebpf, name)?
                .load()
                .map_err(|e| program_error(name, e))?;
        }
        Ok(EndpointProgram { ebpf, endpoint_id })
    }

    /// Attaches at tc ingress (from-container) and egress (to-container) of
    /// the host-side veth, then installs the policy program's tail call.
    /// Where links are already pinned (a previous incarnation), the
    /// programs are swapped atomically in place.
    pub fn attach(&mut self, root: &BpfRoot, host_ifname: &str) -> Result<(), DatapathError> {
        let dir = root.endpoint_links(self.endpoint_id);
        for (name, attach_type) in [
            (FROM_CONTAINER, TcAttachType::Ingress),
            (TO_CONTAINER, TcAttachType::Egress),
        ] {
            let prog = classifier(&mut self.ebpf, name)?;
            attach_pinned(prog, name, host_ifname, attach_type, &dir.join(name))?;
        }
        self.install_policy_call()
    }

    /// Makes the policy program the tail call for this endpoint in
    /// `cilium_call_policy`.
    pub fn install_policy_call(&mut self) -> Result<(), DatapathError> {
        let policy = classifier(&mut self.ebpf, LXC_POLICY)?
            .fd()
            .map_err(|e| program_error(LXC_POLICY, e))?
            .try_clone()
            .map_err(|e| DatapathError::Syscall(format!("{LXC_POLICY}: {e}")))?;
        let map = self
            .ebpf
            .map_mut(maps::CALL_POLICY_MAP)
            .ok_or_else(|| DatapathError::Syscall(format!("no map {}", maps::CALL_POLICY_MAP)))?;
        ProgramArray::try_from(map)
            .and_then(|mut calls| calls.set(self.endpoint_id.into(), &policy, 0))
            .map_err(|e| DatapathError::map(maps::CALL_POLICY_MAP, e))
    }

    /// File descriptor of a loaded program (for BPF_PROG_TEST_RUN).
    pub fn program_fd(&self, name: &str) -> Result<std::os::fd::BorrowedFd<'_>, DatapathError> {
        links::program_fd(&self.ebpf, name)
    }
}

/// Detaches an endpoint's programs and removes its pins. Idempotent.
pub fn remove_endpoint(root: &BpfRoot, endpoint_id: u16) -> Result<(), DatapathError> {
    // Senders then redirect to the veth, where nothing is attached.
    if let Ok(map) = maps::open_pinned(root, maps::CALL_POLICY_MAP) {
        if let Ok(mut calls) = ProgramArray::try_from(map) {
            let _ = calls.clear_index(&endpoint_id.into());
        }
    }
    let dir = root.endpoint_links(endpoint_id);
    for path in [
        dir.join(FROM_CONTAINER),
        dir.join(TO_CONTAINER),
        root.policy_map(endpoint_id),
        maps::policy_resize::aside(&root.policy_map(endpoint_id)),
    ] {
        remove_pin(&path)?;
    }
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}

/// Endpoint ids that have pins under `root` (programs attached or a policy
/// map), whether or not anyone remembers them.
pub fn pinned_endpoints(root: &BpfRoot) -> Vec<u16> {
    let mut ids: Vec<u16> = std::fs::read_dir(root.dir().join("endpoints"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .chain(
            std::fs::read_dir(root.dir())
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_prefix("cilium_policy_")?
                        .parse()
                        .ok()
                }),
        )
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

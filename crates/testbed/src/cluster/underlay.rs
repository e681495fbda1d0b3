//! The network between the nodes: a bridge in the root namespace with an
//! address (the "switch", and where etcd listens), and per node a veth whose
//! root side is a bridge port and whose other side is the node's `eth0`
//! carrying the node IP. MTU 1550 throughout, so that a full 1500-byte pod
//! packet still fits once VXLAN adds its 50 bytes.

use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};

use crate::cmd;
use crate::netns::NetNs;

/// Pod MTU (1500) plus the VXLAN overhead (outer Ethernet, IP, UDP, VXLAN).
pub const MTU: &str = "1550";

/// The node-side interface name.
pub const NODE_IFNAME: &str = "eth0";

/// A /24 nobody else on this machine uses: `192.168.<100+slot>.0/24` for
/// the underlay, `10.<100+slot>.<node>.0/24` for the pods of each node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addressing {
    slot: u8,
}

/// How many run slots exist (one /24 each).
const SLOTS: u32 = 100;

impl Addressing {
    /// The first slot, counting from `seed`, whose underlay /24 is neither
    /// routed nor addressed in the root namespace (another run's bridge).
    pub fn pick(seed: u32) -> Result<Addressing> {
        let routes = cmd::ip(&["-4", "route", "show", "table", "all"])?;
        let addrs = cmd::ip(&["-4", "-o", "addr", "show"])?;
        for i in 0..SLOTS {
            let slot = ((seed + i) % SLOTS) as u8;
            let a = Addressing { slot };
            let net = format!("192.168.{}.", a.third_octet());
            if !routes.contains(&net) && !addrs.contains(&net) {
                return Ok(a);
            }
        }
        bail!("every underlay /24 in 192.168.100.0-199.0 is in use on this machine")
    }

    fn third_octet(self) -> u8 {
        100 + self.slot
    }

    /// The bridge's address, the nodes' default gateway and etcd's address.
    pub fn bridge_ip(self) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, self.third_octet(), 1)
    }

    /// Node `index`'s underlay address.
    pub fn node_ip(self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, self.third_octet(), 10 + index as u8)
    }

    /// Node `index`'s IPv6 underlay address, on a dual-stack underlay:
    /// `fd00:c0a8:<third octet>::<10 + index>` in a /64 of the run's own.
    pub fn node_ip6(self, index: usize) -> std::net::Ipv6Addr {
        let third = u16::from(self.third_octet());
        std::net::Ipv6Addr::new(0xfd00, 0xc0a8, third, 0, 0, 0, 0, 10 + index as u16)
    }

    /// The address of a host on the underlay that is no node.
    pub fn outside_ip(self) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, self.third_octet(), 200)
    }

    /// That host's IPv6 address, on a dual-stack underlay (the nodes' /64).
    pub fn outside_ip6(self) -> std::net::Ipv6Addr {
        let third = u16::from(self.third_octet());
        std::net::Ipv6Addr::new(0xfd00, 0xc0a8, third, 0, 0, 0, 0, 200)
    }

    /// Node `index`'s pod CIDR (`--ipv4-range`).
    pub fn pod_cidr(self, index: usize) -> String {
        format!("10.{}.{}.0/24", self.third_octet(), index)
    }

    /// A CIDR covering every node's pod CIDR (`--cluster-pool-ipv4-cidr`).
    pub fn cluster_pool(self) -> String {
        format!("10.{}.0.0/16", self.third_octet())
    }
}

/// The bridge; deleted on drop (its ports go with the node namespaces).
#[derive(Debug)]
pub struct Bridge {
    name: String,
}

impl Bridge {
    pub fn create(name: &str, ip: Ipv4Addr) -> Result<Bridge> {
        cmd::ip(&["link", "add", name, "type", "bridge"])
            .with_context(|| format!("cannot create bridge {name}"))?;
        let bridge = Bridge {
            name: name.to_string(),
        };
        let cidr = format!("{ip}/24");
        for args in [
            vec!["link", "set", name, "mtu", MTU],
            vec!["addr", "add", &cidr, "dev", name],
            vec!["link", "set", name, "up"],
        ] {
            cmd::ip(&args).with_context(|| format!("configuring bridge {name}"))?;
        }
        // IPv6 would only add router solicitations and DAD noise.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
        Ok(bridge)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        cmd::run_ignoring_errors("ip", &["link", "del", "dev", &self.name]);
    }
}

/// Plugs `node` into the bridge: root side `port` (a bridge port), node side
/// [`NODE_IFNAME`] with `ip/24` and a default route via the bridge.
pub fn attach_node(
    bridge: &Bridge,
    port: &str,
    node: &NetNs,
    ip: Ipv4Addr,
    gateway: Ipv4Addr,
) -> Result<()> {
    let ns = node.name();
    cmd::ip(&[
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "name",
        NODE_IFNAME,
        "netns",
        ns,
    ])
    .with_context(|| format!("cannot create underlay veth {port} for node netns {ns}"))?;
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{port}/disable_ipv6"), "1");
    let cidr = format!("{ip}/24");
    let gw = gateway.to_string();
    for args in [
        vec!["link", "set", port, "mtu", MTU],
        vec!["link", "set", port, "master", bridge.name()],
        vec!["link", "set", port, "up"],
        vec!["-n", ns, "link", "set", "lo", "up"],
        vec!["-n", ns, "link", "set", NODE_IFNAME, "mtu", MTU],
        vec!["-n", ns, "addr", "add", &cidr, "dev", NODE_IFNAME],
        vec!["-n", ns, "link", "set", NODE_IFNAME, "up"],
        vec!["-n", ns, "route", "add", "default", "via", &gw],
    ] {
        cmd::ip(&args)
            .with_context(|| format!("plugging node netns {ns} into {}", bridge.name()))?;
    }
    Ok(())
}

/// Gives the node's underlay interface an IPv6 address too (a /64 on the
/// bridge's segment, no duplicate address detection: the address is the
/// run's own).
pub fn add_node_ipv6(node: &NetNs, ip: std::net::Ipv6Addr) -> Result<()> {
    // lo too: the node's own IPv6 address is delivered through it.
    node.sysctl("net.ipv6.conf.lo.disable_ipv6", "0")?;
    node.sysctl(&format!("net.ipv6.conf.{NODE_IFNAME}.disable_ipv6"), "0")?;
    node.sysctl(&format!("net.ipv6.conf.{NODE_IFNAME}.accept_ra"), "0")?;
    let cidr = format!("{ip}/64");
    cmd::ip(&[
        "-n",
        node.name(),
        "-6",
        "addr",
        "add",
        &cidr,
        "dev",
        NODE_IFNAME,
        "nodad",
    ])
    .with_context(|| format!("adding {cidr} to node netns {}", node.name()))?;
    Ok(())
}

/// Takes the node's port off the wire (carrier down on both ends) or puts
/// it back.
pub fn set_port_up(port: &str, up: bool) -> Result<()> {
    cmd::ip(&["link", "set", port, if up { "up" } else { "down" }])
        .with_context(|| {
            format!(
                "cannot set underlay port {port} {}",
                if up { "up" } else { "down" }
            )
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addressing_per_slot() {
        let a = Addressing { slot: 7 };
        assert_eq!(a.bridge_ip(), Ipv4Addr::new(192, 168, 107, 1));
        assert_eq!(a.node_ip(2), Ipv4Addr::new(192, 168, 107, 12));
        assert_eq!(a.pod_cidr(1), "10.107.1.0/24");
        assert_eq!(a.cluster_pool(), "10.107.0.0/16");
    }
}

//! Pods the agent does not know: a namespace with a veth, a /32 address and
//! a default route via a gateway with a static neighbour, like the
//! testbed's pods but with no BPF program on the host side. The server and
//! the kube-proxy variant's client live here, so iptables sees their
//! traffic in the host's forwarding path.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use testbed::{cmd, NetNs};

pub struct PlainPod {
    // Field order is drop order: the host link first, the namespace last.
    _host_link: LinkGuard,
    netns: NetNs,
    host_ifname: String,
}

struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        // Deleting one end removes the pair, its routes and neighbours.
        cmd::run_ignoring_errors("ip", &["link", "del", "dev", &self.0]);
    }
}

impl PlainPod {
    pub fn create(
        netns_name: &str,
        host_ifname: &str,
        ip: Ipv4Addr,
        gateway: Ipv4Addr,
    ) -> Result<PlainPod> {
        let netns = NetNs::create(netns_name)?;
        netns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
        netns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
        let ns = netns.name().to_string();
        cmd::ip(&[
            "link",
            "add",
            host_ifname,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ])
        .with_context(|| format!("plain pod {netns_name}: veth {host_ifname}"))?;
        let host_link = LinkGuard(host_ifname.to_string());
        cmd::ip(&["link", "set", host_ifname, "up"])?;
        let host_mac = cmd::link_info(None, host_ifname)?.mac;
        let cidr = format!("{ip}/32");
        let gw = gateway.to_string();
        for args in [
            vec!["-n", &ns, "link", "set", "lo", "up"],
            vec!["-n", &ns, "link", "set", "eth0", "up"],
            vec!["-n", &ns, "addr", "add", &cidr, "dev", "eth0"],
            vec![
                "-n", &ns, "route", "add", &gw, "dev", "eth0", "scope", "link",
            ],
            vec![
                "-n", &ns, "route", "add", "default", "via", &gw, "dev", "eth0",
            ],
            vec![
                "-n",
                &ns,
                "neigh",
                "replace",
                &gw,
                "lladdr",
                &host_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        ] {
            cmd::ip(&args).with_context(|| format!("plain pod {netns_name}: eth0"))?;
        }
        let pod_mac = cmd::link_info(Some(&ns), "eth0")?.mac;
        cmd::ip(&["route", "replace", &cidr, "dev", host_ifname])?;
        cmd::ip(&[
            "neigh",
            "replace",
            &ip.to_string(),
            "lladdr",
            &pod_mac,
            "dev",
            host_ifname,
            "nud",
            "permanent",
        ])?;
        // Many short connections: the whole port range, and no waiting.
        netns.sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
        Ok(PlainPod {
            _host_link: host_link,
            netns,
            host_ifname: host_ifname.to_string(),
        })
    }

    pub fn namespace(&self) -> &NetNs {
        &self.netns
    }

    pub fn host_ifname(&self) -> &str {
        &self.host_ifname
    }
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// `net.ipv4.ip_forward=1` for the run; the previous value comes back on drop.
pub struct HostForwarding {
    previous: String,
}

impl HostForwarding {
    pub fn enable() -> Result<HostForwarding> {
        let previous = std::fs::read_to_string(IP_FORWARD)
            .with_context(|| format!("cannot read {IP_FORWARD}"))?
            .trim()
            .to_string();
        std::fs::write(IP_FORWARD, "1").with_context(|| format!("cannot write {IP_FORWARD}"))?;
        Ok(HostForwarding { previous })
    }
}

impl Drop for HostForwarding {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(IP_FORWARD, &self.previous) {
            eprintln!("cannot restore {IP_FORWARD} to {}: {e}", self.previous);
        }
    }
}

//! Pods the agent does not know, for the benches' baselines: a namespace
//! with a veth, a /32 address and a default route via a gateway with a
//! static neighbour, plumbed like the testbed's pods but with no BPF program
//! on the host side, so the host's routing (and iptables) forwards their
//! traffic. The host needs `net.ipv4.ip_forward=1` (see
//! [`SysctlOverride`](super::sysctl_override::SysctlOverride)).
//! [`PlainPod6`] is the same for IPv6 alone (`/128`, static neighbours,
//! `net.ipv6.conf.all.forwarding=1`).

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result};

use crate::{cmd, NetNs};

/// A pod without an agent: dropped in reverse order of creation.
pub struct PlainPod {
    // Field order is drop order: the host link first, the namespace last.
    _host_link: LinkGuard,
    netns: NetNs,
    host_ifname: String,
    ip: Ipv4Addr,
}

struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        // Deleting one end removes the pair, its routes and neighbours.
        cmd::run_ignoring_errors("ip", &["link", "del", "dev", &self.0]);
    }
}

/// The veth `host_ifname` on the host, its peer `eth0` in `ns`; the guard
/// deletes the pair.
fn add_veth(netns_name: &str, ns: &str, host_ifname: &str) -> Result<LinkGuard> {
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
        ns,
    ])
    .with_context(|| format!("plain pod {netns_name}: veth {host_ifname}"))?;
    Ok(LinkGuard(host_ifname.to_string()))
}

/// `ip OPTIONS neigh replace IP lladdr MAC dev DEV nud permanent`, OPTIONS
/// being `-n NS` and/or `-6`: a neighbour never resolved while measuring.
fn static_neighbour(options: &[&str], ip: &str, mac: &str, dev: &str) -> Result<()> {
    let mut args = options.to_vec();
    args.extend([
        "neigh",
        "replace",
        ip,
        "lladdr",
        mac,
        "dev",
        dev,
        "nud",
        "permanent",
    ]);
    cmd::ip(&args).map(|_| ())
}

impl PlainPod {
    /// IPv6 is off on both ends: no router solicitations or DAD on the
    /// link while something is measured.
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
        let host_link = add_veth(netns_name, &ns, host_ifname)?;
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{host_ifname}/disable_ipv6"),
            "1",
        );
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
        ] {
            cmd::ip(&args).with_context(|| format!("plain pod {netns_name}: eth0"))?;
        }
        static_neighbour(&["-n", &ns], &gw, &host_mac, "eth0")
            .with_context(|| format!("plain pod {netns_name}: eth0"))?;
        let pod_mac = cmd::link_info(Some(&ns), "eth0")?.mac;
        cmd::ip(&["route", "replace", &cidr, "dev", host_ifname])?;
        // Static, like the gateway inside the pod: no ARP in any measurement.
        static_neighbour(&[], &ip.to_string(), &pod_mac, host_ifname)?;
        Ok(PlainPod {
            _host_link: host_link,
            netns,
            host_ifname: host_ifname.to_string(),
            ip,
        })
    }

    pub fn namespace(&self) -> &NetNs {
        &self.netns
    }

    pub fn host_ifname(&self) -> &str {
        &self.host_ifname
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }
}

/// An IPv6-only pod without an agent, plumbed like [`PlainPod`]: `/128`
/// without duplicate address detection, the gateway a static neighbour (no
/// neighbour discovery in any measurement, as no ARP for IPv4), no router
/// solicitations; on the host a `/128` route and a static neighbour.
pub struct PlainPod6 {
    _host_link: LinkGuard,
    netns: NetNs,
    ip: Ipv6Addr,
}

impl PlainPod6 {
    pub fn create(
        netns_name: &str,
        host_ifname: &str,
        ip: Ipv6Addr,
        gateway: Ipv6Addr,
    ) -> Result<PlainPod6> {
        let netns = NetNs::create(netns_name)?;
        for scope in ["all", "default"] {
            netns.sysctl(&format!("net.ipv6.conf.{scope}.accept_ra"), "0")?;
            netns.sysctl(&format!("net.ipv6.conf.{scope}.router_solicitations"), "0")?;
            netns.sysctl(&format!("net.ipv6.conf.{scope}.accept_dad"), "0")?;
        }
        let ns = netns.name().to_string();
        let host_link = add_veth(netns_name, &ns, host_ifname)?;
        for (key, value) in [
            ("disable_ipv6", "0"),
            ("accept_dad", "0"),
            ("accept_ra", "0"),
        ] {
            let _ = std::fs::write(
                format!("/proc/sys/net/ipv6/conf/{host_ifname}/{key}"),
                value,
            );
        }
        cmd::ip(&["link", "set", host_ifname, "up"])?;
        let host_mac = cmd::link_info(None, host_ifname)?.mac;
        let cidr = format!("{ip}/128");
        let gw = gateway.to_string();
        for args in [
            vec!["-n", &ns, "link", "set", "lo", "up"],
            vec!["-n", &ns, "link", "set", "eth0", "up"],
            vec![
                "-n", &ns, "-6", "addr", "add", &cidr, "dev", "eth0", "nodad",
            ],
            vec!["-n", &ns, "-6", "route", "add", &gw, "dev", "eth0"],
            vec![
                "-n", &ns, "-6", "route", "add", "default", "via", &gw, "dev", "eth0",
            ],
        ] {
            cmd::ip(&args).with_context(|| format!("plain pod {netns_name}: eth0"))?;
        }
        static_neighbour(&["-n", &ns, "-6"], &gw, &host_mac, "eth0")
            .with_context(|| format!("plain pod {netns_name}: eth0"))?;
        let pod_mac = cmd::link_info(Some(&ns), "eth0")?.mac;
        cmd::ip(&["-6", "route", "replace", &cidr, "dev", host_ifname])?;
        static_neighbour(&["-6"], &ip.to_string(), &pod_mac, host_ifname)?;
        Ok(PlainPod6 {
            _host_link: host_link,
            netns,
            ip,
        })
    }

    pub fn namespace(&self) -> &NetNs {
        &self.netns
    }

    pub fn ip(&self) -> Ipv6Addr {
        self.ip
    }
}

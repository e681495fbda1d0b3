//! Addresses outside the cluster that pods can reach: plain network
//! namespaces (no endpoint, no BPF) each joined to the host by a veth, the
//! host routing between them and the pods. Used for `world`, CIDR and
//! `ipBlock` rules, which never match pods. Every outside host has an IPv4
//! and an IPv6 address, like the dual-stack pods.
//!
//! Routing between pods and these namespaces needs `net.ipv4.ip_forward=1`
//! and `net.ipv6.conf.all.forwarding=1` in the host namespace;
//! [`ForwardingGuard`] turns both on and restores the previous values once
//! the last guard of this process is gone.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use crate::netns::NetNs;
use crate::traffic::{TcpServer, UdpServer};
use crate::{cmd, unique};

const FORWARDING_SYSCTLS: [&str; 2] = [
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/ipv6/conf/all/forwarding",
];

/// Guards alive in this process, and the values found before the first.
static FORWARDING: Mutex<(usize, Vec<(&str, String)>)> = Mutex::new((0, Vec::new()));

/// Keeps IPv4 and IPv6 forwarding on while it lives.
pub struct ForwardingGuard(());

impl ForwardingGuard {
    pub fn enable() -> Result<ForwardingGuard> {
        let mut state = FORWARDING.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == 0 {
            for path in FORWARDING_SYSCTLS {
                let before =
                    std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
                std::fs::write(path, "1").with_context(|| format!("cannot write {path}"))?;
                state.1.push((path, before.trim().to_string()));
            }
        }
        state.0 += 1;
        Ok(ForwardingGuard(()))
    }
}

impl Drop for ForwardingGuard {
    fn drop(&mut self) {
        let mut state = FORWARDING.lock().unwrap_or_else(|e| e.into_inner());
        state.0 -= 1;
        if state.0 == 0 {
            for (path, before) in state.1.drain(..) {
                let _ = std::fs::write(path, before);
            }
        }
    }
}

/// One outside host: a namespace with `eth0` at `address` and `address6`, a
/// veth to the host whose host side holds `gateway` and `gateway6`, and a
/// TCP and a UDP server (on both families).
pub struct ExternalHost {
    // Servers first: they must stop before their namespace goes.
    _tcp: TcpServer,
    _udp: UdpServer,
    host_ifname: String,
    netns: NetNs,
    pub address: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub address6: Ipv6Addr,
    pub gateway6: Ipv6Addr,
}

impl ExternalHost {
    pub fn netns(&self) -> &NetNs {
        &self.netns
    }
}

impl Drop for ExternalHost {
    fn drop(&mut self) {
        cmd::run_ignoring_errors("ip", &["link", "del", "dev", &self.host_ifname]);
    }
}

/// The outside world of one fixture: `192.168.N.0/24`, split into /28s, one
/// per external host (`.10` in the first, `.20` in the second, ...), and
/// `2001:db8:ce:N::/64`, split into /112s the same way (`::10`, `::1:20`, ...).
pub struct Outside {
    pub hosts: Vec<ExternalHost>,
    pub network: String,
    pub network6: String,
}

impl Outside {
    /// `count` (≤ 15) hosts serving TCP `tcp_port` and UDP `udp_port`, in a
    /// /24 no route of this node already uses.
    pub fn create(count: usize, tcp_port: u16, udp_port: u16) -> Result<Outside> {
        let third = free_subnet()?;
        let network = format!("192.168.{third}.0/24");
        let net6 =
            |i: u16, host: u16| Ipv6Addr::new(0x2001, 0xdb8, 0xce, third.into(), 0, 0, i, host);
        let mut hosts = Vec::new();
        for i in 0..count as u8 {
            let base = 16 * i;
            let v4 = (
                Ipv4Addr::new(192, 168, third, base + 1),
                Ipv4Addr::new(192, 168, third, 10 * (i + 1)),
            );
            let v6 = (net6(i.into(), 1), net6(i.into(), u16::from(0x10 * (i + 1))));
            hosts.push(external_host(v4, v6, tcp_port, udp_port)?);
        }
        Ok(Outside {
            hosts,
            network,
            network6: format!("{}/64", net6(0, 0)),
        })
    }
}

/// `v4` and `v6` are (gateway, address) pairs.
fn external_host(
    v4: (Ipv4Addr, Ipv4Addr),
    v6: (Ipv6Addr, Ipv6Addr),
    tcp_port: u16,
    udp_port: u16,
) -> Result<ExternalHost> {
    let ((gateway, address), (gateway6, address6)) = (v4, v6);
    let (pid, n) = unique::next_pair();
    let netns = NetNs::create(&unique::netns_name(pid, n, "external"))?;
    let host_ifname = format!("cxt{:06x}{:03x}", pid & 0xff_ffff, n & 0xfff);
    cmd::ip(&[
        "link",
        "add",
        &host_ifname,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        netns.name(),
    ])
    .with_context(|| format!("creating veth {host_ifname} to the external namespace"))?;
    // From here on the guard deletes the link and the namespace.
    let ns = netns.name().to_string();
    let partial = PartialHost {
        host_ifname: host_ifname.clone(),
    };
    // Addresses and routes are written here: no router advertisements.
    netns.sysctl("net.ipv6.conf.all.accept_ra", "0")?;
    netns.sysctl("net.ipv6.conf.default.accept_ra", "0")?;
    let gw_cidr = format!("{gateway}/28");
    let addr_cidr = format!("{address}/28");
    let gw = gateway.to_string();
    let gw6_cidr = format!("{gateway6}/112");
    let addr6_cidr = format!("{address6}/112");
    let gw6 = gateway6.to_string();
    for args in [
        vec!["addr", "add", &gw_cidr, "dev", &host_ifname],
        vec!["addr", "add", &gw6_cidr, "dev", &host_ifname, "nodad"],
        vec!["link", "set", &host_ifname, "up"],
        vec!["-n", &ns, "link", "set", "lo", "up"],
        vec!["-n", &ns, "addr", "add", &addr_cidr, "dev", "eth0"],
        vec![
            "-n",
            &ns,
            "addr",
            "add",
            &addr6_cidr,
            "dev",
            "eth0",
            "nodad",
        ],
        vec!["-n", &ns, "link", "set", "eth0", "up"],
        vec!["-n", &ns, "route", "add", "default", "via", &gw],
        vec!["-n", &ns, "-6", "route", "add", "default", "via", &gw6],
    ] {
        cmd::ip(&args).context("configuring an external namespace")?;
    }
    let tcp = TcpServer::start(&netns, tcp_port, format!("external {address}\n"))?;
    let udp = UdpServer::start(&netns, udp_port)?;
    // ExternalHost's own Drop deletes the link from now on.
    std::mem::forget(partial);
    Ok(ExternalHost {
        _tcp: tcp,
        _udp: udp,
        host_ifname,
        netns,
        address,
        gateway,
        address6,
        gateway6,
    })
}

/// Deletes the host-side link if setup fails before [`ExternalHost`] exists.
struct PartialHost {
    host_ifname: String,
}

impl Drop for PartialHost {
    fn drop(&mut self) {
        cmd::run_ignoring_errors("ip", &["link", "del", "dev", &self.host_ifname]);
    }
}

/// The third octet of a `192.168.N.0/24` nobody routes yet, picked per
/// process and call so that fixtures running side by side differ.
fn free_subnet() -> Result<u8> {
    let (pid, n) = unique::next_pair();
    for attempt in 0..40u32 {
        let third = 200 + ((pid.wrapping_add(n).wrapping_add(attempt)) % 50) as u8;
        let prefix = format!("192.168.{third}.0/24");
        let routes = cmd::ip(&["-4", "route", "show", "root", &prefix])?;
        let addrs = cmd::ip(&["-4", "-o", "addr", "show", "to", &prefix])?;
        if routes.trim().is_empty() && addrs.trim().is_empty() {
            return Ok(third);
        }
    }
    bail!("no free 192.168.200-249.0/24 subnet for the external namespaces")
}

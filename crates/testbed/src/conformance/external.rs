//! Addresses outside the cluster that pods can reach: plain network
//! namespaces (no endpoint, no BPF) each joined to the host by a veth, the
//! host routing between them and the pods. Used for `world`, CIDR and
//! `ipBlock` rules, which never match pods.
//!
//! Routing between pods and these namespaces needs `net.ipv4.ip_forward=1`
//! in the host namespace; [`ForwardingGuard`] turns it on and restores the
//! previous value once the last guard of this process is gone.

use std::net::Ipv4Addr;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use crate::netns::NetNs;
use crate::traffic::{TcpServer, UdpServer};
use crate::{cmd, unique};

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// Guards alive in this process, and the value found before the first.
static FORWARDING: Mutex<(usize, Option<String>)> = Mutex::new((0, None));

/// Keeps `net.ipv4.ip_forward` on while it lives.
pub struct ForwardingGuard(());

impl ForwardingGuard {
    pub fn enable() -> Result<ForwardingGuard> {
        let mut state = FORWARDING.lock().unwrap_or_else(|e| e.into_inner());
        if state.0 == 0 {
            let before = std::fs::read_to_string(IP_FORWARD)
                .with_context(|| format!("cannot read {IP_FORWARD}"))?;
            std::fs::write(IP_FORWARD, "1")
                .with_context(|| format!("cannot write {IP_FORWARD}"))?;
            state.1 = Some(before.trim().to_string());
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
            if let Some(before) = state.1.take() {
                let _ = std::fs::write(IP_FORWARD, before);
            }
        }
    }
}

/// One outside host: a namespace with `eth0` at `address`, a veth to the host
/// whose host side holds `gateway`, and a TCP and a UDP server.
pub struct ExternalHost {
    // Servers first: they must stop before their namespace goes.
    _tcp: TcpServer,
    _udp: UdpServer,
    host_ifname: String,
    netns: NetNs,
    pub address: Ipv4Addr,
    pub gateway: Ipv4Addr,
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
/// per external host (`.10` in the first, `.20` in the second, ...).
pub struct Outside {
    pub hosts: Vec<ExternalHost>,
    pub network: String,
}

impl Outside {
    /// `count` (≤ 15) hosts serving TCP `tcp_port` and UDP `udp_port`, in a
    /// /24 no route of this node already uses.
    pub fn create(count: usize, tcp_port: u16, udp_port: u16) -> Result<Outside> {
        let third = free_subnet()?;
        let network = format!("192.168.{third}.0/24");
        let mut hosts = Vec::new();
        for i in 0..count as u8 {
            let base = 16 * i;
            let gateway = Ipv4Addr::new(192, 168, third, base + 1);
            let address = Ipv4Addr::new(192, 168, third, 10 * (i + 1));
            hosts.push(external_host(gateway, address, tcp_port, udp_port)?);
        }
        Ok(Outside { hosts, network })
    }
}

fn external_host(
    gateway: Ipv4Addr,
    address: Ipv4Addr,
    tcp_port: u16,
    udp_port: u16,
) -> Result<ExternalHost> {
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
    netns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
    let _ = std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{host_ifname}/disable_ipv6"),
        "1",
    );
    let gw_cidr = format!("{gateway}/28");
    let addr_cidr = format!("{address}/28");
    let gw = gateway.to_string();
    for args in [
        vec!["addr", "add", &gw_cidr, "dev", &host_ifname],
        vec!["link", "set", &host_ifname, "up"],
        vec!["-n", &ns, "link", "set", "lo", "up"],
        vec!["-n", &ns, "addr", "add", &addr_cidr, "dev", "eth0"],
        vec!["-n", &ns, "link", "set", "eth0", "up"],
        vec!["-n", &ns, "route", "add", "default", "via", &gw],
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

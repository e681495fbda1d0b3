//! The endpoint's veth pair, as the datapath expects it: host side
//! `lxc<hash>` up in the host namespace with a `/32` route to the container;
//! container side renamed to `CNI_IFNAME` with the address as `/32`, a
//! link-scoped route to the gateway, the default route via it, and a
//! permanent neighbour entry gateway → host-side MAC (nothing answers ARP
//! for the gateway: the eBPF program on the host side takes every packet).
//! An IPv6-only endpoint has no IPv4 address, routes nor neighbour entry.
//! With an IPv6 address: the address as `/128` without duplicate
//! address detection (the agent's IPAM made it unique), a route to the
//! IPv6 router and the default IPv6 route via it, and a `/128` route on the
//! host side. The router's neighbour advertisement comes from the eBPF
//! program (Cilium answers neighbour discovery in BPF), so no neighbour
//! entry is written for it.

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::error::CniError;
use crate::plumbing::{ip, netns};

/// Creates the pair from inside the container's namespace, so the container
/// side gets its final name at once, and sends the host side to this
/// process's namespace (`netns <pid>`: the main thread, which never leaves
/// the host namespace).
pub fn create(
    ns: &File,
    ns_path: &Path,
    ifname: &str,
    host_ifname: &str,
    ipv6: bool,
) -> Result<(), CniError> {
    let pid = std::process::id().to_string();
    netns::run_in(ns, ns_path, || {
        // Set before the link exists: `default` covers new links, `all` the
        // rest. Without an IPv6 address IPv6 is off, else its packets would
        // only be noise the datapath drops; with one, the container takes
        // no router advertisements and sends no solicitations (its routes
        // are written here).
        if ipv6 {
            for scope in ["all", "default"] {
                ipv6_sysctl(scope, "disable_ipv6", "0")?;
                ipv6_sysctl(scope, "accept_ra", "0")?;
                ipv6_sysctl(scope, "router_solicitations", "0")?;
            }
        } else {
            ipv6_sysctl("all", "disable_ipv6", "1")?;
            ipv6_sysctl("default", "disable_ipv6", "1")?;
        }
        if ip::link(ifname)?.is_some() {
            return Err(CniError::plumbing(
                format!("the container already has an interface {ifname}"),
                "pick another CNI_IFNAME or remove the existing interface",
            ));
        }
        ip::must(
            &format!("creating veth {ifname} / {host_ifname}"),
            &[
                "link",
                "add",
                ifname,
                "type",
                "veth",
                "peer",
                "name",
                host_ifname,
                "netns",
                &pid,
            ],
        )?;
        Ok(())
    })
}

/// Brings the host side up and routes `addr` and `addr6` (those given) to
/// it; returns its MAC/index.
pub fn setup_host(
    host_ifname: &str,
    addr: Option<Ipv4Addr>,
    addr6: Option<Ipv6Addr>,
) -> Result<ip::LinkInfo, CniError> {
    // Absent when the host has IPv6 disabled altogether: nothing to do.
    let _ = std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{host_ifname}/disable_ipv6"),
        if addr6.is_some() { "0" } else { "1" },
    );
    ip::must(
        &format!("bringing {host_ifname} up"),
        &["link", "set", "dev", host_ifname, "up"],
    )?;
    if let Some(addr) = addr {
        let cidr = format!("{addr}/32");
        ip::must(
            &format!("routing {cidr} to {host_ifname}"),
            &["route", "replace", &cidr, "dev", host_ifname],
        )?;
    }
    if let Some(addr6) = addr6 {
        let cidr6 = format!("{addr6}/128");
        ip::must(
            &format!("routing {cidr6} to {host_ifname}"),
            &["-6", "route", "replace", &cidr6, "dev", host_ifname],
        )?;
    }
    ip::link(host_ifname)?.ok_or_else(|| {
        CniError::plumbing(format!("{host_ifname} vanished right after creation"), "")
    })
}

/// An IPv4 address for the container and its gateway (the node's router
/// address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Config {
    pub addr: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

/// An IPv6 address for the container and its gateway (the node's IPv6
/// router address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Config {
    pub addr: Ipv6Addr,
    pub gateway: Ipv6Addr,
}

/// Configures the container side; returns its MAC.
pub fn setup_container(
    ns: &File,
    ns_path: &Path,
    ifname: &str,
    v4: Option<Ipv4Config>,
    host_mac: &str,
    v6: Option<Ipv6Config>,
) -> Result<String, CniError> {
    netns::run_in(ns, ns_path, || {
        let what = format!("configuring {ifname} in the container");
        ip::must(&what, &["link", "set", "dev", "lo", "up"])?;
        ip::must(&what, &["link", "set", "dev", ifname, "up"])?;
        if let Some(v4) = v4 {
            let cidr = format!("{}/32", v4.addr);
            let gw = v4.gateway.to_string();
            let steps: [&[&str]; 3] = [
                &["addr", "add", &cidr, "dev", ifname],
                &["route", "replace", &gw, "dev", ifname, "scope", "link"],
                &["route", "replace", "default", "via", &gw, "dev", ifname],
            ];
            for args in steps {
                ip::must(&what, args)?;
            }
            ip::pin_neighbour(&what, &gw, host_mac, ifname)?;
        }
        if let Some(v6) = v6 {
            let cidr6 = format!("{}/128", v6.addr);
            let gw6 = v6.gateway.to_string();
            let steps: [&[&str]; 3] = [
                &["-6", "addr", "add", &cidr6, "dev", ifname, "nodad"],
                &["-6", "route", "replace", &gw6, "dev", ifname],
                &[
                    "-6", "route", "replace", "default", "via", &gw6, "dev", ifname,
                ],
            ];
            for args in steps {
                ip::must(&what, args)?;
            }
        }
        Ok(ip::link(ifname)?
            .ok_or_else(|| CniError::plumbing(format!("{ifname} vanished in the container"), ""))?
            .mac)
    })
}

/// Deletes the pair (and with it the host route); absent is fine.
pub fn delete(host_ifname: &str) -> Result<(), CniError> {
    ip::ignoring_absent(
        &format!("deleting {host_ifname}"),
        &["link", "del", "dev", host_ifname],
    )
}

/// CHECK: the container side exists and carries `addr`.
pub fn check_container(
    ns: &File,
    ns_path: &Path,
    ifname: &str,
    addr: std::net::IpAddr,
) -> Result<(), CniError> {
    netns::run_in(ns, ns_path, || {
        if ip::link(ifname)?.is_none() {
            return Err(CniError::plumbing(
                format!("the container has no interface {ifname}"),
                "",
            ));
        }
        let addrs = ip::addresses(ifname)?;
        if !addrs.contains(&addr) {
            return Err(CniError::plumbing(
                format!("{ifname} in the container lacks {addr}"),
                format!("it has {addrs:?}"),
            ));
        }
        Ok(())
    })
}

/// Writes `net.ipv6.conf.<scope>.<key>` in the calling thread's namespace
/// (sysctls under /proc/sys/net follow the writer's namespace). A kernel
/// without IPv6 has no such file: nothing to set then.
fn ipv6_sysctl(scope: &str, key: &str, value: &str) -> Result<(), CniError> {
    let path = format!("/proc/sys/net/ipv6/conf/{scope}/{key}");
    match std::fs::write(&path, value) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CniError::plumbing(
            format!("cannot write {path}"),
            e.to_string(),
        )),
    }
}

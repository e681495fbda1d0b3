//! The endpoint's veth pair, as the datapath expects it: host side
//! `lxc<hash>` up in the host namespace with a `/32` route to the container;
//! container side renamed to `CNI_IFNAME` with the address as `/32`, a
//! link-scoped route to the gateway, the default route via it, and a
//! permanent neighbour entry gateway → host-side MAC (nothing answers ARP
//! for the gateway: the eBPF program on the host side takes every packet).

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;

use crate::error::CniError;
use crate::plumbing::{ip, netns};

/// Creates the pair from inside the container's namespace, so the container
/// side gets its final name at once, and sends the host side to this
/// process's namespace (`netns <pid>`: the main thread, which never leaves
/// the host namespace).
pub fn create(ns: &File, ns_path: &Path, ifname: &str, host_ifname: &str) -> Result<(), CniError> {
    let pid = std::process::id().to_string();
    netns::run_in(ns, ns_path, || {
        // IPv6 off before the link exists: `default` covers new links, `all`
        // the rest. The datapath only handles IPv4 and would drop router
        // solicitations as noise.
        disable_ipv6("all")?;
        disable_ipv6("default")?;
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

/// Brings the host side up and routes `ip` to it; returns its MAC/index.
pub fn setup_host(host_ifname: &str, addr: Ipv4Addr) -> Result<ip::LinkInfo, CniError> {
    // Absent when the host has IPv6 disabled altogether: nothing to do.
    let _ = std::fs::write(
        format!("/proc/sys/net/ipv6/conf/{host_ifname}/disable_ipv6"),
        "1",
    );
    ip::must(
        &format!("bringing {host_ifname} up"),
        &["link", "set", "dev", host_ifname, "up"],
    )?;
    let cidr = format!("{addr}/32");
    ip::must(
        &format!("routing {cidr} to {host_ifname}"),
        &["route", "replace", &cidr, "dev", host_ifname],
    )?;
    ip::link(host_ifname)?.ok_or_else(|| {
        CniError::plumbing(format!("{host_ifname} vanished right after creation"), "")
    })
}

/// Configures the container side; returns its MAC.
pub fn setup_container(
    ns: &File,
    ns_path: &Path,
    ifname: &str,
    addr: Ipv4Addr,
    gateway: Ipv4Addr,
    host_mac: &str,
) -> Result<String, CniError> {
    let cidr = format!("{addr}/32");
    let gw = gateway.to_string();
    netns::run_in(ns, ns_path, || {
        let what = format!("configuring {ifname} in the container");
        let steps: [&[&str]; 6] = [
            &["link", "set", "dev", "lo", "up"],
            &["link", "set", "dev", ifname, "up"],
            &["addr", "add", &cidr, "dev", ifname],
            &["route", "replace", &gw, "dev", ifname, "scope", "link"],
            &["route", "replace", "default", "via", &gw, "dev", ifname],
            &[
                "neigh",
                "replace",
                &gw,
                "lladdr",
                host_mac,
                "dev",
                ifname,
                "nud",
                "permanent",
            ],
        ];
        for args in steps {
            ip::must(&what, args)?;
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
    addr: Ipv4Addr,
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

/// Writes `net.ipv6.conf.<scope>.disable_ipv6 = 1` in the calling thread's
/// namespace (sysctls under /proc/sys/net follow the writer's namespace).
/// A kernel without IPv6 has no such file: nothing to disable then.
fn disable_ipv6(scope: &str) -> Result<(), CniError> {
    let path = format!("/proc/sys/net/ipv6/conf/{scope}/disable_ipv6");
    match std::fs::write(&path, "1") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CniError::plumbing(
            format!("cannot write {path}"),
            e.to_string(),
        )),
    }
}

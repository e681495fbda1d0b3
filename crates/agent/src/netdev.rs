//! Facts about this network namespace's devices. Read through the kernel's
//! per-namespace interfaces (if_nametoindex, getifaddrs), never /sys: an
//! agent started with `nsenter --net` still sees the sysfs of the namespace
//! that mounted it.

use std::{
    ffi::{CStr, CString},
    net::Ipv4Addr,
};

pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

pub fn mac(name: &str) -> Option<[u8; 6]> {
    interfaces()
        .into_iter()
        .find_map(|(ifname, addr)| match addr {
            Addr::Link(mac) if ifname == name => Some(mac),
            _ => None,
        })
}

/// Every IPv4 address configured in this namespace (all belong to the host).
pub fn host_addresses() -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = interfaces()
        .into_iter()
        .filter_map(|(_, addr)| match addr {
            Addr::V4(ip) => Some(ip),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The node's own IPv6 addresses, link-local ones left out (they name no
/// peer the ipcache could tell apart).
pub fn host_addresses6() -> Vec<std::net::Ipv6Addr> {
    let mut out: Vec<std::net::Ipv6Addr> = interfaces()
        .into_iter()
        .filter_map(|(_, addr)| match addr {
            Addr::V6(ip) if !ip.is_unicast_link_local() => Some(ip),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The global IPv6 addresses on `device` (link-local and loopback left out),
/// in the kernel's order.
pub fn addresses6_of(device: &str) -> Vec<std::net::Ipv6Addr> {
    interfaces()
        .into_iter()
        .filter_map(|(ifname, addr)| match addr {
            Addr::V6(ip)
                if ifname == device && !ip.is_unicast_link_local() && !ip.is_loopback() =>
            {
                Some(ip)
            }
            _ => None,
        })
        .collect()
}

/// The device `ip` is configured on, if any.
pub fn device_with_address(ip: Ipv4Addr) -> Option<String> {
    interfaces()
        .into_iter()
        .find_map(|(ifname, addr)| matches!(addr, Addr::V4(a) if a == ip).then_some(ifname))
}

enum Addr {
    V4(Ipv4Addr),
    V6(std::net::Ipv6Addr),
    Link([u8; 6]),
}

fn interfaces() -> Vec<(String, Addr)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills head with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur walks the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr is valid; its family says which sockaddr it is.
        match unsafe { (*ifa.ifa_addr).sa_family } as i32 {
            libc::AF_INET => {
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push((
                    name,
                    Addr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))),
                ));
            }
            libc::AF_INET6 => {
                // SAFETY: the family says this is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push((name, Addr::V6(sin6.sin6_addr.s6_addr.into())));
            }
            libc::AF_PACKET => {
                let sll = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
                if sll.sll_halen == 6 {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(&sll.sll_addr[..6]);
                    out.push((name, Addr::Link(mac)));
                }
            }
            _ => {}
        }
    }
    // SAFETY: head came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// The address this node is reached at: the source of its default route.
pub fn default_route_source() -> Option<Ipv4Addr> {
    let out = std::process::Command::new("ip")
        .args(["-4", "route", "get", "192.0.2.1"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "src" {
            return words.next()?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_seen_through_the_namespace() {
        assert_eq!(ifindex("lo"), Some(1));
        assert_eq!(mac("lo"), Some([0; 6]));
        assert!(host_addresses().contains(&Ipv4Addr::LOCALHOST));
        assert_eq!(
            device_with_address(Ipv4Addr::LOCALHOST).as_deref(),
            Some("lo")
        );
        assert_eq!(ifindex("no-such-device"), None);
    }
}

//! Facts about the node's network devices, read from sysfs and getifaddrs.

use std::net::Ipv4Addr;

use crate::endpoint::parse_mac;

pub fn ifindex(name: &str) -> Option<u32> {
    read_sysfs(name, "ifindex")?.trim().parse().ok()
}

pub fn mac(name: &str) -> Option<[u8; 6]> {
    parse_mac(&read_sysfs(name, "address")?)
}

fn read_sysfs(name: &str, attr: &str) -> Option<String> {
    if name.is_empty() || name.contains('/') {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/{attr}")).ok()
}

/// Every IPv4 address configured on this node (they all belong to the host).
pub fn host_addresses() -> Vec<Ipv4Addr> {
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
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr is valid; its family says which sockaddr it is.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: head came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    out.sort();
    out.dedup();
    out
}

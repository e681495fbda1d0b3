//! Names derived from the attachment, stable across calls so that DEL and
//! CHECK find what ADD made without keeping state of their own.

use sha2::{Digest, Sha256};

/// Host-side veth: `lxc` + 12 hex digits of SHA-256 over container id and
/// interface name (15 bytes, the kernel's limit), like Cilium's `lxc<hash>`.
pub fn host_ifname(container_id: &str, ifname: &str) -> String {
    let digest = Sha256::digest(format!("{container_id}/{ifname}").as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("lxc{hex}")
}

/// The IPAM owner recorded with the address, for `cilium status` readers.
pub fn ipam_owner(network: &str, container_id: &str, ifname: &str) -> String {
    format!("cni/{network}/{container_id}/{ifname}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ifname_is_stable_short_and_distinct() {
        let a = host_ifname("abc", "eth0");
        assert_eq!(a, host_ifname("abc", "eth0"));
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("lxc"));
        assert_ne!(a, host_ifname("abc", "eth1"));
        assert_ne!(a, host_ifname("abd", "eth0"));
    }
}

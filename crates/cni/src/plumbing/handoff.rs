//! Veth pairs whose container side another party moves into the container
//! and configures (Docker's libnetwork: the plugin names the interface in
//! its Join answer, dockerd moves it, renames it and sets address and
//! routes). Both ends are made in the host namespace; what the runtime
//! cannot do for us — the permanent neighbour entry for the gateway, and
//! turning IPv6 off on the container side of an IPv4-only endpoint (the
//! IPv6 gateway's neighbour advertisement comes from the datapath) — is
//! finished afterwards from
//! inside the container's namespace, finding the interface by its MAC.
//! Used by cilium-docker; kept here so every veth in the project is made
//! by one piece of code.

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde_json::Value;

use crate::error::CniError;
use crate::plumbing::{ip, netns, veth};

/// Creates the pair `host_ifname` / `peer_ifname` in the calling thread's
/// (host) namespace, brings the host side up and routes `addr` (and
/// `addr6`) to it. Returns (host side, container side). A failure removes
/// the pair.
pub fn create_pair(
    host_ifname: &str,
    peer_ifname: &str,
    addr: Ipv4Addr,
    addr6: Option<Ipv6Addr>,
) -> Result<(ip::LinkInfo, ip::LinkInfo), CniError> {
    ip::must(
        &format!("creating veth {host_ifname} / {peer_ifname}"),
        &[
            "link",
            "add",
            host_ifname,
            "type",
            "veth",
            "peer",
            "name",
            peer_ifname,
        ],
    )?;
    let made = (|| {
        let host = veth::setup_host(host_ifname, Some(addr), addr6)?;
        let peer = ip::link(peer_ifname)?.ok_or_else(|| {
            CniError::plumbing(format!("{peer_ifname} vanished right after creation"), "")
        })?;
        Ok((host, peer))
    })();
    if made.is_err() {
        let _ = veth::delete(host_ifname);
    }
    made
}

/// Inside the namespace at `ns_path`: the name of the interface with MAC
/// `mac` once it is up and carries an IPv4 address (the runtime has
/// finished configuring it), `None` before that.
pub fn configured_interface(ns_path: &Path, mac: &str) -> Result<Option<String>, CniError> {
    let ns = netns::open(ns_path)?;
    netns::run_in(&ns, ns_path, || {
        // Not `-4`: it leaves the link's MAC out of the JSON.
        let text = ip::must("listing addresses", &["-j", "addr", "show"])?;
        Ok(find_configured(&text, mac))
    })
}

fn find_configured(text: &str, mac: &str) -> Option<String> {
    let Ok(Value::Array(links)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    links.iter().find_map(|l| {
        let same_mac = l.get("address")?.as_str()?.eq_ignore_ascii_case(mac);
        let has_ipv4 = l
            .get("addr_info")?
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a.get("family") == Some(&"inet".into())));
        let up = l
            .get("flags")?
            .as_array()?
            .iter()
            .any(|f| f.as_str() == Some("UP"));
        (same_mac && has_ipv4 && up).then(|| l.get("ifname")?.as_str().map(str::to_string))?
    })
}

/// Adds the permanent neighbour entry gateway → `host_mac` on `ifname` in
/// the namespace (nothing answers ARP for the gateway: the eBPF program on
/// the host side takes every packet) and, for an endpoint without IPv6
/// (`ipv6` false), turns IPv6 off on it.
pub fn finish_container_side(
    ns_path: &Path,
    ifname: &str,
    gateway: Ipv4Addr,
    host_mac: &str,
    ipv6: bool,
) -> Result<(), CniError> {
    let ns: File = netns::open(ns_path)?;
    let gw = gateway.to_string();
    netns::run_in(&ns, ns_path, || {
        if !ipv6 {
            // Absent when IPv6 is off altogether: nothing to do then.
            let _ = std::fs::write(
                format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
                "1",
            );
        }
        ip::pin_neighbour(
            &format!("adding the gateway's neighbour entry on {ifname} in the container"),
            &gw,
            host_mac,
            ifname,
        )
        .map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_configured_interface_by_mac() {
        let text = r#"[
          {"ifname":"lo","address":"00:00:00:00:00:00","flags":["LOOPBACK","UP"],"addr_info":[{"family":"inet","local":"127.0.0.1"}]},
          {"ifname":"eth0","address":"AA:bb:cc:dd:ee:ff","flags":["BROADCAST","UP","LOWER_UP"],"addr_info":[{"family":"inet","local":"10.0.0.5"}]}
        ]"#;
        assert_eq!(
            find_configured(text, "aa:bb:cc:dd:ee:ff"),
            Some("eth0".to_string())
        );
        assert_eq!(find_configured(text, "aa:bb:cc:dd:ee:00"), None);
    }

    #[test]
    fn an_interface_without_address_or_down_is_not_ready() {
        let no_addr = r#"[{"ifname":"eth0","address":"aa:bb:cc:dd:ee:ff","flags":["UP"],"addr_info":[{"family":"inet6","local":"fe80::1"}]}]"#;
        let down = r#"[{"ifname":"eth0","address":"aa:bb:cc:dd:ee:ff","flags":["BROADCAST"],"addr_info":[{"family":"inet","local":"10.0.0.5"}]}]"#;
        assert_eq!(find_configured(no_addr, "aa:bb:cc:dd:ee:ff"), None);
        assert_eq!(find_configured(down, "aa:bb:cc:dd:ee:ff"), None);
        assert_eq!(find_configured("", "aa:bb:cc:dd:ee:ff"), None);
    }
}

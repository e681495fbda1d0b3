//! IP forwarding in the agent's network namespace, as Cilium's agent turns
//! it on (IPv6's too when IPv6 is enabled): what the datapath hands to the
//! stack (pods' traffic to the world, replies to other nodes' own
//! addresses) is forwarded by the kernel.

use anyhow::Context;

/// Per network namespace: procfs shows the opening process's.
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const IPV6_FORWARDING: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

pub fn enable(ipv6: bool) -> anyhow::Result<()> {
    turn_on(IP_FORWARD, "IPv4")?;
    if ipv6 {
        turn_on(IPV6_FORWARDING, "IPv6")?;
    }
    Ok(())
}

fn turn_on(path: &str, family: &str) -> anyhow::Result<()> {
    // Already on is fine even where /proc/sys is read-only (a container).
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").with_context(|| format!("enabling {family} forwarding ({path})"))
}

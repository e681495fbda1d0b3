//! IPv4 forwarding in the agent's network namespace, as Cilium's agent turns
//! it on: what the datapath hands to the stack (pods' traffic to the world,
//! replies to other nodes' own addresses) is forwarded by the kernel.

use anyhow::Context;

/// Per network namespace: procfs shows the opening process's.
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

pub fn enable() -> anyhow::Result<()> {
    // Already on is fine even where /proc/sys is read-only (a container).
    if std::fs::read_to_string(IP_FORWARD).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(IP_FORWARD, "1")
        .with_context(|| format!("enabling IPv4 forwarding ({IP_FORWARD})"))
}

//! Delivery of redirected connections to the proxy. The datapath assigns a
//! packet to the proxy's socket (`bpf_sk_assign`) and marks it "to proxy";
//! the kernel still routes it by its (pod) destination, so a rule sends
//! marked packets to a table where every address is local.

use super::tunnel::ip;

/// Cilium's "to proxy" mark and its routing table.
pub const MARK_TO_PROXY: u32 = 0x0200;
pub const MARK_MASK: u32 = 0x0F00;
pub const TABLE: u32 = 2004;

/// Installs the rule and the route unless present (idempotent, so an agent
/// restart changes nothing under proxied connections).
pub fn ensure() -> anyhow::Result<()> {
    let fwmark = format!("{MARK_TO_PROXY:#x}/{MARK_MASK:#x}");
    let table = TABLE.to_string();
    let rules = std::process::Command::new("ip")
        .args(["rule", "show"])
        .output()?;
    let present = String::from_utf8_lossy(&rules.stdout)
        .lines()
        .any(|l| l.contains(&format!("fwmark {fwmark}")) && l.contains(&format!("lookup {table}")));
    if !present {
        ip(&[
            "rule", "add", "fwmark", &fwmark, "lookup", &table, "priority", "9",
        ])?;
    }
    ip(&[
        "route",
        "replace",
        "local",
        "0.0.0.0/0",
        "dev",
        "lo",
        "table",
        &table,
    ])
}

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
/// restart changes nothing under proxied connections), for IPv4 and, with
/// `ipv6`, for IPv6 too where the loopback device has IPv6 (the local
/// route goes through it; without it no IPv6 packet is delivered locally
/// anyway).
pub fn ensure(ipv6: bool) -> anyhow::Result<()> {
    ensure_family("-4", "0.0.0.0/0")?;
    if !ipv6 {
        return Ok(());
    }
    if ipv6_on_loopback() {
        ensure_family("-6", "::/0")?;
    } else {
        // Assigned IPv6 packets are then dropped by forwarding (a packet
        // with a socket is never forwarded), never let past the proxy.
        eprintln!(
            "level=warning msg=\"proxy: IPv6 is disabled on lo: IPv6 connections L7 rules \
             cover cannot reach the proxy\""
        );
    }
    Ok(())
}

fn ipv6_on_loopback() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv6/conf/lo/disable_ipv6")
        .is_ok_and(|disabled| disabled.trim() == "0")
}

fn ensure_family(family: &str, everything: &str) -> anyhow::Result<()> {
    let fwmark = format!("{MARK_TO_PROXY:#x}/{MARK_MASK:#x}");
    let table = TABLE.to_string();
    let rules = std::process::Command::new("ip")
        .args([family, "rule", "show"])
        .output()?;
    let present = String::from_utf8_lossy(&rules.stdout)
        .lines()
        .any(|l| l.contains(&format!("fwmark {fwmark}")) && l.contains(&format!("lookup {table}")));
    if !present {
        ip(&[
            family, "rule", "add", "fwmark", &fwmark, "lookup", &table, "priority", "9",
        ])?;
    }
    ip(&[
        family, "route", "replace", "local", everything, "dev", "lo", "table", &table,
    ])
}

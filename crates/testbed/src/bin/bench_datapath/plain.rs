//! Configuration (c): the plain pods (`testbed::bench::PlainPod`, routed by
//! the host with no BPF program) behind an iptables FORWARD chain of 10,000
//! rules in front of the matching ACCEPT.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use testbed::bench::tools;
use testbed::cmd;

/// The chain holding configuration (c)'s rules. Named so that a leftover of
/// a crashed run is recognisably ours (bench/run.sh removes it too).
pub const CHAIN: &str = "CILIUM_BENCH_FWD";

/// `CHAIN` with `decoys` non-matching rules, then the ACCEPTs for the two
/// directions of the client/server flow. Every packet of the flow walks the
/// whole list: there is deliberately no `ESTABLISHED` shortcut, as in a
/// stateless per-packet rule list (see bench/README.md). Removed on drop.
pub struct IptablesChain {
    jump: Vec<String>,
}

impl IptablesChain {
    pub fn create(decoys: usize, client: Ipv4Addr, server: Ipv4Addr) -> Result<IptablesChain> {
        remove_chain(&[]);
        let mut script = format!("*filter\n:{CHAIN} - [0:0]\n");
        for i in 0..decoys {
            // Sources in 10.198.0.0/16 that no pod uses: rules shaped like
            // per-peer allows for other workloads, never matching ours.
            let src = Ipv4Addr::new(10, 198, (i / 250) as u8, (i % 250 + 1) as u8);
            let port = 8000 + (i % 1000);
            script.push_str(&format!(
                "-A {CHAIN} -s {src}/32 -d {server}/32 -p tcp -m tcp --dport {port} -j ACCEPT\n"
            ));
        }
        script.push_str(&format!(
            "-A {CHAIN} -s {client}/32 -d {server}/32 -j ACCEPT\n"
        ));
        script.push_str(&format!(
            "-A {CHAIN} -s {server}/32 -d {client}/32 -j ACCEPT\n"
        ));
        script.push_str("COMMIT\n");
        let chain = IptablesChain {
            jump: vec![
                "-s".into(),
                format!("{}/24", network24(client)),
                "-d".into(),
                format!("{}/24", network24(server)),
                "-j".into(),
                CHAIN.into(),
            ],
        };
        tools::run_with_stdin("iptables-restore", &["--noflush"], &script)
            .context("loading the iptables baseline chain")?;
        Ok(chain)
    }

    /// Puts the chain in the FORWARD path until the guard drops.
    pub fn engage(&self) -> Result<Engaged<'_>> {
        let mut args = vec!["-I", "FORWARD", "1"];
        args.extend(self.jump.iter().map(String::as_str));
        cmd::run("iptables", &args).context("jumping to the baseline chain")?;
        Ok(Engaged { chain: self })
    }

    /// Packets the two final ACCEPTs matched: proof that (c)'s traffic
    /// walked the whole chain.
    pub fn flow_packets(&self) -> Result<u64> {
        let text = cmd::run("iptables", &["-L", CHAIN, "-v", "-x", "-n"])?;
        Ok(text
            .lines()
            .skip(2)
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .take(2)
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum())
    }

    /// Rules in the chain, as `iptables -S` counts them.
    pub fn rule_count(&self) -> Result<usize> {
        let text = cmd::run("iptables", &["-S", CHAIN])?;
        Ok(text.lines().filter(|l| l.starts_with("-A ")).count())
    }
}

impl Drop for IptablesChain {
    fn drop(&mut self) {
        let jump: Vec<&str> = self.jump.iter().map(String::as_str).collect();
        remove_chain(&jump);
    }
}

/// While alive, configuration (c) is in force.
pub struct Engaged<'a> {
    chain: &'a IptablesChain,
}

impl Drop for Engaged<'_> {
    fn drop(&mut self) {
        let mut args = vec!["-D", "FORWARD"];
        args.extend(self.chain.jump.iter().map(String::as_str));
        cmd::run_ignoring_errors("iptables", &args);
    }
}

/// Deletes every FORWARD rule jumping to `CHAIN` (the given one, and any
/// left by an earlier run), then the chain itself.
fn remove_chain(jump: &[&str]) {
    if !jump.is_empty() {
        let mut args = vec!["-D", "FORWARD"];
        args.extend_from_slice(jump);
        while cmd::output("iptables", &args).is_ok_and(|o| o.status.success()) {}
    }
    if let Ok(rules) = cmd::run("iptables", &["-S", "FORWARD"]) {
        for rule in rules
            .lines()
            .filter(|l| l.ends_with(&format!("-j {CHAIN}")))
        {
            let spec: Vec<&str> = rule.split_whitespace().skip(2).collect();
            let mut args = vec!["-D", "FORWARD"];
            args.extend(spec);
            cmd::run_ignoring_errors("iptables", &args);
        }
    }
    cmd::run_ignoring_errors("iptables", &["-F", CHAIN]);
    cmd::run_ignoring_errors("iptables", &["-X", CHAIN]);
}

fn network24(ip: Ipv4Addr) -> Ipv4Addr {
    let [a, b, c, _] = ip.octets();
    Ipv4Addr::new(a, b, c, 0)
}

//! The kube-proxy (iptables mode) baseline: a services chain with one rule
//! per service (`-d VIP -p tcp --dport 80`) jumping to a per-service chain
//! that picks an endpoint chain with `statistic --mode random`, which DNATs.
//! Only the client's traffic is sent into the services chain, and only
//! during the baseline's rounds. Every chain is named `CBLB-*` and removed
//! on drop (bench/lb/run.sh sweeps them after a SIGKILL).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use testbed::bench::tools;
use testbed::cmd;

use crate::catalog::ServiceDef;

pub const PREFIX: &str = "CBLB-";
pub const SERVICES: &str = "CBLB-SERVICES";

fn svc_chain(id: u16) -> String {
    format!("CBLB-SVC-{id}")
}

fn sep_chain(id: u16, k: usize) -> String {
    format!("CBLB-SEP-{id}-{k}")
}

/// Chain declarations and rules of one service (iptables-restore syntax).
fn service_lines(s: &ServiceDef, decls: &mut String, rules: &mut String) {
    let svc = svc_chain(s.id);
    decls.push_str(&format!(":{svc} - [0:0]\n"));
    rules.push_str(&format!(
        "-A {SERVICES} -d {}/32 -p tcp -m tcp --dport {} -j {svc}\n",
        s.vip, s.port
    ));
    let n = s.backends.len();
    for (k, backend) in s.backends.iter().enumerate() {
        let sep = sep_chain(s.id, k);
        decls.push_str(&format!(":{sep} - [0:0]\n"));
        // kube-proxy's scheme: endpoint k of n is taken with 1/(n-k).
        if k + 1 < n {
            rules.push_str(&format!(
                "-A {svc} -m statistic --mode random --probability {:.11} -j {sep}\n",
                1.0 / (n - k) as f64
            ));
        } else {
            rules.push_str(&format!("-A {svc} -j {sep}\n"));
        }
        rules.push_str(&format!(
            "-A {sep} -p tcp -m tcp -j DNAT --to-destination {backend}\n"
        ));
    }
}

/// The nat-table script programming `services` from empty.
pub fn script(services: &[ServiceDef]) -> String {
    let mut decls = format!(":{SERVICES} - [0:0]\n");
    let mut rules = String::new();
    for s in services {
        service_lines(s, &mut decls, &mut rules);
    }
    format!("*nat\n{decls}{rules}COMMIT\n")
}

/// One `iptables-restore --noflush` transaction of the nat-table `script`.
pub fn restore(script: &str) -> Result<()> {
    tools::run_with_stdin("iptables-restore", &["-w", "--noflush"], script)
}

/// Owns the `CBLB-*` chains while the bench runs.
pub struct KubeProxy {
    rules: usize,
}

impl KubeProxy {
    /// Starts from a clean nat table (removing leftovers of a crashed run).
    pub fn new() -> KubeProxy {
        remove_all();
        KubeProxy { rules: 0 }
    }

    /// Replaces whatever is loaded with `services`; the time
    /// `iptables-restore` took to program them.
    pub fn load(&mut self, services: &[ServiceDef]) -> Result<Duration> {
        remove_all();
        let text = script(services);
        let started = Instant::now();
        restore(&text).with_context(|| format!("loading {} services", services.len()))?;
        let took = started.elapsed();
        self.rules = text.lines().filter(|l| l.starts_with("-A ")).count();
        Ok(took)
    }

    /// Rules in the `CBLB-*` chains.
    pub fn rules(&self) -> usize {
        self.rules
    }

    /// Sends packets arriving on `iface` into the services chain until the
    /// guard drops.
    pub fn engage(&self, iface: &str) -> Result<Engaged> {
        let spec = vec![
            "-i".to_string(),
            iface.to_string(),
            "-j".into(),
            SERVICES.into(),
        ];
        let mut args = vec!["-w", "-t", "nat", "-I", "PREROUTING", "1"];
        args.extend(spec.iter().map(String::as_str));
        cmd::run("iptables", &args).context("jumping to the services chain")?;
        Ok(Engaged { spec })
    }

    /// Adds one service the way a script would, one `iptables` command per
    /// chain and rule; the time they took together. Removed again after.
    pub fn add_one_by_commands(&self, s: &ServiceDef) -> Result<Duration> {
        let (mut decls, mut rules) = (String::new(), String::new());
        service_lines(s, &mut decls, &mut rules);
        let started = Instant::now();
        for chain in decls.lines().filter_map(|l| l.strip_prefix(':')) {
            let name = chain.split_whitespace().next().unwrap_or_default();
            cmd::run("iptables", &["-w", "-t", "nat", "-N", name])?;
        }
        // The services rule last, as kube-proxy does: chains exist before
        // traffic can jump to them.
        let mut lines: Vec<&str> = rules.lines().collect();
        lines.rotate_left(1);
        for rule in lines {
            let mut args = vec!["-w", "-t", "nat"];
            args.extend(rule.split_whitespace());
            cmd::run("iptables", &args)?;
        }
        let took = started.elapsed();
        remove_one(s)?;
        Ok(took)
    }

    /// Adds one service with one `iptables-restore --noflush` transaction
    /// (kube-proxy's partial sync); the time it took. Removed again after.
    pub fn add_one_by_restore(&self, s: &ServiceDef) -> Result<Duration> {
        let (mut decls, mut rules) = (String::new(), String::new());
        service_lines(s, &mut decls, &mut rules);
        let text = format!("*nat\n{decls}{rules}COMMIT\n");
        let started = Instant::now();
        restore(&text)?;
        let took = started.elapsed();
        remove_one(s)?;
        Ok(took)
    }

    /// Packets that reached service `id`'s chain (proof the baseline's
    /// traffic walked the services chain to its end).
    pub fn service_packets(&self, id: u16) -> Result<u64> {
        let text = cmd::run(
            "iptables",
            &["-w", "-t", "nat", "-L", &svc_chain(id), "-v", "-x", "-n"],
        )?;
        Ok(text
            .lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum())
    }
}

impl Drop for KubeProxy {
    fn drop(&mut self) {
        remove_all();
    }
}

pub struct Engaged {
    spec: Vec<String>,
}

impl Drop for Engaged {
    fn drop(&mut self) {
        let mut args = vec!["-w", "-t", "nat", "-D", "PREROUTING"];
        args.extend(self.spec.iter().map(String::as_str));
        cmd::run_ignoring_errors("iptables", &args);
    }
}

fn remove_one(s: &ServiceDef) -> Result<()> {
    let svc = svc_chain(s.id);
    let mut text = format!(
        "*nat\n-D {SERVICES} -d {}/32 -p tcp -m tcp --dport {} -j {svc}\n",
        s.vip, s.port
    );
    let chains: Vec<String> = std::iter::once(svc)
        .chain((0..s.backends.len()).map(|k| sep_chain(s.id, k)))
        .collect();
    for c in &chains {
        text.push_str(&format!(":{c} - [0:0]\n"));
    }
    for c in &chains {
        text.push_str(&format!("-X {c}\n"));
    }
    text.push_str("COMMIT\n");
    restore(&text)
}

/// Removes every jump to the services chain and every `CBLB-*` chain.
pub fn remove_all() {
    if let Ok(rules) = cmd::run("iptables", &["-w", "-t", "nat", "-S", "PREROUTING"]) {
        for rule in rules
            .lines()
            .filter(|l| l.contains(&format!("-j {SERVICES}")))
        {
            let mut args = vec!["-w", "-t", "nat", "-D"];
            args.extend(rule.split_whitespace().skip(1));
            cmd::run_ignoring_errors("iptables", &args);
        }
    }
    let Ok(all) = cmd::run("iptables", &["-w", "-t", "nat", "-S"]) else {
        return;
    };
    let chains: Vec<&str> = all
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .filter(|c| c.starts_with(PREFIX))
        .collect();
    if chains.is_empty() {
        return;
    }
    let mut text = String::from("*nat\n");
    for c in &chains {
        text.push_str(&format!(":{c} - [0:0]\n"));
    }
    for c in &chains {
        text.push_str(&format!("-X {c}\n"));
    }
    text.push_str("COMMIT\n");
    if let Err(e) = restore(&text) {
        eprintln!("cannot remove the CBLB-* chains: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::service;
    use std::net::Ipv4Addr;

    #[test]
    fn kube_proxy_shaped_script() {
        let text = script(&[service(1, 1, Ipv4Addr::new(10, 193, 0, 20))]);
        assert_eq!(
            text,
            "*nat\n:CBLB-SERVICES - [0:0]\n:CBLB-SVC-1 - [0:0]\n:CBLB-SEP-1-0 - [0:0]\n:CBLB-SEP-1-1 - [0:0]\n\
             -A CBLB-SERVICES -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j CBLB-SVC-1\n\
             -A CBLB-SVC-1 -m statistic --mode random --probability 0.50000000000 -j CBLB-SEP-1-0\n\
             -A CBLB-SEP-1-0 -p tcp -m tcp -j DNAT --to-destination 10.193.0.20:8080\n\
             -A CBLB-SVC-1 -j CBLB-SEP-1-1\n\
             -A CBLB-SEP-1-1 -p tcp -m tcp -j DNAT --to-destination 10.193.0.20:8081\n\
             COMMIT\n"
        );
    }
}

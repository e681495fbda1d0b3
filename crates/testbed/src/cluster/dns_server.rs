//! A DNS server outside the cluster for DNS-aware policy: dnsmasq on an
//! [`OutsideHost`], authoritative for the names it is given (`addn-hosts`,
//! `local=/test/`: it never asks anyone else), answering on the addresses
//! it is told to. The tests and the DNS bench use the same server.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Result};

use super::OutsideHost;
use crate::{eventually, BackgroundProcess};

/// What dnsmasq serves.
#[derive(Debug, Clone, Default)]
pub struct DnsServerConfig {
    /// `(name, address)`: several lines with one name are several A
    /// records. The first one is asked for to see that the server is up.
    pub hosts: Vec<(String, Ipv4Addr)>,
    /// TTL of every answer (`local-ttl`, `auth-ttl`).
    pub ttl: u32,
    /// The addresses it listens on (port 53); empty: the host's own. They
    /// must be configured on one of the host's interfaces.
    pub listen: Vec<Ipv4Addr>,
    /// Further `dnsmasq.conf` lines (`cname=…`, `host-record=…`).
    pub extra_config: Vec<String>,
    /// `--log-queries`: a line per query in the log (for a test's failure
    /// report; a bench must not pay for it).
    pub log_queries: bool,
}

/// dnsmasq in the outside host's namespace; killed on drop.
pub struct DnsServer {
    process: BackgroundProcess,
}

impl DnsServer {
    /// Writes the hosts file, configuration and log into `dir`, starts
    /// dnsmasq and waits until every listen address answers.
    pub fn start(host: &OutsideHost, dir: &Path, config: &DnsServerConfig) -> Result<DnsServer> {
        let mut hosts = String::new();
        for (name, ip) in &config.hosts {
            hosts.push_str(&format!("{ip} {name}\n"));
        }
        let hosts_file = dir.join("dns-hosts");
        std::fs::write(&hosts_file, hosts)?;
        let listen = match config.listen.as_slice() {
            [] => vec![host.ip()],
            addresses => addresses.to_vec(),
        };
        let listen_list: Vec<String> = listen.iter().map(Ipv4Addr::to_string).collect();
        let mut conf = format!(
            "port=53\nlisten-address={}\nbind-interfaces\nno-resolv\nno-hosts\npid-file=\nuser=root\n\
             addn-hosts={}\nlocal-ttl={ttl}\nauth-ttl={ttl}\nlocal=/test/\n",
            listen_list.join(","),
            hosts_file.display(),
            ttl = config.ttl,
        );
        for line in &config.extra_config {
            conf.push_str(line);
            conf.push('\n');
        }
        let conf_path = dir.join("dnsmasq.conf");
        std::fs::write(&conf_path, conf)?;
        let conf_arg = format!("--conf-file={}", conf_path.display());
        let mut args = vec!["dnsmasq", "--keep-in-foreground", &conf_arg];
        if config.log_queries {
            args.push("--log-queries");
        }
        let log = dir.join("dnsmasq.log");
        let process = BackgroundProcess::spawn(host.namespace(), &args, &log)?;
        if let Some((name, ip)) = config.hosts.first() {
            for server in &listen {
                let at = format!("@{server}");
                let up = eventually(Duration::from_secs(5), Duration::from_millis(50), || {
                    host.exec(&["dig", "+short", "+time=1", "+tries=1", &at, name])
                        .stdout
                        .starts_with(ip.to_string().as_bytes())
                });
                ensure!(
                    up,
                    "dnsmasq did not answer {name} at {server}: {}",
                    process.log()
                );
            }
        }
        Ok(DnsServer { process })
    }

    /// dnsmasq's pid (it runs in the foreground, so this is the server).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

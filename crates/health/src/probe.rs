//! One probe round: every target's addresses, ICMP and HTTP, all at once
//! (a dead node costs one timeout, not one per probe), folded into the
//! status model. A health endpoint can be probed from another network
//! namespace (the local health endpoint's), so that the probe travels the
//! pod-to-pod path.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::{ConnectivityStatus, HostStatus, NodeStatus, PathStatus};
use crate::{http_probe, icmp, time};

/// A node to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    /// The node's own address (its agent answers HTTP there).
    pub host_ip: Ipv4Addr,
    /// The node's health endpoint, if it has one.
    pub health_ip: Option<Ipv4Addr>,
    /// The network namespace (e.g. `/proc/PID/ns/net`) the health endpoint
    /// is probed from; the caller's own when `None`.
    pub health_probed_from: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOptions {
    /// How long each probe may take.
    pub timeout: Duration,
    /// The port responders listen on (Cilium's `--cluster-health-port`).
    pub http_port: u16,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            timeout: Duration::from_secs(3),
            http_port: crate::responder::DEFAULT_PORT,
        }
    }
}

/// Probes every target; the result keeps the targets' order. Blocks for
/// at most about one `timeout`.
pub fn probe_all(targets: &[Target], options: &ProbeOptions) -> Vec<NodeStatus> {
    std::thread::scope(|scope| {
        let running: Vec<_> = targets
            .iter()
            .map(|t| {
                let host = scope.spawn(move || probe_path(t.host_ip, options));
                let endpoint = t.health_ip.map(|ip| {
                    let from = t.health_probed_from.as_deref();
                    scope.spawn(move || match from {
                        Some(netns) => probe_path_from(netns, ip, options),
                        None => probe_path(ip, options),
                    })
                });
                (t, host, endpoint)
            })
            .collect();
        running
            .into_iter()
            .map(|(t, host, endpoint)| NodeStatus {
                name: t.name.clone(),
                host: Some(joined(host, t.host_ip)),
                health_endpoint: endpoint.zip(t.health_ip).map(|(h, ip)| joined(h, ip)),
            })
            .collect()
    })
}

/// ICMP and HTTP to one address, side by side.
fn probe_path(ip: Ipv4Addr, options: &ProbeOptions) -> PathStatus {
    let probed_at = time::now();
    let (icmp, http) = std::thread::scope(|scope| {
        let icmp = scope.spawn(|| icmp::ping(ip, options.timeout));
        let http = http_probe::hello(ip, options.http_port, options.timeout);
        (icmp.join(), http)
    });
    let icmp = icmp.unwrap_or_else(|_| {
        Err(crate::ProbeError::io(
            "ICMP probe",
            std::io::Error::other("the probe thread panicked"),
        ))
    });
    PathStatus {
        ip: ip.to_string(),
        icmp: Some(ConnectivityStatus::from_result(&icmp, &probed_at)),
        http: Some(ConnectivityStatus::from_result(&http, &probed_at)),
    }
}

/// [`probe_path`] from inside `netns`: this thread (a fresh one, which
/// ends with the probe) joins it first, and the probe's own threads
/// inherit it.
fn probe_path_from(netns: &Path, ip: Ipv4Addr, options: &ProbeOptions) -> PathStatus {
    match enter_netns(netns) {
        Ok(()) => probe_path(ip, options),
        Err(e) => {
            let failed = ConnectivityStatus::from_result::<String>(&Err(e), &time::now());
            PathStatus {
                ip: ip.to_string(),
                icmp: Some(failed.clone()),
                http: Some(failed),
            }
        }
    }
}

fn enter_netns(path: &Path) -> Result<(), String> {
    let ns = File::open(path)
        .map_err(|e| format!("cannot open network namespace {}: {e}", path.display()))?;
    // SAFETY: setns on a valid descriptor; it moves only the calling
    // thread, which is dedicated to this probe.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "cannot enter network namespace {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn joined(handle: std::thread::ScopedJoinHandle<'_, PathStatus>, ip: Ipv4Addr) -> HostStatus {
    let primary_address = handle.join().unwrap_or_else(|_| PathStatus {
        ip: ip.to_string(),
        ..Default::default()
    });
    HostStatus {
        primary_address,
        secondary_addresses: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_port_fails_the_http_probe_but_keeps_the_target() {
        // 127.0.0.1 on a port nobody listens on: HTTP fails fast. (ICMP
        // needs CAP_NET_RAW; without it that probe reports the error.)
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let targets = [Target {
            name: "self".into(),
            host_ip: Ipv4Addr::LOCALHOST,
            health_ip: None,
            health_probed_from: None,
        }];
        let options = ProbeOptions {
            timeout: Duration::from_secs(1),
            http_port: port,
        };
        let nodes = probe_all(&targets, &options);
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].name, "self");
        let path = &nodes[0].host.as_ref().unwrap().primary_address;
        assert_eq!(path.ip, "127.0.0.1");
        assert!(!path.http.as_ref().unwrap().is_ok());
        assert!(nodes[0].health_endpoint.is_none());
        assert!(!nodes[0].is_reachable());
    }

    #[test]
    fn a_namespace_that_cannot_be_entered_fails_the_endpoint_paths() {
        let targets = [Target {
            name: "n".into(),
            host_ip: Ipv4Addr::LOCALHOST,
            health_ip: Some(Ipv4Addr::new(10, 0, 0, 1)),
            health_probed_from: Some("/nonexistent/ns/net".into()),
        }];
        let options = ProbeOptions {
            timeout: Duration::from_millis(200),
            http_port: 1,
        };
        let nodes = probe_all(&targets, &options);
        let endpoint = &nodes[0].health_endpoint.as_ref().unwrap().primary_address;
        assert_eq!(endpoint.ip, "10.0.0.1");
        let icmp = endpoint.icmp.as_ref().unwrap();
        assert!(icmp.status.contains("/nonexistent/ns/net"), "{icmp:?}");
    }
}

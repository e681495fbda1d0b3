//! One probe round: every target's addresses (IPv4 and IPv6 alike), ICMP
//! and HTTP, all at once (a dead node costs one timeout, not one per
//! probe), folded into the status model: a node's first address is its
//! primary one, the others its secondary ones, as in Cilium. A health endpoint can be probed from another network
//! namespace (the local health endpoint's), so that the probe travels the
//! pod-to-pod path.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::{ConnectivityStatus, HostStatus, NodeStatus, PathStatus};
use crate::{http_probe, icmp, time};

/// A node to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    /// The node's own addresses, primary first (its agent answers HTTP
    /// there); empty: not probed.
    pub host_ips: Vec<IpAddr>,
    /// The node's health endpoint's addresses, primary first; empty when
    /// it has none.
    pub health_ips: Vec<IpAddr>,
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
                let host: Vec<_> = t
                    .host_ips
                    .iter()
                    .map(|&ip| (ip, scope.spawn(move || probe_path(ip, options))))
                    .collect();
                let from = t.health_probed_from.as_deref();
                let endpoint: Vec<_> = t
                    .health_ips
                    .iter()
                    .map(|&ip| {
                        let probe = scope.spawn(move || match from {
                            Some(netns) => probe_path_from(netns, ip, options),
                            None => probe_path(ip, options),
                        });
                        (ip, probe)
                    })
                    .collect();
                (t, host, endpoint)
            })
            .collect();
        running
            .into_iter()
            .map(|(t, host, endpoint)| NodeStatus {
                name: t.name.clone(),
                host: joined(host),
                health_endpoint: joined(endpoint),
            })
            .collect()
    })
}

/// ICMP and HTTP to one address, side by side.
fn probe_path(ip: IpAddr, options: &ProbeOptions) -> PathStatus {
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
fn probe_path_from(netns: &Path, ip: IpAddr, options: &ProbeOptions) -> PathStatus {
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

/// The paths of one node or endpoint, in address order: the first is the
/// primary one. `None` when it has no address.
fn joined(
    probes: Vec<(IpAddr, std::thread::ScopedJoinHandle<'_, PathStatus>)>,
) -> Option<HostStatus> {
    let mut paths = probes.into_iter().map(|(ip, handle)| {
        handle.join().unwrap_or_else(|_| PathStatus {
            ip: ip.to_string(),
            ..Default::default()
        })
    });
    Some(HostStatus {
        primary_address: paths.next()?,
        secondary_addresses: paths.collect(),
    })
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
            host_ips: vec![std::net::Ipv4Addr::LOCALHOST.into()],
            health_ips: vec![],
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
            host_ips: vec![std::net::Ipv4Addr::LOCALHOST.into()],
            health_ips: vec![
                std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
                "fd00::1".parse::<IpAddr>().unwrap(),
            ],
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
        let secondary = &nodes[0]
            .health_endpoint
            .as_ref()
            .unwrap()
            .secondary_addresses;
        assert_eq!(secondary.len(), 1);
        assert_eq!(secondary[0].ip, "fd00::1");
    }
}

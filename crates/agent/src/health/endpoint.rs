//! This node's health endpoint (Cilium's `cilium-health` endpoint): a
//! network namespace owned by a detached `cilium-health responder`
//! process, a veth pair into it (host side `lxc_health`), an address from
//! the node's IPAM (each enabled family: IPv4, IPv6 or both), registered through the daemon's ordinary endpoint path
//! with the label `reserved:health` (identity 4). Its addresses travel in
//! the node's kvstore record so that other nodes probe them.
//!
//! The responder outlives agent restarts and the next agent adopts it; it
//! exits by itself once its interface is gone, so deleting the veth (or
//! the node's namespace) leaves no process behind.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use api::models::{AddressPair, EndpointChangeRequest};
use cni::plumbing::{netns, veth};
use serde::{Deserialize, Serialize};

use super::HealthConfig;
use crate::cluster::keys;
use crate::daemon::Daemon;

pub const HOST_IFNAME: &str = "lxc_health";
const IFNAME: &str = "eth0";
const LABEL: &str = "reserved:health";
const CONTAINER_ID: &str = "cilium-health";
/// What a previous agent started, in the state directory.
const RECORD: &str = "health-endpoint.json";
const LOG: &str = "health-endpoint.log";

/// The running health endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthEndpoint {
    pub pid: u32,
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
}

impl HealthEndpoint {
    /// Its addresses, primary (IPv4 where it has one) first.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let v4 = self.ipv4.map(IpAddr::from);
        v4.into_iter().chain(self.ipv6.map(Into::into)).collect()
    }

    /// The endpoint's network namespace (its responder's).
    pub fn netns(&self) -> PathBuf {
        netns_of(self.pid)
    }

    /// The responder runs and the veth is still there.
    pub fn is_alive(&self) -> bool {
        is_responder(self.pid) && crate::netdev::ifindex(HOST_IFNAME).is_some()
    }
}

/// Adopts the endpoint a previous agent left when it is intact, else
/// removes its remains and creates a new one; then publishes its address.
pub async fn ensure(daemon: &Arc<Daemon>, config: &HealthConfig) -> anyhow::Result<HealthEndpoint> {
    let record_path = config.state_dir.join(RECORD);
    let endpoint = match adopt(daemon, &record_path) {
        Some(endpoint) => endpoint,
        None => {
            remove_remains(daemon, &record_path).await;
            create(daemon, config, &record_path).await?
        }
    };
    publish(daemon, &endpoint);
    Ok(endpoint)
}

/// Puts the health addresses in this node's kvstore record and, in
/// Kubernetes mode, its CiliumNode (which carries the IPv4 one).
fn publish(daemon: &Daemon, endpoint: &HealthEndpoint) {
    if let Some(k8s) = daemon.k8s() {
        k8s.node_health
            .send_replace(crate::kubernetes::HealthAddresses {
                ipv4: endpoint.ipv4,
                ipv6: endpoint.ipv6,
            });
    }
    let cluster = daemon.cluster();
    let record = keys::NodeRecord {
        health_ipv4: endpoint.ipv4,
        health_ipv6: endpoint.ipv6,
        ..cluster.node.clone()
    };
    cluster.publisher.put(
        keys::node_key(&record.name),
        serde_json::to_vec(&record).expect("a node record serializes"),
    );
}

fn adopt(daemon: &Daemon, record_path: &Path) -> Option<HealthEndpoint> {
    let recorded: HealthEndpoint =
        serde_json::from_slice(&std::fs::read(record_path).ok()?).ok()?;
    let registered = daemon.endpoint_list().into_iter().any(|ep| {
        let net = &ep.status.networking;
        let text = |ip: Option<IpAddr>| ip.map(|ip| ip.to_string());
        net.interface_name == HOST_IFNAME
            && net.netns == recorded.netns().display().to_string()
            && net.addressing.iter().any(|a| {
                a.ipv4 == text(recorded.ipv4.map(Into::into))
                    && a.ipv6 == text(recorded.ipv6.map(Into::into))
            })
    });
    (registered && recorded.is_alive()).then_some(recorded)
}

/// Whatever an earlier health endpoint left: its responder, endpoint,
/// address and veth. Each step is best effort.
async fn remove_remains(daemon: &Daemon, record_path: &Path) {
    let recorded: Option<HealthEndpoint> = std::fs::read(record_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(old) = &recorded {
        if is_responder(old.pid) {
            // SAFETY: signalling a process we verified to be a responder.
            unsafe { libc::kill(old.pid as libc::pid_t, libc::SIGTERM) };
        }
    }
    for ep in daemon.endpoint_list() {
        let ours = ep.status.networking.interface_name == HOST_IFNAME
            || ep.status.external_identifiers.container_id == CONTAINER_ID;
        if ours {
            let _ = daemon.endpoint_delete(&ep.id.to_string()).await;
            for ip in ep
                .status
                .networking
                .addressing
                .iter()
                .flat_map(|a| [a.ipv4.clone(), a.ipv6.clone()])
                .flatten()
            {
                let _ = daemon.ipam_release(&ip);
            }
        }
    }
    if let Some(old) = recorded {
        for ip in old.addresses() {
            let _ = daemon.ipam_release(&ip.to_string());
        }
    }
    let _ = tokio::task::spawn_blocking(|| veth::delete(HOST_IFNAME)).await;
    let _ = std::fs::remove_file(record_path);
}

async fn create(
    daemon: &Arc<Daemon>,
    config: &HealthConfig,
    record_path: &Path,
) -> anyhow::Result<HealthEndpoint> {
    let pid = spawn_responder(config)?;
    // An address of every family the node has enabled, as a pod gets.
    let ipam = daemon
        .ipam_allocate(CONTAINER_ID, crate::daemon::Family::Both)
        .map_err(|e| anyhow!("allocating an address: {e}"))?;
    let endpoint = HealthEndpoint {
        pid,
        ipv4: parsed(ipam.address.ipv4.as_ref()),
        ipv6: parsed(ipam.address.ipv6.as_ref()),
    };
    // Recorded first: a crash from here on is cleaned up by the next agent.
    std::fs::write(record_path, serde_json::to_vec(&endpoint)?)
        .with_context(|| format!("writing {}", record_path.display()))?;
    let gateways = Gateways {
        ipv4: parsed(ipam.ipv4.as_ref().map(|a| &a.gateway)),
        ipv6: parsed(ipam.ipv6.as_ref().map(|a| &a.gateway)),
    };
    let registered = register(daemon, &endpoint, gateways).await;
    if let Err(e) = registered {
        remove_remains(daemon, record_path).await;
        return Err(e);
    }
    Ok(endpoint)
}

/// The node's router addresses the endpoint routes through.
struct Gateways {
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
}

fn parsed<T: std::str::FromStr>(text: Option<&String>) -> Option<T> {
    text.and_then(|t| t.parse().ok())
}

/// Plumbs the veth pair into the responder's namespace and registers the
/// endpoint.
async fn register(daemon: &Daemon, ep: &HealthEndpoint, gateways: Gateways) -> anyhow::Result<()> {
    let missing = |family: &str| anyhow!("the IPAM answer has no {family} gateway");
    let v4 = match ep.ipv4 {
        Some(addr) => Some(veth::Ipv4Config {
            addr,
            gateway: gateways.ipv4.ok_or_else(|| missing("IPv4"))?,
        }),
        None => None,
    };
    let v6 = match ep.ipv6 {
        Some(addr) => Some(veth::Ipv6Config {
            addr,
            gateway: gateways.ipv6.ok_or_else(|| missing("IPv6"))?,
        }),
        None => None,
    };
    let ns_path = ep.netns();
    let (host, mac) = tokio::task::spawn_blocking(move || {
        let ns = netns::open(&ns_path)?;
        veth::create(&ns, &ns_path, IFNAME, HOST_IFNAME, v6.is_some())?;
        let host = veth::setup_host(HOST_IFNAME, v4.map(|v4| v4.addr), v6.map(|v6| v6.addr))?;
        let mac = veth::setup_container(&ns, &ns_path, IFNAME, v4, &host.mac, v6)?;
        Ok::<_, cni::CniError>((host, mac))
    })
    .await?
    .map_err(|e| anyhow!("plumbing {HOST_IFNAME}: {e}"))?;
    let request = EndpointChangeRequest {
        container_id: Some(CONTAINER_ID.into()),
        container_name: Some(CONTAINER_ID.into()),
        interface_name: Some(HOST_IFNAME.into()),
        interface_index: host.ifindex,
        mac: Some(mac),
        host_mac: Some(host.mac),
        addressing: AddressPair {
            ipv4: ep.ipv4.map(|ip| ip.to_string()),
            ipv6: ep.ipv6.map(|ip| ip.to_string()),
        },
        labels: vec![LABEL.into()],
        netns: Some(ep.netns().display().to_string()),
        ..Default::default()
    };
    daemon
        .endpoint_create("0", request)
        .await
        .map_err(|e| anyhow!("registering the endpoint: {e}"))?;
    Ok(())
}

/// Starts `cilium-health responder` in a network namespace of its own and
/// a session of its own (it must survive the agent).
fn spawn_responder(config: &HealthConfig) -> anyhow::Result<u32> {
    let binary = responder_binary();
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(config.state_dir.join(LOG))
        .context("opening the health endpoint's log")?;
    let mut cmd = Command::new(&binary);
    cmd.args(["responder", "--listen", &config.port.to_string()])
        .args(["--watch-interface", IFNAME])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid and unshare are async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let pid = child.id();
    // Reaped when it exits while this agent runs; after a restart, init does.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(pid)
}

/// `cilium-health` next to the agent's executable, else from PATH.
fn responder_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("cilium-health"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("cilium-health"))
}

fn netns_of(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

/// Whether `pid` is a `cilium-health responder` (a recycled pid is not).
fn is_responder(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|b| *b == 0);
    let program = args.next().unwrap_or_default();
    program.ends_with(b"cilium-health") && args.next() == Some(b"responder")
}

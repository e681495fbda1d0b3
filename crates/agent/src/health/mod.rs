//! The agent's health checker (Cilium's cilium-health, in-process): it
//! answers other nodes' HTTP probes on `--cluster-health-port`, probes every
//! node it knows over ICMP and HTTP every `--health-check-interval`, and
//! serves the results on `health.sock` next to the API socket, for
//! `cilium-health status` and the agent's own status.

mod api;
mod checker;
mod endpoint;
mod responder;
mod roster;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use checker::Checker;

use crate::{config::Config, daemon::Daemon};

/// The flags the health checker reads.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub enabled: bool,
    /// Also probe (and run) health endpoints.
    pub endpoint: bool,
    pub port: u16,
    pub interval: Duration,
    pub socket: PathBuf,
    /// Where the health endpoint's record and log live.
    pub state_dir: PathBuf,
}

impl HealthConfig {
    pub fn from_config(config: &Config) -> HealthConfig {
        let dir = config
            .socket
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/run/cilium"));
        HealthConfig {
            enabled: config.enable_health_checking,
            endpoint: config.enable_endpoint_health_checking,
            port: config.cluster_health_port,
            interval: config.health_check_interval.max(Duration::from_millis(100)),
            socket: dir.join(::health::SOCKET_NAME),
            state_dir: config.state_dir.clone(),
        }
    }
}

/// The running checker; dropping it removes the health socket.
pub struct Health {
    checker: Arc<Checker>,
    socket: Option<PathBuf>,
}

impl Health {
    /// For the agent's status (`Cluster health`).
    pub fn checker(&self) -> Arc<Checker> {
        self.checker.clone()
    }
}

impl Drop for Health {
    fn drop(&mut self) {
        if let Some(socket) = &self.socket {
            let _ = std::fs::remove_file(socket);
        }
    }
}

/// Starts what the flags ask for. Never fails the agent: a part that
/// cannot start is logged and shown in the status.
pub async fn start(config: HealthConfig, daemon: Arc<Daemon>) -> Health {
    let enabled = config.enabled;
    let (port, socket) = (config.port, config.socket.clone());
    let checker = Arc::new(Checker::new(daemon.clone(), config.clone()));
    if !enabled {
        return Health {
            checker,
            socket: None,
        };
    }
    if let Err(e) = responder::spawn(port) {
        eprintln!("level=warning msg=\"{e}\"");
        checker.set_problem("responder", Some(e));
    }
    let socket = match api::serve(&socket, checker.clone()) {
        Ok(()) => {
            eprintln!("cilium-agent: health API listening on {}", socket.display());
            Some(socket)
        }
        Err(e) => {
            let e = format!("health API cannot listen on {}: {e}", socket.display());
            eprintln!("level=warning msg=\"{e}\"");
            checker.set_problem("api", Some(e));
            None
        }
    };
    if config.endpoint {
        tokio::spawn(keep_endpoint(checker.clone(), daemon, config));
    }
    tokio::spawn(checker.clone().run());
    Health { checker, socket }
}

/// How often the health endpoint is checked, and how long a failed
/// creation waits before the next attempt.
const ENDPOINT_CHECK: Duration = Duration::from_secs(5);
const ENDPOINT_RETRY: Duration = Duration::from_secs(30);

/// Keeps this node's health endpoint running: adopted or created at start,
/// created again when its responder or interface is gone.
async fn keep_endpoint(checker: Arc<Checker>, daemon: Arc<Daemon>, config: HealthConfig) {
    loop {
        match endpoint::ensure(&daemon, &config).await {
            Ok(ep) => {
                eprintln!(
                    "cilium-agent: health endpoint {:?} (responder pid {})",
                    ep.addresses(),
                    ep.pid
                );
                checker.set_problem("endpoint", None);
                checker.set_local_endpoint(Some((ep.addresses(), ep.netns())));
                while ep.is_alive() {
                    tokio::time::sleep(ENDPOINT_CHECK).await;
                }
                eprintln!(
                    "level=warning msg=\"health endpoint {:?} is gone, recreating it\"",
                    ep.addresses()
                );
                checker.set_local_endpoint(None);
            }
            Err(e) => {
                let e = format!("health endpoint: {e:#}");
                eprintln!("level=warning msg=\"{e}\"");
                checker.set_problem("endpoint", Some(e));
                tokio::time::sleep(ENDPOINT_RETRY).await;
            }
        }
    }
}

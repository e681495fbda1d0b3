//! Reaching the API server the way Cilium's agent does: a kubeconfig file
//! (`--k8s-kubeconfig-path`), else the pod's in-cluster service account;
//! `--k8s-api-server` overrides the address either names.

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::K8sError;

#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub kubeconfig: Option<PathBuf>,
    pub api_server: Option<String>,
}

impl ConnectOptions {
    /// Whether the agent runs against Kubernetes at all.
    pub fn enabled(&self) -> bool {
        self.kubeconfig.is_some() || self.api_server.is_some()
    }
}

/// A client for the configured API server. Nothing is sent yet: a server
/// that is down now is retried by every watch.
pub async fn connect(options: &ConnectOptions) -> Result<Client, K8sError> {
    let mut config = match &options.kubeconfig {
        Some(path) => {
            let bad = |message: String| K8sError::Kubeconfig {
                path: path.display().to_string(),
                message,
            };
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))?
        }
        None => match (Config::incluster(), &options.api_server) {
            (Ok(config), _) => config,
            // No service account here: an address alone means a server that
            // needs no credentials (a local `kubectl proxy`, say).
            (Err(_), Some(server)) => Config::new(parse_url(server)?),
            (Err(e), None) => return Err(K8sError::NoConfig(e.to_string())),
        },
    };
    if let Some(server) = &options.api_server {
        config.cluster_url = parse_url(server)?;
    }
    // A lost server should be noticed and retried quickly; watches set
    // their own, longer, server-side timeouts.
    config.connect_timeout = Some(Duration::from_secs(5));
    Ok(Client::try_from(config)?)
}

fn parse_url(server: &str) -> Result<http::Uri, K8sError> {
    let with_scheme = if server.contains("://") {
        server.to_string()
    } else {
        format!("https://{server}")
    };
    with_scheme
        .parse()
        .map_err(|e| K8sError::NoConfig(format!("--k8s-api-server {server:?}: {e}")))
}

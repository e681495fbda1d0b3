//! `--ipam kubernetes` (Cilium's Kubernetes host-scope IPAM): the node's
//! pod ranges are the ones kube-controller-manager wrote into its Node,
//! `spec.podCIDRs` (one per family on a dual-stack cluster), else
//! `spec.podCIDR`.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::config::Config;

const WAIT: Duration = Duration::from_secs(60);

/// A Node's pod CIDRs, one per family.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodePodCidrs {
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
}

impl NodePodCidrs {
    /// The first CIDR of each family in `spec.podCIDRs`, else
    /// `spec.podCIDR`; an entry that is no CIDR is left out.
    pub fn of(spec: &k8s::api::NodeSpec) -> NodePodCidrs {
        let listed = spec.pod_cidrs.iter().flatten();
        let cidrs: Vec<&String> = match spec.pod_cidrs.as_ref().is_some_and(|l| !l.is_empty()) {
            true => listed.collect(),
            false => spec.pod_cidr.iter().collect(),
        };
        let of_family = |v6: bool| {
            cidrs
                .iter()
                .find(|cidr| {
                    cidr.split_once('/')
                        .and_then(|(ip, _)| ip.parse::<IpAddr>().ok())
                        .is_some_and(|ip| ip.is_ipv6() == v6)
                })
                .map(|cidr| cidr.to_string())
        };
        NodePodCidrs {
            ipv4: of_family(false),
            ipv6: of_family(true),
        }
    }

    /// Makes them this node's ranges: IPv4 must be there when enabled (as
    /// in Cilium); without an IPv6 one the node keeps `--ipv6-range`, so a
    /// cluster with IPv4 pod CIDRs only still gets dual-stack pods (Cilium
    /// would wait for one instead).
    pub fn configure(&self, config: &mut Config, node: &str) -> anyhow::Result<()> {
        if config.enable_ipv4 {
            let Some(cidr) = &self.ipv4 else {
                bail!("Node {node} has no IPv4 pod CIDR (spec.podCIDRs {:?}); with an IPv6-only cluster pass --enable-ipv4=false", self.ipv6);
            };
            config.ipv4_range = Some(cidr.clone());
            config.cluster_pool_ipv4_cidr = None;
        }
        if config.enable_ipv6 {
            match &self.ipv6 {
                Some(cidr) => {
                    config.ipv6_range = cidr.clone();
                    config.cluster_pool_ipv6_cidr = None;
                }
                None => eprintln!(
                    "level=info msg=\"Node {node} has no IPv6 pod CIDR: IPv6 pod addresses come from --ipv6-range {}\"",
                    config.ipv6_range
                ),
            }
        }
        Ok(())
    }
}

/// This node's pod CIDRs from its Node, waiting for kube-controller-manager
/// to assign them.
pub async fn node_pod_cidrs(config: &Config) -> anyhow::Result<NodePodCidrs> {
    let client = k8s::connect(&config.k8s()).await?;
    let api: k8s::kube::Api<k8s::api::Node> = k8s::kube::Api::all(client);
    let name = config.node_name();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let read = api.get(&name).await;
        if let Ok(spec) = read
            .as_ref()
            .map(|node| node.spec.clone().unwrap_or_default())
        {
            let cidrs = NodePodCidrs::of(&spec);
            if cidrs != NodePodCidrs::default() {
                return Ok(cidrs);
            }
        }
        if tokio::time::Instant::now() > deadline {
            return match read {
                Err(e) => Err(e).with_context(|| format!("reading Node {name}")),
                Ok(_) => bail!("Node {name} has no spec.podCIDRs after {WAIT:?}"),
            };
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn spec(pod_cidr: Option<&str>, pod_cidrs: &[&str]) -> k8s::api::NodeSpec {
        k8s::api::NodeSpec {
            pod_cidr: pod_cidr.map(str::to_string),
            pod_cidrs: Some(pod_cidrs.iter().map(|c| c.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn each_family_comes_from_its_own_cidr() {
        let dual = NodePodCidrs::of(&spec(
            Some("fd00:10:244:1::/64"),
            &["fd00:10:244:1::/64", "10.244.1.0/24"],
        ));
        assert_eq!(dual.ipv4.as_deref(), Some("10.244.1.0/24"));
        assert_eq!(dual.ipv6.as_deref(), Some("fd00:10:244:1::/64"));
        let old = NodePodCidrs::of(&spec(Some("10.244.2.0/24"), &[]));
        assert_eq!(old.ipv4.as_deref(), Some("10.244.2.0/24"));
        assert_eq!(old.ipv6, None);
        assert_eq!(
            NodePodCidrs::of(&spec(None, &["junk"])),
            NodePodCidrs::default()
        );
    }

    #[test]
    fn the_node_ranges_replace_the_flags() {
        let mut config =
            Config::parse_from(["cilium-agent", "--cluster-pool-ipv4-cidr", "10.0.0.0/8"]);
        let cidrs = NodePodCidrs {
            ipv4: Some("10.244.1.0/24".into()),
            ipv6: Some("fd00:10:244:1::/64".into()),
        };
        cidrs.configure(&mut config, "n").unwrap();
        assert_eq!(config.ipv4_range.as_deref(), Some("10.244.1.0/24"));
        assert_eq!(config.cluster_pool_ipv4_cidr, None);
        assert_eq!(config.ipv6_range, "fd00:10:244:1::/64");

        // No IPv6 CIDR: --ipv6-range stays.
        let mut config = Config::parse_from(["cilium-agent"]);
        let v4_only = NodePodCidrs {
            ipv6: None,
            ..cidrs.clone()
        };
        v4_only.configure(&mut config, "n").unwrap();
        assert_eq!(config.ipv6_range, "auto");

        // IPv4 wanted but missing: a clear error naming the way out.
        let v6_only = NodePodCidrs {
            ipv4: None,
            ..cidrs
        };
        let err = v6_only.configure(&mut config, "n").unwrap_err().to_string();
        assert!(err.contains("--enable-ipv4=false"), "{err}");
        let mut config = Config::parse_from(["cilium-agent", "--enable-ipv4=false"]);
        v6_only.configure(&mut config, "n").unwrap();
        assert_eq!(config.ipv6_range, "fd00:10:244:1::/64");
    }
}

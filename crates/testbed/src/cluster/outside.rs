//! A host outside the cluster: a network namespace on the underlay that is
//! no node, reaching node `via`'s pods through that node (a route to its pod
//! CIDR), as a client or server on the node's network would. The agents
//! know nothing of it: to them it is `world`.

use std::net::Ipv4Addr;
use std::process::Output;

use anyhow::{Context, Result};

use super::underlay::{self, Bridge};
use super::Cluster;
use crate::cmd;
use crate::netns::NetNs;

pub struct OutsideHost {
    netns: NetNs,
    ip: Ipv4Addr,
}

impl OutsideHost {
    pub(super) fn create(
        bridge: &Bridge,
        netns_name: &str,
        port: &str,
        ip: Ipv4Addr,
        gateway: Ipv4Addr,
        routes: &[(String, Ipv4Addr)],
    ) -> Result<OutsideHost> {
        let netns = NetNs::create(netns_name)?;
        underlay::attach_node(bridge, port, &netns, ip, gateway)?;
        for (cidr, via) in routes {
            cmd::ip(&[
                "-n",
                netns.name(),
                "route",
                "add",
                cidr,
                "via",
                &via.to_string(),
            ])
            .with_context(|| format!("routing {cidr} via {via} from {netns_name}"))?;
        }
        Ok(OutsideHost { netns, ip })
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    pub fn namespace(&self) -> &NetNs {
        &self.netns
    }

    /// Runs a command in the host's namespace; the caller judges its exit.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.netns
            .exec(args)
            .unwrap_or_else(|e| panic!("running {args:?} outside the cluster: {e:#}"))
    }
}

impl Cluster {
    /// Makes `host` answer on every address of `cidr` (a local route on its
    /// loopback: a server on `0.0.0.0` accepts for all of them) and every
    /// node route `cidr` to it, so that each DNS name can have addresses
    /// of its own, all served.
    pub fn route_to_outside(&self, host: &OutsideHost, cidr: &str) -> Result<()> {
        host.namespace()
            .exec_ok(&["ip", "route", "add", "local", cidr, "dev", "lo"])?;
        for node in &self.nodes {
            node.netns()
                .exec_ok(&["ip", "route", "add", cidr, "via", &host.ip().to_string()])
                .with_context(|| format!("routing {cidr} from {}", node.name()))?;
        }
        Ok(())
    }
}

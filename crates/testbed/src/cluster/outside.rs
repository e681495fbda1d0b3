//! A host outside the cluster: a network namespace on the underlay that is
//! no node, reaching node `via`'s pods through that node (a route to its pod
//! CIDR), as a client or server on the node's network would. The agents
//! know nothing of it: to them it is `world`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Output;

use anyhow::{Context, Result};

use super::underlay::{self, Bridge};
use super::Cluster;
use crate::cmd;
use crate::netns::NetNs;

pub struct OutsideHost {
    netns: NetNs,
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
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
        Ok(OutsideHost {
            netns,
            ip,
            ip6: None,
        })
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Its IPv6 address, when it has one (see [`Cluster::outside_host6`]).
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.ip6
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
    /// [`Cluster::outside_host`] with an IPv6 address on the underlay's /64
    /// too, for a cluster started with
    /// [`Cluster::start_dual_stack_underlay`]: a client of the nodes' IPv6
    /// addresses.
    pub fn outside_host6(&self, name: &str) -> Result<OutsideHost> {
        let mut host = self.outside_host(name)?;
        let ip6 = self.addressing.outside_ip6();
        underlay::add_node_ipv6(&host.netns, ip6)
            .with_context(|| format!("giving outside host {name} {ip6}"))?;
        host.ip6 = Some(ip6);
        Ok(host)
    }

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

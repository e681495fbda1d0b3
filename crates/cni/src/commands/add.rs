//! ADD: address from the agent's IPAM, veth pair, container and host
//! configuration, endpoint registration. Each step records what it made in
//! a [`Rollback`]; a failure anywhere undoes exactly that, so nothing is
//! left half-created.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use api::{endpoint_state, AddressPair, Client, EndpointChangeRequest};

use crate::agent;
use crate::commands::del;
use crate::config::NetConf;
use crate::env::Attachment;
use crate::error::CniError;
use crate::naming;
use crate::plumbing::{
    netns, veth,
    veth::{Ipv4Config, Ipv6Config},
};
use crate::result::AddOutcome;

/// How long the endpoint may take to become ready: the container's first
/// packet must meet its policy, not an empty map.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub fn add(
    client: &Client,
    conf: &NetConf,
    att: &Attachment,
    labels: Vec<String>,
) -> Result<AddOutcome, CniError> {
    let ns_path_text = att
        .netns
        .as_deref()
        .expect("request checked CNI_NETNS for ADD");
    let ns_path = Path::new(ns_path_text);
    let ns = netns::open(ns_path)?;
    let host_ifname = naming::host_ifname(&att.container_id, &att.ifname);

    // Leftovers of an earlier ADD for the same attachment that never saw
    // its DEL (runtime crash): the names are ours, so clear them.
    del::teardown(client, &host_ifname)?;

    let mut rollback = Rollback::new(client, &host_ifname);
    let owner = naming::ipam_owner(&conf.name, &att.container_id, &att.ifname);
    let ipam = client
        .ipam_allocate(Some(&owner))
        .map_err(|e| agent::to_cni(client, "POST /v1/ipam", e))?;
    let v4 = ipv4_config(&ipam);
    rollback.ip = v4.as_ref().ok().and_then(|v4| v4.map(|v4| v4.addr));
    let v6 = ipv6_config(&ipam);
    rollback.ip6 = v6.as_ref().ok().and_then(|v6| v6.map(|v6| v6.addr));
    let (v4, v6) = (v4?, v6?);
    if v4.is_none() && v6.is_none() {
        return Err(agent_contract("the IPAM answer has no address", &ipam));
    }

    rollback.veth = true;
    veth::create(&ns, ns_path, &att.ifname, &host_ifname, v6.is_some())?;
    let host_link = veth::setup_host(&host_ifname, v4.map(|v4| v4.addr), v6.map(|v6| v6.addr))?;
    let container_mac = veth::setup_container(&ns, ns_path, &att.ifname, v4, &host_link.mac, v6)?;

    let namespaced = att.args.k8s_pod_namespace.is_some();
    let request = EndpointChangeRequest {
        container_id: Some(att.container_id.clone()),
        container_name: att.args.k8s_pod_name.clone(),
        interface_name: Some(host_ifname.clone()),
        interface_index: host_link.ifindex,
        mac: Some(container_mac.clone()),
        host_mac: Some(host_link.mac.clone()),
        addressing: AddressPair {
            ipv4: v4.map(|v4| v4.addr.to_string()),
            ipv6: v6.map(|v6| v6.addr.to_string()),
        },
        labels,
        netns: Some(ns_path_text.to_string()),
        k8s_pod_name: att.args.k8s_pod_name.clone().filter(|_| namespaced),
        k8s_namespace: att.args.k8s_pod_namespace.clone(),
        ..Default::default()
    };
    let endpoint = client
        .endpoint_put(0, &request)
        .map_err(|e| agent::to_cni(client, "PUT /v1/endpoint/0", e))?;
    rollback.endpoint = Some(endpoint.id);
    if endpoint.status.state != endpoint_state::READY {
        wait_ready(client, endpoint.id)?;
    }

    rollback.commit();
    Ok(AddOutcome {
        host_ifname,
        host_mac: host_link.mac,
        container_ifname: att.ifname.clone(),
        container_mac,
        netns: ns_path_text.to_string(),
        v4,
        v6,
    })
}

/// The IPv4 address and gateway of the IPAM answer; `None` when the agent
/// has IPv4 disabled (it answered IPv6 alone).
fn ipv4_config(ipam: &api::models::IpamResponse) -> Result<Option<Ipv4Config>, CniError> {
    let Some(text) = ipam
        .ipv4
        .as_ref()
        .map(|a| a.ip.clone())
        .or(ipam.address.ipv4.clone())
        .filter(|a| !a.is_empty())
    else {
        return Ok(None);
    };
    let addr = parse_ipv4(&text)
        .ok_or_else(|| agent_contract("the IPAM answer's IPv4 address is malformed", ipam))?;
    let gateway = ipam
        .ipv4
        .as_ref()
        .map(|a| a.gateway.as_str())
        .filter(|g| !g.is_empty())
        .or(Some(ipam.host_addressing.ipv4.ip.as_str()))
        .and_then(parse_ipv4)
        .ok_or_else(|| agent_contract("the IPAM answer has no IPv4 gateway", ipam))?;
    Ok(Some(Ipv4Config { addr, gateway }))
}

/// The IPv6 address and gateway of the IPAM answer; `None` when the agent
/// has IPv6 disabled (it answered IPv4 alone).
fn ipv6_config(ipam: &api::models::IpamResponse) -> Result<Option<Ipv6Config>, CniError> {
    let Some(text) = ipam
        .ipv6
        .as_ref()
        .map(|a| a.ip.clone())
        .or(ipam.address.ipv6.clone())
        .filter(|a| !a.is_empty())
    else {
        return Ok(None);
    };
    let addr = parse_ipv6(&text)
        .ok_or_else(|| agent_contract("the IPAM answer's IPv6 address is malformed", ipam))?;
    let gateway = ipam
        .ipv6
        .as_ref()
        .map(|a| a.gateway.clone())
        .filter(|g| !g.is_empty())
        .or_else(|| ipam.host_addressing.ipv6.as_ref().map(|a| a.ip.clone()))
        .as_deref()
        .and_then(parse_ipv6)
        .ok_or_else(|| agent_contract("the IPAM answer has no IPv6 gateway", ipam))?;
    Ok(Some(Ipv6Config { addr, gateway }))
}

fn parse_ipv6(text: &str) -> Option<Ipv6Addr> {
    text.split('/').next()?.parse().ok()
}

fn wait_ready(client: &Client, id: u16) -> Result<(), CniError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let ep = client
            .endpoint_get(&id.to_string())
            .map_err(|e| agent::to_cni(client, &format!("GET /v1/endpoint/{id}"), e))?;
        if ep.status.state == endpoint_state::READY {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(CniError::new(
                crate::error::code::TRY_AGAIN_LATER,
                format!("endpoint {id} did not become ready within {READY_TIMEOUT:?}"),
                format!(
                    "its state is {:?}; see the cilium-agent log",
                    ep.status.state
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    text.split('/').next()?.parse().ok()
}

fn agent_contract(what: &str, answer: &impl std::fmt::Debug) -> CniError {
    CniError::new(
        crate::error::code::AGENT_REFUSED,
        format!("cilium-agent answered POST /v1/ipam unexpectedly: {what}"),
        format!("{answer:?}"),
    )
}

/// What ADD has made so far, undone on drop unless committed: endpoint,
/// then veth pair (its host route goes with it), then the address.
struct Rollback<'a> {
    client: &'a Client,
    host_ifname: &'a str,
    ip: Option<Ipv4Addr>,
    ip6: Option<Ipv6Addr>,
    /// Set just before creating the pair: a failure inside `veth::create`
    /// may still have made it.
    veth: bool,
    endpoint: Option<u16>,
}

impl<'a> Rollback<'a> {
    fn new(client: &'a Client, host_ifname: &'a str) -> Self {
        Rollback {
            client,
            host_ifname,
            ip: None,
            ip6: None,
            veth: false,
            endpoint: None,
        }
    }

    fn commit(mut self) {
        self.ip = None;
        self.ip6 = None;
        self.veth = false;
        self.endpoint = None;
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        // Best effort: the original error is what the runtime must see.
        if let Some(id) = self.endpoint.take() {
            let _ = self.client.endpoint_delete(&id.to_string());
        }
        if self.veth {
            let _ = veth::delete(self.host_ifname);
        }
        if let Some(ip) = self.ip.take() {
            let _ = del::release_ip(self.client, ip.into());
        }
        if let Some(ip) = self.ip6.take() {
            let _ = del::release_ip(self.client, ip.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_with_or_without_prefix() {
        assert_eq!(parse_ipv4("10.0.0.1/32"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(parse_ipv4("10.0.0.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(parse_ipv4(""), None);
        assert_eq!(parse_ipv6("fd00::5/128"), Some("fd00::5".parse().unwrap()));
        assert_eq!(parse_ipv6("10.0.0.1"), None);
    }
}

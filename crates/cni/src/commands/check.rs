//! CHECK: the endpoint, the host side and the container side are all still
//! what ADD made.

use api::Client;

use crate::agent;
use crate::config::NetConf;
use crate::env::Attachment;
use crate::error::CniError;
use crate::naming;
use crate::plumbing::{ip, netns, veth};
use crate::result::prev_result_ips;

pub fn check(client: &Client, conf: &NetConf, att: &Attachment) -> Result<(), CniError> {
    let host_ifname = naming::host_ifname(&att.container_id, &att.ifname);
    let endpoints = client
        .endpoint_list()
        .map_err(|e| agent::to_cni(client, "GET /v1/endpoint", e))?;
    let endpoint = endpoints
        .iter()
        .find(|ep| ep.status.networking.interface_name == host_ifname)
        .ok_or_else(|| {
            CniError::plumbing(
                format!("cilium-agent has no endpoint on {host_ifname}"),
                "the endpoint was deleted behind the runtime's back; recreate the container",
            )
        })?;
    let addrs: Vec<std::net::IpAddr> = endpoint
        .status
        .networking
        .addressing
        .iter()
        .flat_map(|a| [a.ipv4.as_deref(), a.ipv6.as_deref()])
        .filter_map(|a| a?.parse().ok())
        .collect();
    if addrs.is_empty() {
        return Err(CniError::plumbing(
            format!("endpoint {} has no address", endpoint.id),
            "",
        ));
    }
    if let Some(prev) = &conf.prev_result {
        let listed = prev_result_ips(prev);
        if let Some(addr) = addrs.iter().find(|a| !listed.contains(a)) {
            return Err(CniError::plumbing(
                format!(
                    "prevResult lists {listed:?}, but endpoint {} has {addr}",
                    endpoint.id
                ),
                "",
            ));
        }
    }
    if ip::link(&host_ifname)?.is_none() {
        return Err(CniError::plumbing(
            format!("host interface {host_ifname} is missing"),
            "",
        ));
    }
    let path = std::path::Path::new(att.netns.as_deref().expect("request checked CNI_NETNS"));
    let ns = netns::open(path)?;
    addrs
        .into_iter()
        .try_for_each(|addr| veth::check_container(&ns, path, &att.ifname, addr))
}

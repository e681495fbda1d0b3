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
    let addr = endpoint
        .status
        .networking
        .addressing
        .iter()
        .find_map(|a| a.ipv4.as_deref()?.parse().ok())
        .ok_or_else(|| {
            CniError::plumbing(format!("endpoint {} has no IPv4 address", endpoint.id), "")
        })?;
    if let Some(prev) = &conf.prev_result {
        let listed = prev_result_ips(prev);
        if !listed.contains(&addr) {
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
    veth::check_container(&ns, path, &att.ifname, addr)
}

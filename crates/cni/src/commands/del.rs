//! DEL: remove the endpoint, the veth pair (and with it the host route) and
//! release the IP. Idempotent: whatever is already gone is skipped, and it
//! works without a namespace (containerd's second DEL).

use std::net::IpAddr;

use api::Client;

use crate::agent;
use crate::env::Attachment;
use crate::error::CniError;
use crate::naming;
use crate::plumbing::{ip, veth};

pub fn del(client: &Client, att: &Attachment) -> Result<(), CniError> {
    let host_ifname = naming::host_ifname(&att.container_id, &att.ifname);
    teardown(client, &host_ifname)
}

/// Removes everything attached through `host_ifname`. The agent is asked
/// first: while it is unreachable nothing is touched, so a retry (code 11)
/// still finds the addresses to release.
pub fn teardown(client: &Client, host_ifname: &str) -> Result<(), CniError> {
    let endpoints = client
        .endpoint_list()
        .map_err(|e| agent::to_cni(client, "GET /v1/endpoint", e))?;
    let ours: Vec<_> = endpoints
        .into_iter()
        .filter(|ep| ep.status.networking.interface_name == host_ifname)
        .collect();

    let mut ips: Vec<IpAddr> = ours
        .iter()
        .flat_map(|ep| &ep.status.networking.addressing)
        .flat_map(|a| [a.ipv4.as_deref(), a.ipv6.as_deref()])
        .filter_map(|a| a?.parse().ok())
        .collect();
    // An ADD killed after IPAM but before the endpoint existed leaves only
    // the host routes to tell which addresses were ours.
    ips.extend(ip::host_routes(host_ifname)?.into_iter().map(IpAddr::V4));
    ips.extend(ip::host_routes6(host_ifname)?.into_iter().map(IpAddr::V6));
    ips.sort();
    ips.dedup();

    for ep in &ours {
        let id = ep.id.to_string();
        match client.endpoint_delete(&id) {
            Ok(()) => {}
            Err(e) if agent::is_not_found(&e) => {}
            Err(e) => {
                return Err(agent::to_cni(
                    client,
                    &format!("DELETE /v1/endpoint/{id}"),
                    e,
                ))
            }
        }
    }
    veth::delete(host_ifname)?;
    for addr in ips {
        release_ip(client, addr)?;
    }
    Ok(())
}

/// Releases `addr`; already free is fine.
pub fn release_ip(client: &Client, addr: IpAddr) -> Result<(), CniError> {
    match client.ipam_release(&addr.to_string()) {
        Ok(()) => Ok(()),
        Err(e) if agent::is_not_found(&e) => Ok(()),
        Err(e) => Err(agent::to_cni(client, &format!("DELETE /v1/ipam/{addr}"), e)),
    }
}

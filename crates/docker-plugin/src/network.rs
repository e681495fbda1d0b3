//! `NetworkDriver`: CreateEndpoint makes the veth pair and registers the
//! endpoint with the agent (no labels yet: identity `reserved:init`); Join
//! hands dockerd the container side to move into the container with the
//! gateway and the route to it, and starts `settle`, which finishes the
//! attachment (gateway neighbour entry, container labels). On a network
//! created with `--ipv6` the endpoint is dual stack: its IPv6 address is
//! routed to the host side too and Join names the IPv6 gateway.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use api::{endpoint_state, AddressPair, EndpointChangeRequest};
use cni::plumbing::{handoff, ip, veth};
use serde_json::{json, Value};

use crate::driver::Driver;
use crate::error::PluginError;
use crate::ipam::parse_ipv4;
use crate::protocol::{
    CreateEndpoint, CreateNetwork, EndpointRef, Join, CONTAINER_IF_PREFIX, ROUTE_CONNECTED,
};
use crate::settle;

/// How long a new endpoint may take to become ready: the container's first
/// packet must meet its policy, not an empty map.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Host side `lxc<hash>` and container side `tmp<hash>` of an endpoint's
/// veth pair, derived from the libnetwork endpoint id (no state to keep).
pub fn ifnames(endpoint_id: &str) -> (String, String) {
    let host = cni::naming::host_ifname(endpoint_id, "docker");
    let peer = format!("tmp{}", &host[3..]);
    (host, peer)
}

/// The agent knows docker endpoints by their libnetwork endpoint id.
pub fn agent_id(endpoint_id: &str) -> String {
    format!("container-id:{endpoint_id}")
}

pub fn create_network(_driver: &Driver, req: &CreateNetwork) -> Result<Value, PluginError> {
    let pools = req.ipv4_data.as_deref().unwrap_or_default();
    if pools.is_empty() {
        return Err(PluginError::bad_request(format!(
            "network {}: no IPv4 pool; create it with `--ipam-driver cilium`",
            req.network_id
        )));
    }
    Ok(json!({}))
}

pub fn create_endpoint(driver: &Driver, req: &CreateEndpoint) -> Result<Value, PluginError> {
    let iface = req.interface.clone().unwrap_or_default();
    let ip: Ipv4Addr = parse_ipv4(&iface.address).ok_or_else(|| {
        PluginError::bad_request(format!(
            "endpoint {}: no IPv4 address from the IPAM driver ({:?}); create the network \
             with `--ipam-driver cilium`",
            req.endpoint_id, iface.address
        ))
    })?;
    let ip6: Option<Ipv6Addr> = match iface.address_ipv6.as_str() {
        "" => None,
        text => Some(
            text.split('/')
                .next()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| {
                    PluginError::bad_request(format!(
                        "endpoint {}: {text:?} is not an IPv6 address",
                        req.endpoint_id
                    ))
                })?,
        ),
    };
    let (host, peer) = ifnames(&req.endpoint_id);
    // Leftovers of an attempt that never saw its DeleteEndpoint: ours.
    remove_endpoint(driver, &req.endpoint_id)?;

    let (host_link, mut peer_link) =
        handoff::create_pair(&host, &peer, ip, ip6).map_err(PluginError::plumbing)?;
    let registered = (|| {
        if !iface.mac_address.is_empty() {
            // dockerd sets this MAC on the interface in the container; the
            // agent must know the same one.
            ip::must(
                &format!("setting MAC {} on {peer}", iface.mac_address),
                &["link", "set", "dev", &peer, "address", &iface.mac_address],
            )
            .map_err(PluginError::plumbing)?;
            peer_link.mac = iface.mac_address.to_ascii_lowercase();
        }
        let request = EndpointChangeRequest {
            container_id: Some(req.endpoint_id.clone()),
            interface_name: Some(host.clone()),
            interface_index: host_link.ifindex,
            mac: Some(peer_link.mac.clone()),
            host_mac: Some(host_link.mac.clone()),
            addressing: AddressPair {
                ipv4: Some(ip.to_string()),
                ipv6: ip6.map(|ip| ip.to_string()),
            },
            ..Default::default()
        };
        let endpoint = driver
            .agent
            .endpoint_put(0, &request)
            .map_err(|e| PluginError::agent(&driver.agent, "PUT /v1/endpoint/0", e))?;
        if endpoint.status.state != endpoint_state::READY {
            if let Err(e) = wait_ready(driver, endpoint.id) {
                let _ = driver.agent.endpoint_delete(&endpoint.id.to_string());
                return Err(e);
            }
        }
        Ok(())
    })();
    if let Err(e) = registered {
        let _ = veth::delete(&host);
        return Err(e);
    }
    Ok(json!({}))
}

pub fn delete_endpoint(driver: &Driver, req: &EndpointRef) -> Result<Value, PluginError> {
    settle::stop(driver, &req.endpoint_id);
    remove_endpoint(driver, &req.endpoint_id)?;
    Ok(json!({}))
}

/// Removes the agent's endpoint and the veth pair; whatever is gone
/// already is skipped. The address is dockerd's to release
/// (`ReleaseAddress` follows).
fn remove_endpoint(driver: &Driver, endpoint_id: &str) -> Result<(), PluginError> {
    let id = agent_id(endpoint_id);
    match driver.agent.endpoint_delete(&id) {
        Ok(()) => {}
        Err(e) if e.status() == Some(404) => {}
        Err(e) => {
            return Err(PluginError::agent(
                &driver.agent,
                &format!("DELETE /v1/endpoint/{id}"),
                e,
            ))
        }
    }
    let (host, _) = ifnames(endpoint_id);
    veth::delete(&host).map_err(PluginError::plumbing)
}

pub fn join(driver: &Driver, req: &Join) -> Result<Value, PluginError> {
    let (host, peer) = ifnames(&req.endpoint_id);
    let unknown = || {
        PluginError::not_found(format!(
            "endpoint {}: no interface {host}/{peer}; was it created by this plugin?",
            req.endpoint_id
        ))
    };
    let host_link = ip::link(&host)
        .map_err(PluginError::plumbing)?
        .ok_or_else(unknown)?;
    let peer_link = ip::link(&peer)
        .map_err(PluginError::plumbing)?
        .ok_or_else(unknown)?;
    let router = driver.addressing()?.router;
    // A dual-stack endpoint's IPv6 address is routed to its host side.
    let dual_stack = !ip::host_routes6(&host)
        .map_err(PluginError::plumbing)?
        .is_empty();
    let router6 = match dual_stack {
        true => Some(driver.addressing6()?.router),
        false => None,
    };
    if !req.sandbox_key.is_empty() {
        settle::spawn(
            driver.clone(),
            settle::Job {
                endpoint_id: req.endpoint_id.clone(),
                sandbox_key: PathBuf::from(&req.sandbox_key),
                container_mac: peer_link.mac,
                host_mac: host_link.mac,
                gateway: router,
                ipv6: dual_stack,
            },
        );
    }
    Ok(join_answer(&peer, router, router6))
}

/// dockerd moves `peer` into the container as `eth<n>`, sets the addresses
/// from IPAM (`/32`, `/128`), then the link routes to the gateways, then
/// the default routes via them.
pub fn join_answer(peer: &str, router: Ipv4Addr, router6: Option<Ipv6Addr>) -> Value {
    let mut routes = vec![json!({
        "Destination": format!("{router}/32"),
        "RouteType": ROUTE_CONNECTED,
    })];
    let mut answer = json!({
        "InterfaceName": {"SrcName": peer, "DstPrefix": CONTAINER_IF_PREFIX},
        "Gateway": router.to_string(),
        "DisableGatewayService": true,
    });
    if let Some(router6) = router6 {
        routes.push(json!({
            "Destination": format!("{router6}/128"),
            "RouteType": ROUTE_CONNECTED,
        }));
        answer["GatewayIPv6"] = router6.to_string().into();
    }
    answer["StaticRoutes"] = routes.into();
    answer
}

pub fn leave(driver: &Driver, req: &EndpointRef) -> Result<Value, PluginError> {
    settle::stop(driver, &req.endpoint_id);
    Ok(json!({}))
}

fn wait_ready(driver: &Driver, id: u16) -> Result<(), PluginError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let ep = driver
            .agent
            .endpoint_get(&id.to_string())
            .map_err(|e| PluginError::agent(&driver.agent, &format!("GET /v1/endpoint/{id}"), e))?;
        if ep.status.state == endpoint_state::READY {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(PluginError::internal(format!(
                "endpoint {id} did not become ready within {READY_TIMEOUT:?} (state {:?}); \
                 see the cilium-agent log",
                ep.status.state
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifnames_are_stable_distinct_and_fit_ifnamsiz() {
        let (host, peer) = ifnames("0123abcd");
        assert_eq!((host.clone(), peer.clone()), ifnames("0123abcd"));
        assert!(host.starts_with("lxc") && peer.starts_with("tmp"));
        assert_eq!(host[3..], peer[3..]);
        assert!(host.len() <= 15 && peer.len() <= 15);
        assert_ne!(ifnames("0123abce").0, host);
    }

    #[test]
    fn join_answer_routes_through_the_router() {
        let v = join_answer("tmp1", Ipv4Addr::new(10, 1, 0, 1), None);
        assert_eq!(v["InterfaceName"]["SrcName"], "tmp1");
        assert_eq!(v["InterfaceName"]["DstPrefix"], "eth");
        assert_eq!(v["Gateway"], "10.1.0.1");
        assert_eq!(v["StaticRoutes"][0]["Destination"], "10.1.0.1/32");
        assert_eq!(v["StaticRoutes"][0]["RouteType"], 1);
        assert!(v.get("GatewayIPv6").is_none());
        let dual = join_answer("tmp1", Ipv4Addr::new(10, 1, 0, 1), "f00d::1".parse().ok());
        assert_eq!(dual["GatewayIPv6"], "f00d::1");
        assert_eq!(dual["StaticRoutes"][1]["Destination"], "f00d::1/128");
        assert_eq!(dual["StaticRoutes"][1]["RouteType"], 1);
    }

    #[test]
    fn networks_without_an_ipv4_pool_are_refused() {
        let d = Driver::new(
            api::Client::new("/x"),
            crate::docker_api::DockerClient::new("/y"),
        );
        let e = create_network(&d, &CreateNetwork::default()).unwrap_err();
        assert!(e.message.contains("--ipam-driver cilium"), "{e}");
    }
}

//! `IpamDriver`: a pool per family, the agent's allocation ranges (the
//! IPv6 one for networks created with `--ipv6`); addresses from the
//! agent's IPAM as `/32` or `/128` (every packet then goes through the
//! gateway, where the eBPF program sees it); the gateway is the agent's
//! router address of the family.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{json, Value};

use crate::driver::Driver;
use crate::error::PluginError;
use crate::protocol::{
    ReleaseAddress, RequestAddress, RequestPool, GATEWAY_ADDRESS, GLOBAL_ADDRESS_SPACE,
    LOCAL_ADDRESS_SPACE, POOL_V4, POOL_V6, REQUEST_ADDRESS_TYPE,
};

/// The IPAM owner recorded with addresses handed to dockerd.
pub const IPAM_OWNER: &str = "docker-ipam";

pub fn capabilities() -> Value {
    json!({"RequiresMACAddress": false, "RequiresRequestReplay": false})
}

pub fn address_spaces() -> Value {
    json!({
        "LocalDefaultAddressSpace": LOCAL_ADDRESS_SPACE,
        "GlobalDefaultAddressSpace": GLOBAL_ADDRESS_SPACE,
    })
}

pub fn request_pool(driver: &Driver, req: &RequestPool) -> Result<Value, PluginError> {
    if req.v6 {
        let addressing = driver.addressing6()?;
        if !req.pool.is_empty() && req.pool != addressing.alloc_range {
            return Err(PluginError::bad_request(format!(
                "cilium-docker: --subnet {} differs from cilium-agent's IPv6 allocation range {}; \
                 leave --subnet out",
                req.pool, addressing.alloc_range
            )));
        }
        return Ok(json!({
            "PoolID": POOL_V6,
            "Pool": addressing.alloc_range,
            "Data": {GATEWAY_ADDRESS: format!("{}/128", addressing.router)},
        }));
    }
    let addressing = driver.addressing()?;
    if !req.pool.is_empty() && req.pool != addressing.alloc_range {
        return Err(PluginError::bad_request(format!(
            "cilium-docker: --subnet {} differs from cilium-agent's allocation range {}; \
             leave --subnet out",
            req.pool, addressing.alloc_range
        )));
    }
    Ok(json!({
        "PoolID": POOL_V4,
        "Pool": addressing.alloc_range,
        "Data": {GATEWAY_ADDRESS: format!("{}/32", addressing.router)},
    }))
}

pub fn request_address(driver: &Driver, req: &RequestAddress) -> Result<Value, PluginError> {
    if check_pool(&req.pool_id)? {
        return request_address6(driver, req);
    }
    let wants_gateway = req
        .options
        .as_ref()
        .and_then(|o| o.get(REQUEST_ADDRESS_TYPE))
        .is_some_and(|t| t == GATEWAY_ADDRESS);
    if wants_gateway || !req.address.is_empty() {
        let router = driver.addressing()?.router;
        if wants_gateway || req.address == router.to_string() {
            return Ok(json!({"Address": format!("{router}/32"), "Data": {}}));
        }
        return Err(PluginError::bad_request(format!(
            "cilium-docker: a fixed address ({}) cannot be requested; \
             cilium-agent hands out the addresses (leave --ip out)",
            req.address
        )));
    }
    let answer = driver
        .agent
        // libnetwork asks per pool; this one is IPv4.
        .ipam_allocate_family(Some(IPAM_OWNER), Some("ipv4"))
        .map_err(|e| PluginError::agent(&driver.agent, "POST /v1/ipam", e))?;
    let ip = answer
        .ipv4
        .as_ref()
        .map(|a| a.ip.clone())
        .or(answer.address.ipv4.clone())
        .as_deref()
        .and_then(parse_ipv4)
        .ok_or_else(|| {
            PluginError::internal(format!(
                "cilium-agent's IPAM answer has no IPv4 address: {answer:?}"
            ))
        })?;
    Ok(json!({"Address": format!("{ip}/32"), "Data": {}}))
}

/// An IPv6 address (or the IPv6 gateway) for a `--ipv6` network.
fn request_address6(driver: &Driver, req: &RequestAddress) -> Result<Value, PluginError> {
    let router = driver.addressing6()?.router;
    let wants_gateway = req
        .options
        .as_ref()
        .and_then(|o| o.get(REQUEST_ADDRESS_TYPE))
        .is_some_and(|t| t == GATEWAY_ADDRESS);
    if wants_gateway || !req.address.is_empty() {
        if wants_gateway || req.address.parse() == Ok(router) {
            return Ok(json!({"Address": format!("{router}/128"), "Data": {}}));
        }
        return Err(PluginError::bad_request(format!(
            "cilium-docker: a fixed address ({}) cannot be requested; \
             cilium-agent hands out the addresses (leave --ip6 out)",
            req.address
        )));
    }
    let answer = driver
        .agent
        .ipam_allocate_family(Some(IPAM_OWNER), Some("ipv6"))
        .map_err(|e| PluginError::agent(&driver.agent, "POST /v1/ipam", e))?;
    let ip: std::net::Ipv6Addr = answer
        .ipv6
        .as_ref()
        .map(|a| a.ip.clone())
        .or(answer.address.ipv6.clone())
        .as_deref()
        .and_then(|a| a.split('/').next()?.parse().ok())
        .ok_or_else(|| {
            PluginError::internal(format!(
                "cilium-agent's IPAM answer has no IPv6 address: {answer:?}"
            ))
        })?;
    Ok(json!({"Address": format!("{ip}/128"), "Data": {}}))
}

pub fn release_address(driver: &Driver, req: &ReleaseAddress) -> Result<Value, PluginError> {
    let v6 = check_pool(&req.pool_id)?;
    let ip: IpAddr = req
        .address
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .filter(|ip: &IpAddr| ip.is_ipv6() == v6)
        .ok_or_else(|| {
            PluginError::bad_request(format!(
                "ReleaseAddress: {:?} is not an {} address",
                req.address,
                if v6 { "IPv6" } else { "IPv4" }
            ))
        })?;
    // The gateway was never allocated; an address already free is fine.
    let router: Option<IpAddr> = match v6 {
        false => driver.addressing().ok().map(|a| a.router.into()),
        true => driver.addressing6().ok().map(|a| a.router.into()),
    };
    if router == Some(ip) {
        return Ok(json!({}));
    }
    match driver.agent.ipam_release(&ip.to_string()) {
        Ok(()) => Ok(json!({})),
        Err(e) if e.status() == Some(404) => Ok(json!({})),
        Err(e) => Err(PluginError::agent(
            &driver.agent,
            &format!("DELETE /v1/ipam/{ip}"),
            e,
        )),
    }
}

/// Whether `pool_id` is the IPv6 pool; an error for a pool not ours.
fn check_pool(pool_id: &str) -> Result<bool, PluginError> {
    match pool_id {
        POOL_V4 => Ok(false),
        POOL_V6 => Ok(true),
        _ => Err(PluginError::bad_request(format!(
            "cilium-docker: unknown pool {pool_id:?} (the pools are {POOL_V4} and {POOL_V6})"
        ))),
    }
}

/// `10.0.0.5`, `10.0.0.5/32`.
pub fn parse_ipv4(text: &str) -> Option<Ipv4Addr> {
    text.split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker_api::DockerClient;

    fn offline() -> Driver {
        Driver::new(
            api::Client::new("/nonexistent/agent.sock"),
            DockerClient::new("/nonexistent/docker.sock"),
        )
    }

    #[test]
    fn ipv6_releases_check_the_family() {
        let e = release_address(
            &offline(),
            &ReleaseAddress {
                pool_id: POOL_V6.into(),
                address: "10.0.0.5/32".into(),
            },
        )
        .unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("not an IPv6 address"), "{e}");
    }

    #[test]
    fn foreign_pools_are_refused() {
        let e = request_address(
            &offline(),
            &RequestAddress {
                pool_id: "default".into(),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.message.contains("CiliumPoolv4"), "{e}");
    }

    #[test]
    fn parses_addresses_with_prefix() {
        assert_eq!(parse_ipv4("10.1.2.3/32"), Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(parse_ipv4("nope"), None);
    }
}
